"""Hostile conditions: a disk that fills mid-run, runs that would share a folder, kill -9 at a checkpoint."""

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import ppox
from ppox.storage.checkpoint import list_checkpoints
from ppox.errors import ConfigError
from ppox.utils import tensorfile
from tests.helpers import FUSED, QUICK, ppox_cli, wait_for_checkpoint



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


@pytest.mark.parametrize("tensorboard", [pytest.param(True, marks=pytest.mark.long), False], ids=["tensorboard", "csv-only"])
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

    from ppox.errors import RunWriteError
    from ppox.storage import tensorboard

    def no_space(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tensorboard.TensorBoardTracker, "write", no_space)
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
    from ppox.storage.runfolder import RunLock

    (tmp_path / "r").mkdir()
    held = RunLock(tmp_path / "r")
    try:
        with pytest.raises(ConfigError, match=f"being written by another ppox process \\(pid {os.getpid()}\\)"):
            RunLock(tmp_path / "r")
    finally:
        held.release()
    RunLock(tmp_path / "r").release()  # free again


@pytest.mark.long
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


def _rewrite_config(path: Path, **changes) -> None:
    """Change config fields inside a policy or checkpoint file's metadata (a crafted file)."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    if "meta" in metadata:  # a checkpoint
        meta = json.loads(metadata["meta"])
        meta["config"].update(changes)
        metadata["meta"] = json.dumps(meta)
    else:
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), **changes})
    save_file(arrays, str(path), metadata=tensorfile.sealed(arrays, metadata))  # crafted: checksums recomputed


def test_an_entry_point_named_in_a_file_is_not_imported_without_confirmation(tmp_path):
    """A crafted run folder naming 'code:interact' (Python read from stdin) runs nothing."""
    result = ppox.train(ppox.Config(**{**QUICK, "total_timesteps": 4096}, checkpoint_every=1024, run_dir=str(tmp_path),
                                    run_name="r"))
    _rewrite_config(result.run_path / "policy.safetensors", env="code:interact")
    for checkpoint in list_checkpoints(result.run_path)[:-1]:
        checkpoint.unlink()
    _rewrite_config(list_checkpoints(result.run_path)[-1], env="code:interact", total_timesteps=8192)
    marker = tmp_path / "ran"
    payload = f"open({str(marker)!r}, 'w').close()\n"
    for args in (["eval", str(result.run_path)], ["train", "--resume", str(result.run_path)]):
        proc = ppox_cli(*args, stdin=subprocess.PIPE)
        out, err = proc.communicate(payload, timeout=120)
        assert proc.returncode == 2, err
        assert "entry point" in err and "--env code:interact" in err and len(err.strip().splitlines()) == 1, err
    assert not marker.exists()


def test_a_confirmed_entry_point_evaluates(tmp_path):
    env = "tests.toy_envs:countdown"
    result = ppox.train(ppox.Config(**QUICK, env=env, run_dir=str(tmp_path), run_name="c"))
    policy = ppox.load(result.run_path)
    with pytest.raises(ConfigError, match="entry point"):
        ppox.evaluate(policy, episodes=1)
    assert len(ppox.evaluate(policy, episodes=2, env=env)) == 2
    assert len(ppox.evaluate(policy, episodes=2, trust_env=True)) == 2
    proc = ppox_cli("eval", str(result.run_path), "--episodes", "2", "--env", env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def test_a_ray_address_in_a_checkpoint_is_not_dialled_without_confirmation(tmp_path):
    result = ppox.train(ppox.Config(**{**QUICK, "total_timesteps": 4096}, checkpoint_every=1024, run_dir=str(tmp_path),
                                    run_name="ray", driver="host"))
    for checkpoint in list_checkpoints(result.run_path):
        _rewrite_config(checkpoint, ray="10.0.0.1:6379", total_timesteps=8192)
    with pytest.raises(ConfigError, match="Ray cluster at '10.0.0.1:6379'.*ray='10.0.0.1:6379'"):
        ppox.resume(result.run_path)


@pytest.mark.parametrize("target", ["os:system", "os:abort", "os:sep", "json:JSONDecoder"])
def test_a_non_env_entry_point_on_the_command_line_is_one_line(tmp_path, target):
    proc = ppox_cli("train", "--env", target, "--run-dir", str(tmp_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [f"ppox train: error: --env {target}: {target.split(':')[1]!r} in "
                                        f"{target.split(':')[0]!r} is not a Gymnasium environment class or factory "
                                        "(a gymnasium.Env subclass, or a Python function returning an env)"]
    assert not any(tmp_path.iterdir())  # no run folder left


def _rewrite_metadata(path: Path, change) -> None:
    """Apply ``change`` to a safetensors file's metadata dict (meta is JSON-decoded for checkpoints)."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(metadata["meta"])
    change(metadata, meta, arrays)
    metadata["meta"] = json.dumps(meta)
    save_file(arrays, str(path), metadata=tensorfile.sealed(arrays, metadata))  # crafted: checksums recomputed


CRAFTED = {
    "missing driver": lambda md, meta, arrays: meta.pop("driver"),
    "hidden_sizes 5": lambda md, meta, arrays: meta["config"].update(hidden_sizes=5),
    "num_envs a string": lambda md, meta, arrays: meta["config"].update(num_envs="4"),
    "negative update": lambda md, meta, arrays: md.update(update="-3"),
    "update past the run": lambda md, meta, arrays: md.update(update="999"),
    "3-D metric": lambda md, meta, arrays: arrays.update({"metrics/policy_loss": np.zeros((1, 2, 2), np.float32)}),
    "wall time text": lambda md, meta, arrays: meta.update(wall_time="soon"),
    "config not an object": lambda md, meta, arrays: meta.update(config=[1, 2]),
}


@pytest.mark.parametrize("craft", sorted(CRAFTED))
def test_crafted_checkpoint_metadata_falls_back_to_the_one_before(tmp_path, craft, capsys):
    config = ppox.Config(**{**QUICK, "total_timesteps": 8192}, checkpoint_every=1024, run_dir=str(tmp_path),
                         run_name="c")
    ppox.train(config)
    files = list_checkpoints(tmp_path / "c")
    files[-1].unlink()  # as if stopped before the end
    _rewrite_metadata(files[-2], CRAFTED[craft])
    from ppox.storage.checkpoint import read_checkpoint
    from ppox.errors import CheckpointError

    with pytest.raises(CheckpointError, match="damaged checkpoint metadata|not a readable"):
        read_checkpoint(files[-2])
    result = ppox.resume(tmp_path / "c")
    assert "skipped a damaged checkpoint" in capsys.readouterr().err
    assert result.metrics["episode_return"].shape[1] == config.num_updates
    rows = [int(r.split(",")[1]) for r in (tmp_path / "c" / "metrics.csv").read_text().strip().splitlines()[1:]]
    assert min(rows) > 0  # no negative global steps


def test_a_sparse_file_claiming_gigabytes_is_refused_without_reading_it(tmp_path):
    import json
    import resource

    from ppox.storage.checkpoint import read_checkpoint
    from ppox.errors import CheckpointError

    header = json.dumps({"state['params']": {"dtype": "F32", "shape": [805306368], "data_offsets": [0, 3221225472]},
                         "__metadata__": {"format": "ppox-checkpoint", "format_version": "1"}}).encode()
    path = tmp_path / "update_00000001.safetensors"
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        f.truncate(8 + len(header) + 3221225472)  # 3 GiB, all holes: about 4 KB on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="on disk"):
        read_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing like 3 GiB
    small = tmp_path / "small.safetensors"  # the same claim in a 4 KB file: outside the file
    small.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4000)
    with pytest.raises(CheckpointError, match="byte range"):
        read_checkpoint(small)


def test_a_flipped_bit_is_damage(tmp_path):
    from ppox.storage.checkpoint import read_checkpoint
    from ppox.errors import CheckpointError

    result = ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="b"))
    for path in (list_checkpoints(result.run_path)[-1], result.run_path / "policy.safetensors"):
        data = bytearray(path.read_bytes())
        data[-5] ^= 0x10  # in the last tensor's bytes
        path.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="checksum"):
            read_checkpoint(path) if "update_" in path.name else ppox.load(path)


def test_a_policy_whose_arrays_do_not_fit_its_config_is_refused_before_reading(tmp_path):
    from ppox.errors import CheckpointError

    result = ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="p"))
    _rewrite_config(result.run_path / "policy.safetensors", hidden_sizes=[32, 32])
    from ppox.utils import tensorfile

    def no_reading(*args, **kwargs):
        raise AssertionError("a tensor was read before the shapes were checked")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tensorfile, "safe_open", no_reading)
        with pytest.raises(CheckpointError, match="do not match the network"):
            ppox.load(result.run_path)  # refused from the header alone
    _rewrite_config(result.run_path / "policy.safetensors", hidden_sizes=5)
    with pytest.raises(CheckpointError, match="hidden-sizes must be a list of integers"):
        ppox.load(result.run_path)


BROKEN = {
    "WrongShapeObs": "step\\(\\) returned an observation that does not fit .*expected shape \\(3,\\), got shape \\(5,\\)",
    "ResetNotTuple": "reset\\(\\) returned ndarray .*returns \\(observation, info\\)",
    "FourTupleStep": "step\\(\\) returned a 4-tuple \\(the old Gym API",
    "NoneObs": "reset\\(\\) returned an observation that does not fit .*got None",
    "TextInBox": "step\\(\\) returned an observation that does not fit .*expected numbers",
    "NoSpaces": "it has no observation_space",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_an_env_that_breaks_the_contract_is_one_clear_line(tmp_path, name):
    from tests import toy_envs

    with pytest.raises(ConfigError, match=f"env {name}: " + BROKEN[name]):
        ppox.train(ppox.Config(**QUICK, save=False), env=getattr(toy_envs, name))
    proc = ppox_cli("train", "--env", f"tests.toy_envs:{name}", "--total-timesteps", "1024", "--run-dir",
                    str(tmp_path))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())


CLI_ATTACKS = {
    "huge timesteps": (["train", "--total-timesteps", "1e23"], "more than ppox counts"),
    "bad seed": (["eval", "RUN", "--seed", "-1"], "--seed and --seed-index must be integers >= 0"),
    "unwritable out": (["explain", "clip", "--out", "/proc/no/such/x"], "cannot write /proc/no/such/x"),
    "not a number": (["train", "--num-envs", "abc"], "Error parsing --num-envs"),
    "env twice": (["train", "--env", "CartPole-v1", "--env", "Acrobot-v1"], "--env is given more than once"),
    "ladder zero steps": (["ladder", "--total-timesteps", "0"], "--total-timesteps must be a positive integer"),
}


@pytest.mark.parametrize("attack", sorted(CLI_ATTACKS))
def test_the_remaining_cli_tracebacks_are_one_line(tmp_path, attack, capsys):
    from ppox.cli import main

    args, message = CLI_ATTACKS[attack]
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    if args[0] == "train":
        args += ["--run-dir", str(tmp_path / "runs")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_whole_numbers_may_be_written_in_scientific_notation(tmp_path, capsys):
    from ppox.cli import main

    assert main(["train", "--total-timesteps", "2e3", "--num-envs", "4", "--num-steps", "128", "--no-save",
                 "--no-progress"]) == 0
    assert "1,536 steps" in capsys.readouterr().out
