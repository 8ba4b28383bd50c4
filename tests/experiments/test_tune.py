"""ppox tune: an Optuna study over a space given as for ppox sweep; batches of trials as one program; a killed
study continues where it stopped; the best trial as a config file; the plots as images."""

import json

import pytest

from ppox.cli import main
from ppox.config.config import Config
from ppox.experiments.sweep_space import parse_space
from ppox.experiments.tune import TunePlan, open_study, run_study

optuna = pytest.importorskip("optuna")


def plan_of(trials, **kw):
    space = parse_space({"env": "CartPole-v1", "total_timesteps": "5120", "learning_rate": "1e-4:3e-3",
                         "ent_coef": "0:0.02", "clip_coef": "0.1,0.2,0.3"})
    return TunePlan(space, trials=trials, seeds=2, check_seeds=0, **kw)


@pytest.mark.parametrize("members", ["map", "vmap"])
def test_a_study_writes_its_best_config_and_plots(tmp_path, members):
    summary = run_study(plan_of(4, batch_trials=2, members=members), tmp_path / "t", progress=False)
    assert summary["trials_counted"] == 4
    best = Config.load(tmp_path / "t" / "best_config.json")
    trials = json.loads((tmp_path / "t" / "trials.json").read_text())
    top = max((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert best == Config(total_timesteps=5120, **top["params"])
    assert summary["best_value"] == top["value"]
    for name in ("history.png", "importance.png"):
        assert (tmp_path / "t" / name).stat().st_size > 0
    study = optuna.load_study(study_name="ppox", storage=f"sqlite:///{tmp_path / 't' / 'study.db'}")
    assert all(len(t.intermediate_values) >= 5 for t in study.trials)  # the pruner's returns during the run


def test_a_killed_study_continues_where_it_stopped(tmp_path):
    folder = tmp_path / "t"
    run_study(plan_of(2), folder, progress=False)
    _, study = open_study(plan_of(2), folder)
    study.ask()  # a trial in flight when the process was killed: left RUNNING in the file
    summary = run_study(plan_of(4), folder, progress=False)
    study = optuna.load_study(study_name="ppox", storage=f"sqlite:///{folder / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert states[:2] == ["COMPLETE", "COMPLETE"] and states[2] == "FAIL"
    assert summary["trials_counted"] == 4 and len(states) == 5  # two more, not four


def test_another_space_in_the_same_folder_is_refused(tmp_path, capsys):
    run_study(plan_of(1), tmp_path / "t", progress=False)
    code = main(["tune", "--total-timesteps", "5120", "--learning-rate", "1e-3:1e-2", "--out", str(tmp_path / "t")])
    assert code == 2 and "holds another study" in capsys.readouterr().err


def test_cli_errors_are_one_line(capsys):
    assert main(["tune", "--total-timesteps", "5120"]) == 2
    assert main(["tune", "--learning-rate", "1e-4:1e-2", "--timeout", "-3"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "nothing to search" in err[0] and "--timeout must be a positive number" in err[1]


def test_a_study_on_the_host_driver(tmp_path):
    space = parse_space({"env": "CartPole-v1", "driver": "host", "total_timesteps": "1024",
                         "learning_rate": "1e-4:1e-3"})
    summary = run_study(TunePlan(space, trials=2, seeds=1, check_seeds=0), tmp_path / "t", progress=False)
    assert summary["trials_counted"] == 2
    assert Config.load(tmp_path / "t" / "best_config.json").driver == "host"
