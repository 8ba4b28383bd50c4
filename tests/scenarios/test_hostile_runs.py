"""Hostile input, second pass (issue 32): two runs of one name, a kill -9 between the final checkpoint and the
policy, dead ends of a run stopped early, a checkpoint that does not fit its own config, leftover temporary
files. Each test failed on the code before its fix."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import ppox
from ppox.acting.policy import POLICY_FILE
from ppox.errors import CheckpointError
from ppox.storage.checkpoint import list_checkpoints
from ppox.utils import tensorfile
from tests.helpers import FUSED, QUICK, ROOT

OLD_RUN = ROOT / "tests" / "storage" / "fixtures" / "run_v1"  # written by ppox 38020fd: format version 1
SHORT = ["--total-timesteps", "2048", "--num-envs", "4", "--num-steps", "128", "--no-progress", "--no-tensorboard"]


def python(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PPOX_CACHE_DIR": ""}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# `ppox train ARGS...` that stops right after claiming its run folder until the file GO exists (it says so by
# making the file CLAIMED): the moment at which a second run of the same name used to slip in.
PAUSED_AFTER_CLAIM = """
import sys, time, pathlib
import ppox.run.training as training
claimed, go = map(pathlib.Path, sys.argv[1:3])
say_rounding = training.say_rounding
def paused(config):
    claimed.touch()
    while not go.exists():
        time.sleep(0.01)
    say_rounding(config)
training.say_rounding = paused
from ppox.cli import main
sys.exit(main(["train", *sys.argv[3:]]))
"""


def test_two_runs_started_together_with_one_name_leave_one_whole_run(tmp_path):
    """The second run of a name is refused and removes nothing: the first finishes with all its files. (Before:
    both passed the folder check; the one that lost the lock removed the other's config.json, metrics.csv and
    tb/, and the other ended with exit 0 and no metrics.)"""
    run, claimed, go = tmp_path / "same", tmp_path / "claimed", tmp_path / "go"
    args = [*FUSED, "--run-dir", str(tmp_path), "--run-name", "same"]
    first = python(PAUSED_AFTER_CLAIM, claimed, go, *args)
    deadline = time.monotonic() + 120
    while not claimed.exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second = subprocess.Popen([sys.executable, "-m", "ppox.cli", "train", *args], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "PPOX_CACHE_DIR": ""})
    while second.poll() is None and not (run / "metrics.csv").exists():  # refused, or (before) writing its files
        assert time.monotonic() < deadline + 120
        time.sleep(0.02)
    go.touch()
    outcomes = [(proc.returncode, err) for proc in (first, second) for _, err in [proc.communicate(timeout=300)]]
    assert sorted(code for code, _ in outcomes) == [0, 2], outcomes
    assert (run / "config.json").is_file() and (run / POLICY_FILE).is_file() and list_checkpoints(run), outcomes
    rows = (run / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(40))
    refused = next(err for code, err in outcomes if code == 2)
    assert "already holds a run" in refused and len(refused.strip().splitlines()) == 1, refused


# `ppox train ARGS...` killed (SIGKILL) while writing its policy file, after its final checkpoint.
KILLED_WRITING_THE_POLICY = """
import os, signal, sys
import ppox.run.training as training
def killed(path, *args, **kwargs):
    path.with_name(".policy.safetensors.abcdefgh.tmp").write_bytes(b"half a file")
    os.kill(os.getpid(), signal.SIGKILL)
training.save_policy = killed
from ppox.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""


def test_kill_9_between_the_final_checkpoint_and_the_policy_loses_nothing(tmp_path, capsys):
    """(Before: no policy.safetensors for ever; --resume said "already finished", eval "no such file".)"""
    run = tmp_path / "k"
    proc = python(KILLED_WRITING_THE_POLICY, *SHORT, "--run-dir", tmp_path, "--run-name", "k")
    proc.communicate(timeout=300)
    assert proc.returncode == -9
    assert not (run / POLICY_FILE).exists() and list_checkpoints(run)[-1].name == "update_00000004.safetensors"
    from ppox.cli import main

    assert main(["eval", str(run), "--episodes", "2"]) == 0  # the policy saved with the final checkpoint
    assert "has no policy.safetensors: using the policy saved with" in capsys.readouterr().err
    ppox.resume(run)
    assert "written from" in capsys.readouterr().err
    saved = load_file(str(list_checkpoints(run)[-1]))
    policy = load_file(str(run / POLICY_FILE))
    assert policy.keys() == {k[len("policy/"):] for k in saved if k.startswith("policy/")}
    for name, array in policy.items():
        np.testing.assert_array_equal(array, saved["policy/" + name])
    assert json.loads((run / "summary.json").read_text())["interrupted"] is False
    assert not list(run.glob("*.tmp"))  # the killed write's temporary file is gone
    with pytest.raises(CheckpointError, match="already finished"):
        ppox.resume(run)


def test_an_old_run_that_lost_its_policy_gets_it_back_from_its_final_checkpoint(tmp_path):
    """A format-1 run (its checkpoints hold no copy of the policy): eval says how to get it back, and resume
    rebuilds it from the final checkpoint's state, equal to the policy the run wrote."""
    run = tmp_path / "old"
    shutil.copytree(OLD_RUN, run)
    written = load_file(str(run / POLICY_FILE))
    (run / POLICY_FILE).unlink()
    with pytest.raises(CheckpointError, match="holds no policy; write it with: ppox train --resume"):
        ppox.load(run)
    ppox.resume(run)
    rebuilt = load_file(str(run / POLICY_FILE))
    assert rebuilt.keys() == written.keys()
    for name in written:
        np.testing.assert_array_equal(rebuilt[name], written[name], err_msg=name)
    assert ppox.load(run).config.hidden_sizes == (8,)


def test_a_run_stopped_before_its_first_checkpoint_does_not_block_its_name(tmp_path, monkeypatch, capsys):
    """(Before: its folder refused the name, and --resume said "no checkpoints": a dead end.) A kill -9 leaves
    the same folder: config.json, metrics rows, an unheld lock, no checkpoint."""
    from ppox.run import loop

    def broken(*args, **kwargs):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(loop, "save_checkpoint", broken)
    config = ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="early")
    with pytest.raises(RuntimeError):
        ppox.train(config)
    run = tmp_path / "early"
    assert len((run / "metrics.csv").read_text().splitlines()) > 1 and not list_checkpoints(run)
    with pytest.raises(CheckpointError, match="stopped before its first one.*same --run-name reuses the folder"):
        ppox.resume(run)
    monkeypatch.undo()
    result = ppox.train(config)
    assert "stopped before its first checkpoint: starting afresh" in capsys.readouterr().err
    rows = (run / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(result.config.num_updates))


def _craft_config(path: Path, **changes) -> None:
    """A crafted checkpoint: its config changed, its checksums computed again (a valid file)."""
    with safe_open(str(path), framework="numpy") as f:
        metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(metadata["meta"])
    meta["config"].update(changes)
    metadata["meta"] = json.dumps(meta)
    save_file(arrays, str(path), metadata=tensorfile.sealed(arrays, metadata))


def test_a_checkpoint_whose_arrays_do_not_fit_its_config_falls_back_to_the_one_before(tmp_path, capsys):
    """(Before: CheckpointError "... this run needs float32[...]" and no resume.)"""
    config = ppox.Config(**{**QUICK, "total_timesteps": 4096}, checkpoint_every=1024, run_dir=str(tmp_path),
                         run_name="c")
    ppox.train(config)
    files = list_checkpoints(tmp_path / "c")
    files[-1].unlink()  # as if stopped before the end
    _craft_config(files[-2], hidden_sizes=[32, 32])
    result = ppox.resume(tmp_path / "c")
    err = capsys.readouterr().err
    assert "skipped a damaged checkpoint" in err and "this run needs" in err
    assert result.metrics["episode_return"].shape[1] == config.num_updates
    assert result.config.hidden_sizes == config.hidden_sizes


def test_leftover_temporary_files_are_removed_when_the_run_resumes(tmp_path):
    config = ppox.Config(**{**QUICK, "total_timesteps": 4096}, checkpoint_every=1024, run_dir=str(tmp_path),
                         run_name="t")
    ppox.train(config)
    run = tmp_path / "t"
    list_checkpoints(run)[-1].unlink()
    leftovers = [run / ".metrics.csv.abcdefgh.tmp", run / "checkpoints" / ".update_00000008.safetensors.a1b2c3d4.tmp"]
    for path in leftovers:
        path.write_bytes(b"cut short")
    (run / "notes.tmp").write_text("mine")
    ppox.resume(run)
    assert not any(path.exists() for path in leftovers)
    assert (run / "notes.tmp").read_text() == "mine"
