"""ppox sweep: the search space from flags, one program per static combination, a member of a sweep equal to the
same configuration trained alone, resume after an interruption, the report and its best config file."""

import json

import numpy as np
import pytest

import ppox
from ppox.cli import main
from ppox.cli.flags import split_flags
from ppox.config.config import Config, ConfigError
from ppox.experiments.sweep import Display, run_fused, run_sweep
from ppox.experiments.sweep_folder import Plan, done_path
from ppox.experiments.sweep_report import write_report
from ppox.experiments.sweep_space import combinations, parse_space

SHORT = {"total_timesteps": "5120", "env": "CartPole-v1"}  # 10 updates of 512 steps


def space_of(**flags):
    return parse_space({**SHORT, **{k: str(v) for k, v in flags.items()}})


def test_comma_lists_make_the_grid_and_fixed_flags_the_base():
    space = space_of(learning_rate="1e-4,3e-4,1e-3", ent_coef="0,0.01", num_envs=8)
    combos = combinations(space, grid=True, samples=None)
    assert len(combos) == 6 and space.base == Config(total_timesteps=5120, num_envs=8)
    assert {c["learning_rate"] for c in combos} == {1e-4, 3e-4, 1e-3} and {c["ent_coef"] for c in combos} == {0, 0.01}


def test_random_draws_ranges_log_uniformly_and_lists_uniformly():
    space = space_of(learning_rate="1e-5:1e-2", clip_coef="0.1,0.2,none", update_epochs="2:8")
    combos = combinations(space, grid=False, samples=400, seed=1)
    lr = np.log10([c["learning_rate"] for c in combos])
    assert lr.min() >= -5 and lr.max() <= -2 and abs(np.mean(lr) + 3.5) < 0.15  # uniform in the log
    assert {c["clip_coef"] for c in combos} == {0.1, 0.2, None}
    assert all(isinstance(c["update_epochs"], int) for c in combos)
    assert combinations(space, grid=False, samples=5, seed=1) == combos[:5]  # seeded


@pytest.mark.parametrize("flags, grid, samples, fragment", [
    ({"learning_rate": "1e-5:1e-2"}, True, None, "a range low:high is sampled; add --random N"),
    ({"learnin_rate": "1e-3"}, True, None, "did you mean --learning-rate?"),
    ({"ent_coef": "0,abc"}, True, None, "--ent-coef: 'abc' is not a number"),
    ({"learning_rate": "1e-2:1e-5"}, False, 3, "needs low < high"),
    ({"num_minibatches": "3,4"}, True, None, "--num-minibatches 3 is invalid"),
    ({"seed": "0,1"}, True, None, "--seed cannot be swept"),
])
def test_bad_spaces_are_one_line_errors_before_any_work(flags, grid, samples, fragment):
    with pytest.raises(ConfigError) as err:
        combinations(space_of(**flags), grid=grid, samples=samples)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_flags_split_into_fields_and_options():
    fields, opts = split_flags(["--lr-x=1", "--grid", "--norm-obs", "--no-anneal-lr", "--seeds", "3", "--ent-coef",
                                "0,0.1"], {"grid": False, "seeds": True})
    assert fields == {"lr_x": "1", "norm_obs": "true", "anneal_lr": "false", "ent_coef": "0,0.1"}
    assert opts == {"grid": True, "seeds": "3"}


def test_a_seed_in_a_sweep_is_the_configuration_trained_alone(tmp_path):
    """--members map (the CPU default): every member computes exactly what ppox train computes (tolerance 0: the
    same curves and final return, bit for bit). Two configurations x two seeds in one batch."""
    space = space_of(learning_rate="3e-4,2e-3", ent_coef="0.0,0.02", seed=5)
    plan = Plan(space, tuple(combinations(space, grid=True, samples=None)), seeds=2, members="map", batch=8)
    assert run_sweep(plan, tmp_path / "sw", progress=False)
    for index in (0, 3):
        record = json.loads(done_path(tmp_path / "sw", index).read_text())
        alone = ppox.train(plan.config(index).replace(seed=6, save=False, progress=False))  # the second seed
        np.testing.assert_array_equal(np.array(record["curves"]["episode_return"][1], np.float32),
                                      alone.metrics["episode_return"][0])
        assert record["final_return"][1] == float(alone.final_return()[0])


def test_vmapped_members_match_on_the_first_update(tmp_path):
    """--members vmap computes the same numbers in another order (as vmapped --seeds do): the first update's
    episodes agree (the parameters differ in the last bits after it, and the runs then drift apart)."""
    space = space_of(learning_rate="3e-4,2e-3")
    plan = Plan(space, tuple(combinations(space, grid=True, samples=None)), seeds=2, members="vmap")
    assert run_sweep(plan, tmp_path / "sw", progress=False)
    record = json.loads(done_path(tmp_path / "sw", 1).read_text())
    alone = ppox.train(plan.config(1).replace(seed=1, save=False, progress=False))
    assert record["curves"]["episode_count"][1][0] == alone.metrics["episode_count"][0, 0]
    assert record["curves"]["episode_return"][1][0] == pytest.approx(alone.metrics["episode_return"][0, 0], rel=1e-6)
    assert all(np.isfinite(record["final_return"]))


class StopAfterFirstDone:
    """A signal that arrives once the first configuration is written."""

    def __init__(self, folder):
        self.folder = folder

    @property
    def requested(self):
        return done_path(self.folder, 0).exists()


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    space = space_of(learning_rate="3e-4,1e-3,2e-3")
    plan = Plan(space, tuple(combinations(space, grid=True, samples=None)), seeds=2, members="map", batch=2)
    folder = tmp_path / "sw"
    from ppox.experiments.sweep_folder import open_folder

    open_folder(plan, folder)
    assert not run_fused(plan, [0, 1, 2], folder, Display(0, False), StopAfterFirstDone(folder))
    assert [done_path(folder, i).exists() for i in range(3)] == [True, False, False]
    first = done_path(folder, 0).read_text()
    assert run_sweep(plan, folder, progress=False)  # the rerun: configurations 1 and 2 only
    assert done_path(folder, 0).read_text() == first
    uninterrupted = tmp_path / "again"
    run_sweep(plan, uninterrupted, progress=False)
    for i in range(3):
        a, b = (json.loads(done_path(f, i).read_text()) for f in (folder, uninterrupted))
        assert a["curves"] == b["curves"] and a["final_return"] == b["final_return"]
    with pytest.raises(ConfigError, match="holds another sweep"):
        run_sweep(Plan(space, plan.combos[:2], seeds=2), folder, progress=False)


def test_the_report_and_its_best_config(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", "--env", "CartPole-v1", "--total-timesteps", "5120", "--learning-rate", "3e-4,2e-3",
            "--clip-coef", "0.1,0.3", "--seeds", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    report = out / "report"
    for name in ("table.md", "results.json", "best_config.json", "best_worst.png", "heatmap.png",
                 "final_vs_learning_rate.png", "final_vs_clip_coef.png"):
        assert (report / name).stat().st_size > 0, name
    results = json.loads((report / "results.json").read_text())
    best = results["best"]
    assert best["final_mean"] == pytest.approx(max(r["final_mean"] for r in results["rows"]), abs=1e-5)
    assert Config.load(report / "best_config.json") == Config(total_timesteps=5120, **best["overrides"])
    assert (report / "table.md").read_text().count("\n| ") == 1 + 4  # the header and four configurations
    assert main(args) == 0  # everything is done: the rerun only writes the report again
    assert "resuming: 4 of 4 configurations are done" in capsys.readouterr().out


def test_cli_errors_exit_2_before_any_work(tmp_path, capsys):
    assert main(["sweep", "--learning-rate", "1e-5:1e-2", "--out", str(tmp_path / "x")]) == 2
    assert main(["sweep", "--seeds", "0", "--out", str(tmp_path / "x")]) == 2
    assert main(["sweep", "--resume", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "add --random N" in err[0] and "--seeds must be an integer >= 1" in err[1]
    assert "sweep.json (no such file); give the folder of a sweep" in err[2]
    assert not (tmp_path / "x").exists()


def test_a_host_sweep_runs_each_member_as_a_process(tmp_path):
    space = parse_space({"env": "CartPole-v1", "driver": "host", "total_timesteps": "1024",
                         "learning_rate": "3e-4,1e-3"})
    plan = Plan(space, tuple(combinations(space, grid=True, samples=None)), seeds=1, jobs=2)
    assert run_sweep(plan, tmp_path / "sw", progress=False)
    record = json.loads(done_path(tmp_path / "sw", 1).read_text())
    alone = ppox.train(plan.config(1).replace(save=False, progress=False))
    assert record["curves"]["episode_return"][0] == pytest.approx(alone.metrics["episode_return"][0].tolist(),
                                                                  rel=1e-5)
    assert (tmp_path / "sw" / "runs" / "c0001_s0" / "config.json").exists()
    write_report(tmp_path / "sw")


@pytest.mark.long
def test_ctrl_c_stops_a_sweep_and_the_same_command_resumes_it(tmp_path):
    """A real SIGINT to `ppox sweep`: the configurations that finished stay; the rerun does only the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sw"
    args = [sys.executable, "-m", "ppox.cli", "sweep", "--total-timesteps", "20480", "--learning-rate",
            "3e-4,6e-4,1e-3,2e-3", "--seeds", "1", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PPOX_CACHE_DIR": ""}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not done_path(out, 0).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and f"ppox sweep --resume {out}" in err
    finished = [i for i in range(4) if done_path(out, i).exists()]
    assert 1 <= len(finished) < 4
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {len(finished)} of 4 configurations are done" in rerun.stdout
    assert all(done_path(out, i).exists() for i in range(4))


@pytest.mark.long
def test_host_members_as_ray_tasks(tmp_path):
    pytest.importorskip("ray")
    import ray

    space = parse_space({"env": "CartPole-v1", "driver": "host", "total_timesteps": "1024",
                         "learning_rate": "3e-4,1e-3"})
    plan = Plan(space, tuple(combinations(space, grid=True, samples=None)), seeds=2, ray="local")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        assert run_sweep(plan, tmp_path / "sw", progress=False)
    finally:
        ray.shutdown()
    record = json.loads(done_path(tmp_path / "sw", 1).read_text())
    alone = ppox.train(plan.config(1).replace(seed=1, save=False, progress=False))
    assert record["curves"]["episode_return"][1] == pytest.approx(alone.metrics["episode_return"][0].tolist(),
                                                                  rel=1e-5)


def test_ray_members_need_the_host_driver(capsys):
    assert main(["sweep", "--ray", "local", "--learning-rate", "1e-3,3e-3"]) == 2
    assert "add --driver host" in capsys.readouterr().err


def test_the_report_of_a_random_sweep_from_records(tmp_path):
    """A report from hand-made records (no training): ranges are drawn one point per configuration, a
    configuration where no episode ended is ranked last, and the table and results hold every one."""
    from ppox.utils.files import atomic_write_text

    folder = tmp_path / "sw"
    (folder / "done").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lrs = np.geomspace(1e-5, 1e-2, 14)
    spec = {"base": json.loads(Config().to_json()), "seeds": 3, "combos": [{"learning_rate": float(x)} for x in lrs],
            "axes": [{"name": "learning_rate", "values": [], "low": 1e-5, "high": 1e-2}]}
    atomic_write_text(folder / "sweep.json", json.dumps(spec))
    for i, lr in enumerate(lrs):
        curves = rng.uniform(0, 500, (3, 20)).tolist() if i else [[None] * 20] * 3
        record = {"index": i, "overrides": {"learning_rate": float(lr)}, "batch_size": 512, "wall_s": 1.0,
                  "final_return": [None] * 3 if i == 0 else [float(np.mean(c[-2:])) for c in curves],
                  "curves": {"episode_return": curves, "episode_count": [[1.0] * 20] * 3}}
        atomic_write_text(folder / "done" / f"c{i:04d}.json", json.dumps(record))
    out = write_report(folder, threshold=400.0)
    results = json.loads((out / "results.json").read_text())
    assert len(results["rows"]) == 14 and results["worst"]["index"] == 0 and results["worst"]["final_mean"] is None
    assert (out / "final_vs_learning_rate.png").stat().st_size > 0 and not (out / "heatmap.png").exists()
    assert (out / "table.md").read_text().count("\n| ") == 15
