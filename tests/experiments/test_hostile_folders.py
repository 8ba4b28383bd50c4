"""Issue 32: sweep and tune folders edited by hand, linked elsewhere or written by two processes at once, and
counts that are no integers. Every refusal is one line (exit 2 at the CLI), before anything runs, is made or is
removed; a folder names no code to run and no host to dial unless the user repeats it or trusts the folder."""

import contextlib
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from ppox.cli import main
from ppox.config.config import ConfigError
from ppox.experiments import sweep_host
from ppox.experiments.sweep import run_sweep
from ppox.experiments.sweep_folder import Plan, done_path
from ppox.experiments.sweep_report import write_report
from ppox.experiments.sweep_space import Space, combinations, parse_space

HOST = {"env": "CartPole-v1", "driver": "host", "total_timesteps": "1024", "learning_rate": "3e-4,1e-3"}


def host_plan(**base) -> Plan:
    space = parse_space(HOST)
    space = Space(space.base.replace(**base), space.axes)
    return Plan(space, tuple(combinations(space, grid=True, samples=None)), seeds=1)


def record(plan: Plan, index: int, updates: int = 4) -> dict:
    """A done record as ppox writes it (made by hand: nothing is trained)."""
    curves = [[float(10 * index + u) for u in range(updates)] for _ in range(plan.seeds)]
    return {"index": index, "overrides": dict(plan.combos[index]), "batch_size": 512, "wall_s": 1.0,
            "final_return": [c[-1] for c in curves],
            "curves": {"episode_return": curves, "episode_count": [[1.0] * updates] * plan.seeds,
                       "episode_length": curves}}


def sweep_folder(tmp_path, plan: Plan, done=()):
    folder = tmp_path / "S"
    (folder / "done").mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(plan.to_json()))
    for index in done:
        done_path(folder, index).write_text(json.dumps(record(plan, index)))
    return folder


@pytest.fixture
def no_members(monkeypatch):
    """A sweep member that would start fails the test at once (nothing is trained)."""

    def refuse(args, **kwargs):
        raise AssertionError(f"a member was started: {args}")

    monkeypatch.setattr(sweep_host.subprocess, "Popen", refuse)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ppox ") and ": error: " in err and len(err) < 500, err
    return err


# 1. A folder names no code to run and no host to dial by itself -----------------------------------------------
def entry_point_module(tmp_path, monkeypatch, name: str):
    """'NAME:Env' in the current folder, whose import leaves a marker file."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / f"{name}.ran"
    (tmp_path / f"{name}.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                         "from gymnasium.envs.classic_control import CartPoleEnv as Env\n")
    return f"{name}:Env", marker


def test_a_sweep_folder_runs_no_code_it_names_unless_repeated(tmp_path, monkeypatch, capsys, no_members):
    env, marker = entry_point_module(tmp_path, monkeypatch, "evil_sweep_env")
    folder = sweep_folder(tmp_path, host_plan(env=env), done=[1])
    assert main(["sweep", "--resume", str(folder), "--no-progress"]) == 2
    assert f"repeat it: --env {env} (or pass --trust-run-config)" in one_line(capsys)
    assert main(["sweep", "--resume", str(folder), "--env", "CartPole-v1"]) == 2
    assert f"--env CartPole-v1 is not the env of {folder / 'sweep.json'}" in one_line(capsys)
    assert not marker.exists()

    from ppox.experiments.sweep_folder import load_plan

    assert load_plan(folder, env=env).space.base.env == env == load_plan(folder, trust=True).space.base.env
    assert not marker.exists()  # (read and checked; imported only when it runs)


def test_a_sweep_folder_dials_no_ray_address_it_names_unless_repeated(tmp_path, capsys, no_members):
    folder = sweep_folder(tmp_path, host_plan(ray="127.0.0.1:1"))
    assert main(["sweep", "--resume", str(folder)]) == 2
    assert "repeat it: --ray 127.0.0.1:1 (or pass --trust-run-config)" in one_line(capsys)


def tune_plan(flags=None, **kw):
    from ppox.experiments.tune import TunePlan

    space = parse_space(flags or {"env": "CartPole-v1", "total_timesteps": "5120", "learning_rate": "1e-4:1e-3"})
    return TunePlan(space, **{"trials": 1, "seeds": 1, "check_seeds": 0, **kw})


def tune_folder(tmp_path, plan, trials):
    """A tune folder whose study holds ``trials`` (params, distributions, value: None for a running trial)."""
    optuna = pytest.importorskip("optuna")
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "tune.json").write_text(json.dumps(plan.spec()))
    study = optuna.create_study(study_name="ppox", storage=f"sqlite:///{folder / 'study.db'}", direction="maximize")
    for params, distributions, value in trials:
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.RUNNING
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value,
                                                  state=state))
    return folder, optuna


def test_a_study_names_no_value_the_users_flags_did_not_allow(tmp_path):
    """A trial in study.db whose Ray address is not one of the --ray list: refused, not trained or written."""
    optuna = pytest.importorskip("optuna")
    plan = tune_plan({"env": "CartPole-v1", "driver": "host", "total_timesteps": "1024", "ray": "local,auto"})
    foreign = {"ray": optuna.distributions.CategoricalDistribution(["127.0.0.1:1"])}
    folder, _ = tune_folder(tmp_path, plan, [({"ray": "127.0.0.1:1"}, foreign, 500.0)])
    from ppox.experiments.tune import run_study

    with pytest.raises(ConfigError, match="ray = 127.0.0.1:1, outside this tune's search space"):
        run_study(plan, folder, progress=False)
    assert not (folder / "best_config.json").exists()


def test_a_hand_edited_trial_value_outside_its_range_is_refused(tmp_path):
    optuna = pytest.importorskip("optuna")
    plan = tune_plan()
    lr = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-3, log=True)}
    folder, _ = tune_folder(tmp_path, plan, [({"learning_rate": 3e-4}, lr, 100.0)])
    with contextlib.closing(sqlite3.connect(folder / "study.db")) as db, db:
        db.execute("UPDATE trial_params SET param_value = 5.0")
    from ppox.experiments.tune import run_study

    with pytest.raises(ConfigError, match="learning_rate = 5.0, outside this tune's search space"):
        run_study(plan, folder, progress=False)


# 2. Nothing is removed through a link, nothing that ppox did not make ---------------------------------------------
@pytest.mark.parametrize("linked", ["member", "runs"])
def test_a_sweep_removes_nothing_through_a_link(tmp_path, linked, no_members):
    plan = host_plan()
    folder = sweep_folder(tmp_path, plan, done=[1])
    outside = tmp_path / "D"
    (outside / "c0000_s0" / "sub").mkdir(parents=True)
    for path in (outside / "a.txt", outside / "c0000_s0" / "b.txt", outside / "c0000_s0" / "sub" / "c.txt"):
        path.write_text("keep")
    before = sorted(str(p) for p in outside.rglob("*"))
    if linked == "member":
        (folder / "runs").mkdir()
        (folder / "runs" / "c0000_s0").symlink_to(outside)
        match = "is not the run folder that this sweep's member made"
    else:
        (folder / "runs").symlink_to(outside)
        match = "is a link or a file: a sweep writes only into folders it made"
    with pytest.raises(ConfigError, match=match):
        run_sweep(plan, folder, progress=False)
    assert sorted(str(p) for p in outside.rglob("*")) == before


def test_a_sweep_writes_nothing_through_a_link(tmp_path, no_members):
    """A sweep's own folder (done/, ...) that is a link, even before sweep.json is written, is refused; a report
    image that is a link is replaced, not written through."""
    plan = host_plan()
    outside = tmp_path / "D"
    outside.mkdir()
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "done").symlink_to(outside)
    with pytest.raises(ConfigError, match="is a link or a file: a sweep writes only into folders it made"):
        run_sweep(plan, tmp_path / "S", progress=False)
    assert os.listdir(outside) == [] and not (tmp_path / "S" / "sweep.json").exists()
    folder = sweep_folder(tmp_path / "R", plan, done=[0, 1])
    (folder / "report").mkdir()
    (outside / "precious.png").write_text("keep")
    (folder / "report" / "best_worst.png").symlink_to(outside / "precious.png")
    write_report(folder)
    assert (outside / "precious.png").read_text() == "keep"
    assert not (folder / "report" / "best_worst.png").is_symlink()


def test_a_stale_member_is_removed_only_if_ppox_made_it_and_without_following_links(tmp_path):
    from ppox.experiments.sweep_host import member_config, remove_member, stale_member

    plan = host_plan()
    folder = sweep_folder(tmp_path, plan)
    config = member_config(plan, folder, 0, 0)
    member = folder / "runs" / "c0000_s0"
    (member / "checkpoints").mkdir(parents=True)
    (member / "config.json").write_text(config.replace(run_dir="elsewhere/runs").to_json())  # (named from elsewhere)
    (member / "checkpoints" / "update_00000001.safetensors").write_bytes(b"x")
    outside = tmp_path / "D"
    outside.mkdir()
    (outside / "a.txt").write_text("keep")
    (member / "link").symlink_to(outside)
    assert stale_member(member, config)
    remove_member(member)
    assert not os.path.lexists(member) and (outside / "a.txt").read_text() == "keep"
    other = folder / "runs" / "c0001_s0"
    other.mkdir()
    (other / "config.json").write_text(config.to_json())  # another member's run
    with pytest.raises(ConfigError, match="is not the run folder that this sweep's member made"):
        stale_member(other, member_config(plan, folder, 1, 0))
    (other / "config.json").unlink()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not the run folder that this sweep's member made"):
        stale_member(other, member_config(plan, folder, 1, 0))
    assert stale_member(folder / "runs" / "c0001_s1", member_config(plan, folder, 1, 1)) is False


# 8. One writer per folder -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def held_by_another_process(folder):
    """FOLDER/.lock held (flock) by another process, as a live ppox sweep or tune holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    code = ("import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write(str(os.getpid())); f.flush(); print('held', flush=True); time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_second_sweep_into_a_folder_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", "--total-timesteps", "1024", "--learning-rate", "3e-4,1e-3", "--seeds", "1", "--out", str(out),
            "--no-progress"]
    with held_by_another_process(out) as pid:
        assert main(args) == 2
    assert f"{out} is being written by another ppox process (pid {pid})" in one_line(capsys)
    assert os.listdir(out) == [".lock"]


def test_a_second_tune_leaves_the_live_trial_of_the_first_alone(tmp_path):
    optuna = pytest.importorskip("optuna")
    plan = tune_plan()
    lr = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-3, log=True)}
    folder, _ = tune_folder(tmp_path, plan, [({"learning_rate": 3e-4}, lr, 100.0), ({"learning_rate": 5e-4}, lr, None)])
    from ppox.experiments.tune import run_study

    with held_by_another_process(folder), pytest.raises(ConfigError, match="being written by another ppox process"):
        run_study(plan, folder, progress=False)
    study = optuna.load_study(study_name="ppox", storage=f"sqlite:///{folder / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]


# 9. One line, exit 2: counts, and files that are not as ppox wrote them ----------------------------------------------
@pytest.mark.parametrize("args", [
    ["sweep", "--random", "inf", "--learning-rate", "1e-4:1e-3"],
    ["sweep", "--batch", "1e400", "--learning-rate", "1e-4,1e-3"],
    ["sweep", "--seeds", "inf"],
    ["sweep", "--jobs", "nan"],
    ["sweep", "--seeds", "9" * 5000],
    ["tune", "--trials", "inf", "--learning-rate", "1e-4:1e-3"],
    ["tune", "--seeds", "inf", "--learning-rate", "1e-4:1e-3"],
    ["tune", "--batch-trials", "1e400", "--learning-rate", "1e-4:1e-3"],
])
def test_counts_that_are_no_integers_are_one_line_errors(args, tmp_path, capsys):
    pytest.importorskip("optuna")
    assert main(args + ["--out", str(tmp_path / "x")]) == 2
    assert "must be an integer" in one_line(capsys)
    assert not (tmp_path / "x").exists()


def edit_json(**changes):
    return lambda text: json.dumps({**json.loads(text), **changes}).encode()


SPEC_EDITS = {
    "seeds as text": edit_json(seeds="4"),
    "no combos": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "combos"}).encode(),
    "a combo of a list": edit_json(combos=[[1]]),
    "a combo naming a field that is no axis": edit_json(combos=[{"env": "evil:Env"}]),
    "an axis of the env": edit_json(axes=[{"name": "env", "values": ["a"], "low": None, "high": None}]),
    "a base of the wrong type": edit_json(base={"num_envs": "abc"}),
    "a base that is a list": edit_json(base=[1]),
    "the whole file a number": lambda text: b"3",
    "nested 500 deep": lambda text: text.replace(b'"combos": [', b'"combos": [' + b"[" * 500 + b"]" * 500 + b","),
    "nested 100000 deep": lambda text: text.replace(b'"combos": [', b'"combos": [' + b"[" * 10**5 + b"]" * 10**5 + b","),
    "an integer of 5000 digits": lambda text: text.replace(b'"seeds": 1', b'"seeds": 1' + b"0" * 5000),
    "an integer of 4000 digits": lambda text: text.replace(b'"learning_rate": 0.001', b'"learning_rate": 1' + b"0" * 4000),
    "invalid UTF-8": lambda text: b"\xff\xfe" + text,
}


@pytest.mark.parametrize("edit", SPEC_EDITS.values(), ids=SPEC_EDITS.keys())
def test_a_hand_edited_sweep_json_is_a_one_line_error(tmp_path, capsys, edit, no_members):
    folder = sweep_folder(tmp_path, host_plan(), done=[0])
    spec = folder / "sweep.json"
    spec.write_bytes(edit(spec.read_bytes()))
    assert spec.read_bytes() != json.dumps(host_plan().to_json()).encode()  # (the edit took)
    assert main(["sweep", "--resume", str(folder), "--no-progress"]) == 2
    assert "sweep.json" in one_line(capsys)
    assert not (folder / "runs").exists() and not (folder / "configs").exists()


def edit_record(**changes):
    return lambda text: json.dumps({**json.loads(text), **changes}).encode()


RECORD_EDITS = {
    "final_return as text": edit_record(final_return="x"),
    "final_return of another length": edit_record(final_return=[1.0, 2.0]),
    "no curves": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "curves"}).encode(),
    "curves of a number": edit_record(curves=3),
    "curves of ragged rows": edit_record(curves={"episode_return": [[1.0], [1.0, 2.0]], "episode_count": [[1.0]]}),
    "another index": edit_record(index=1),
    "an index that is true": edit_record(index=True),
    "another configuration's overrides": edit_record(overrides={"learning_rate": 1.0}),
    "batch_size as text": edit_record(batch_size="512"),
    "an integer of 4000 digits": lambda text: text.replace(b"[[0.0,", b"[[1" + b"0" * 4000 + b","),
    "nested 100000 deep": lambda text: text.replace(b'"wall_s":1.0', b'"wall_s":' + b"[" * 10**5 + b"]" * 10**5),
    "invalid UTF-8": lambda text: text + b"\xff",
    "a list": lambda text: b"[]",
}


@pytest.mark.parametrize("edit", RECORD_EDITS.values(), ids=RECORD_EDITS.keys())
def test_a_hand_edited_done_record_is_a_one_line_error(tmp_path, capsys, edit, no_members):
    plan = host_plan()
    folder = sweep_folder(tmp_path, plan, done=[0, 1])
    path = done_path(folder, 0)
    written = json.dumps(record(plan, 0), separators=(",", ":")).encode()
    path.write_bytes(edit(written))
    assert path.read_bytes() != written  # (the edit took)
    assert main(["sweep", "--resume", str(folder), "--no-progress"]) == 2
    err = one_line(capsys)
    assert str(path) in err and "delete it to run that configuration again" in err
    assert not (folder / "report").exists()


TUNE_FILES = {
    "tune.json not UTF-8": ("tune.json", b"\xff\xfe{}"),
    "tune.json not JSON": ("tune.json", b"{"),
    "tune.json nested deep": ("tune.json", b"[" * 10**5 + b"]" * 10**5),
    "study.db not SQLite": ("study.db", b"not a database " * 100),
    "study.db empty": ("study.db", b""),
}


@pytest.mark.parametrize("name, content", TUNE_FILES.values(), ids=TUNE_FILES.keys())
def test_a_corrupt_tune_folder_is_a_one_line_error(tmp_path, name, content):
    plan = tune_plan()
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "tune.json").write_text(json.dumps(plan.spec()))
    (folder / name).write_bytes(content)
    from ppox.experiments.tune import run_study

    with pytest.raises(ConfigError) as err:
        run_study(plan, folder, progress=False)
    assert "\n" not in str(err.value) and f"{folder / name}" in str(err.value)
    assert (folder / name).read_bytes() == content


# 10. Dead ends and leftovers ------------------------------------------------------------------------------------------
def test_files_in_done_that_are_no_configurations_records_are_not_counted(tmp_path):
    plan = host_plan()
    folder = sweep_folder(tmp_path, plan, done=[0, 1])
    done_path(folder, 2).write_text(json.dumps({**record(plan, 0), "index": 2}))  # a stray record
    (folder / "done" / "c0000 copy.json").write_text(done_path(folder, 0).read_text())
    report = write_report(folder)
    assert "2 of 2 configurations" in (report / "table.md").read_text()
    results = json.loads((report / "results.json").read_text())
    assert results["done"] == 2 and sorted(r["index"] for r in results["rows"]) == [0, 1]


@pytest.mark.parametrize("kind", ["another program's SQLite file", "a study of another name"])
def test_tune_writes_no_study_into_a_foreign_sqlite_file(tmp_path, kind):
    optuna = pytest.importorskip("optuna")
    plan = tune_plan()
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "tune.json").write_text(json.dumps(plan.spec()))
    db = folder / "study.db"
    if kind == "a study of another name":
        optuna.create_study(study_name="theirs", storage=f"sqlite:///{db}")
    else:
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
            conn.execute("INSERT INTO notes VALUES ('mine')")
    before = db.read_bytes()
    from ppox.experiments.tune import run_study

    with pytest.raises(ConfigError, match="is not the Optuna study of this tune"):
        run_study(plan, folder, progress=False)
    assert db.read_bytes() == before


@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_a_refused_env_leaves_no_folder_behind(tmp_path, capsys, command):
    pytest.importorskip("optuna")
    out = tmp_path / "x"
    assert main([command, "--env", "os:system", "--learning-rate", "1e-4,1e-3", "--total-timesteps", "1024",
                 "--seeds", "1", "--out", str(out)]) == 2
    assert "'system' in 'os' is not a Gymnasium environment class" in one_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_a_folder_that_holds_something_else_is_not_written_into(tmp_path, capsys, command):
    pytest.importorskip("optuna")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    quick = ["--trials", "1", "--check-seeds", "0"] if command == "tune" else []
    assert main([command, "--learning-rate", "1e-4,1e-3", "--total-timesteps", "1024", "--seeds", "1",
                 "--out", str(out), "--no-progress", *quick]) == 2
    assert f"{out} holds 'notes.txt' but no" in one_line(capsys)
    assert os.listdir(out) == ["notes.txt"]
