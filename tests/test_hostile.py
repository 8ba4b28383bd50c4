"""Hostile conditions: a disk that fills mid-run, runs that would share a folder, kill -9 at a checkpoint."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import ppox
from ppox.checkpoint import list_checkpoints
from ppox.errors import ConfigError
from tests.test_resume import FUSED, ppox_cli, wait_for_checkpoint

QUICK = dict(total_timesteps=2048, num_envs=4, num_steps=128, progress=False, tensorboard=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (needs root, as in CI); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    f = open(filler, "wb", buffering=0)
    try:
        while True:
            f.write(b"\0" * 4096)
    except OSError:
        pass
    f.close()
    return filler


@pytest.mark.parametrize("tensorboard", [True, False], ids=["tensorboard", "csv-only"])
def test_a_disk_that_fills_mid_run_stops_it_in_one_line_and_it_resumes(small_disk, tensorboard):
    run = small_disk / "full"
    args = ["--total-timesteps", "409600", "--num-envs", "4", "--num-steps", "256", "--checkpoint-every", "8192",
            "--keep-checkpoints", "2", "--no-progress", "--run-dir", str(small_disk), "--run-name", "full"]
    proc = ppox_cli("train", *args, *([] if tensorboard else ["--no-tensorboard"]))
    wait_for_checkpoint(run, proc)
    filler = fill(small_disk)
    out, err = proc.communicate(timeout=120)  # it must not hang
    assert proc.returncode == 1, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ppox train: stopped: could not write"), err
    assert "No space left on device" in lines[0] and "ppox train --resume" in lines[0]
    assert list_checkpoints(run), "the last good checkpoint stays"
    filler.unlink()
    resumed = ppox_cli("train", "--resume", str(run))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    rows = (run / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(400))  # every update once


def test_a_write_error_of_the_metrics_writer_stops_the_run(tmp_path, monkeypatch):
    """(Without root:) the run log's writer failing with ENOSPC stops training with a RunWriteError."""
    import errno

    from ppox import runlog
    from ppox.errors import RunWriteError

    def no_space(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runlog.RunFiles, "_write_events", no_space)
    with pytest.raises(RunWriteError, match="could not write .*No space left on device.*ppox train --resume"):
        ppox.train(ppox.Config(**{**QUICK, "tensorboard": True, "total_timesteps": 20480}, run_dir=str(tmp_path),
                               run_name="x"))


def test_a_second_run_with_the_same_name_is_refused(tmp_path):
    ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="same"))
    first = (tmp_path / "same" / "metrics.csv").read_text()
    with pytest.raises(ConfigError, match="already holds a run.*ppox train --resume"):
        ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="same", seed=1))
    assert (tmp_path / "same" / "metrics.csv").read_text() == first  # untouched


def test_default_names_never_collide(tmp_path):
    paths = {ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path))).run_path for _ in range(3)}
    assert len(paths) == 3  # the same env, seed and (probably) second: -2, -3 are appended


def test_two_live_writers_of_one_run_are_refused(tmp_path):
    from ppox.runlog import RunLock

    (tmp_path / "r").mkdir()
    held = RunLock(tmp_path / "r")
    try:
        with pytest.raises(ConfigError, match=f"being written by another ppox process \\(pid {os.getpid()}\\)"):
            RunLock(tmp_path / "r")
    finally:
        held.release()
    RunLock(tmp_path / "r").release()  # free again


def test_kill_9_right_after_a_checkpoint_loses_no_metrics_row(tmp_path):
    """The rows up to a checkpoint are on disk before the checkpoint file exists."""
    run = tmp_path / "k"
    for trial in range(3):
        args = ["train", *FUSED, "--run-dir", str(tmp_path), "--run-name", "k"] if trial == 0 else \
            ["train", "--resume", str(run)]
        before = {p.name for p in list_checkpoints(run)}
        proc = ppox_cli(*args)
        deadline = time.monotonic() + 120
        while {p.name for p in list_checkpoints(run)} <= before and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        proc.kill()
        proc.wait()
        newest = list_checkpoints(run)[-1]
        update = int(newest.stem.split("_")[1])
        rows = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().strip().splitlines()[1:]]
        assert set(range(update)) <= set(rows), f"trial {trial}: rows missing before checkpoint {update}"
    resumed = ppox_cli("train", "--resume", str(run))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 or "already finished" in err, err
    rows = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().strip().splitlines()[1:]]
    assert rows == list(range(40))
    assert not list(run.glob(".metrics.csv.*.tmp"))
    np.testing.assert_equal(len(rows), 40)
