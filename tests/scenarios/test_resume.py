"""Nothing lost: checkpoints, resume, interrupts, kill -9, non-finite values, untrusted checkpoint files."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ppox
from ppox.storage.checkpoint import CheckpointError, list_checkpoints, read_checkpoint, save_checkpoint
from ppox.acting.policy import POLICY_FILE
from tests import toy_envs
from tests.helpers import FUSED, ROOT, policy_arrays, ppox_cli, stop_after_checks, wait_for_checkpoint

def config_args(tmp_path, name):
    return ["--run-dir", str(tmp_path), "--run-name", name]


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.long)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_fused_run_resumes_bit_identical(tmp_path, sig):
    proc = ppox_cli("train", *FUSED, *config_args(tmp_path, "cut"))
    wait_for_checkpoint(tmp_path / "cut", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "ppox train --resume" in err
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["interrupted"] is True

    resumed = ppox_cli("train", "--resume", str(tmp_path / "cut"))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["interrupted"] is False

    ppox.train(ppox.Config(env="CartPole-v1", total_timesteps=40960, num_envs=4, num_steps=256,
                          run_dir=str(tmp_path), run_name="whole", progress=False, tensorboard=False))
    a, b = policy_arrays(tmp_path / "cut"), policy_arrays(tmp_path / "whole")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # bit for bit
    rows = (tmp_path / "cut" / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(40))  # every update logged once
    np.testing.assert_array_equal(
        np.genfromtxt(tmp_path / "cut" / "metrics.csv", delimiter=",", skip_header=1)[:, 3:-2],
        np.genfromtxt(tmp_path / "whole" / "metrics.csv", delimiter=",", skip_header=1)[:, 3:-2])


def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    run = tmp_path / "k"
    rng = np.random.default_rng(0)
    kills = 0
    while kills < 4:
        args = ["train", *FUSED, *config_args(tmp_path, "k")] if not list_checkpoints(run) else ["train", "--resume",
                                                                                                   str(run)]
        proc = ppox_cli(*args)
        if list_checkpoints(run):
            # kill while the resumed run works, some of the time right as it writes a checkpoint file
            deadline = time.monotonic() + rng.uniform(2.0, 6.0)
            while time.monotonic() < deadline and proc.poll() is None:
                if rng.random() < 0.3 and any(run.glob("checkpoints/.update_*")):
                    break
                time.sleep(0.001)
        else:
            wait_for_checkpoint(run, proc)
        proc.kill()
        proc.wait()
        kills += 1
        newest = list_checkpoints(run)[-1]
        read_checkpoint(newest)  # loads: never half-written
    resumed = ppox_cli("train", "--resume", str(run))
    out, err = resumed.communicate(timeout=300)
    if "already finished" not in err:  # (the last kill may have come after the final checkpoint)
        assert resumed.returncode == 0, err
    assert ppox.load(run).config.num_updates == 40


def test_host_run_interrupted_and_resumed(tmp_path, monkeypatch):
    """The host driver stops at a signal, checkpoints the learner exactly, and resumes with fresh envs."""
    import ppox.run.loop as loop

    config = ppox.Config(env="CartPole-v1", driver="host", total_timesteps=4096, num_envs=2, num_steps=128,
                         checkpoint_every=512, keep_checkpoints=10, run_dir=str(tmp_path), progress=False,
                         tensorboard=False)
    whole = ppox.train(config.replace(run_name="whole"))

    monkeypatch.setattr(loop, "StopOnSignal", stop_after_checks(6))  # as if SIGINT arrived during update 6
    cut = ppox.train(config.replace(run_name="cut"))
    monkeypatch.undo()
    assert cut.interrupted and cut.metrics["episode_return"].shape[1] == 6
    # the learner state at update 6 is exactly the uninterrupted run's (CartPole is deterministic given the seed)
    cut_checkpoint = read_checkpoint(list_checkpoints(tmp_path / "cut")[-1])
    cut_state, update = cut_checkpoint.arrays, cut_checkpoint.update
    whole_state = read_checkpoint(tmp_path / "whole" / "checkpoints" / "update_00000006.safetensors").arrays
    assert update == 6
    for k in cut_state:
        np.testing.assert_array_equal(cut_state[k], whole_state[k], err_msg=k)

    resumed = ppox.resume(tmp_path / "cut")
    assert not resumed.interrupted
    assert resumed.metrics["episode_return"].shape[1] == whole.metrics["episode_return"].shape[1] == 16
    np.testing.assert_array_equal(resumed.metrics["policy_loss"][:, :6], cut.metrics["policy_loss"])
    assert np.isfinite(resumed.metrics["policy_loss"]).all()


def test_non_finite_reward_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    config = ppox.Config(total_timesteps=64 * 20, num_envs=2, num_steps=32, num_minibatches=2,
                         update_epochs=1, checkpoint_every=64 * 4, run_dir=str(tmp_path), run_name="n",
                         progress=False, tensorboard=False)
    with pytest.raises(FloatingPointError, match="non-finite rewards in update 1[0-9]"):
        ppox.train(config, env=lambda: toy_envs.NanRewardAfter(600))
    newest = list_checkpoints(tmp_path / "n")[-1]
    update = read_checkpoint(newest).update
    assert 4 <= update <= 18


def test_non_finite_parameters_are_never_checkpointed(tmp_path):
    state = {"params": np.array([1.0, np.nan], np.float32)}
    with pytest.raises(FloatingPointError, match=r"state\['params'\] after update 3"):
        save_checkpoint(tmp_path, 3, state, {}, {}, keep=2)
    assert list_checkpoints(tmp_path) == []


def test_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    ppox.train(ppox.Config(total_timesteps=8192, num_envs=4, num_steps=128, checkpoint_every=1024,
                           run_dir=str(tmp_path), run_name="d", progress=False, tensorboard=False))
    files = list_checkpoints(tmp_path / "d")
    assert len(files) == 3  # keep_checkpoints
    # pretend the run stopped before its end: drop the final checkpoint, damage the next newest
    files[-1].unlink()
    data = files[-2].read_bytes()
    files[-2].write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable ppox checkpoint"):
        read_checkpoint(files[-2])
    result = ppox.resume(tmp_path / "d")
    assert result.metrics["episode_return"].shape[1] == 16


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('PPOX_TEST_MARKER', '/nonexistent/marker')}",))


@pytest.mark.parametrize("content", ["pickle", "garbage", "empty", "foreign"])
def test_untrusted_checkpoint_files_are_clear_errors_and_run_no_code(tmp_path, content, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PPOX_TEST_MARKER", str(marker))
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    path = folder / "update_00000001.safetensors"
    if content == "pickle":
        path.write_bytes(pickle.dumps(_Payload()))
    elif content == "garbage":
        path.write_bytes(os.urandom(4096))
    elif content == "empty":
        path.write_bytes(b"")
    else:
        from safetensors.numpy import save_file

        save_file({"x": np.zeros(3, np.float32)}, str(path), metadata={"format": "someone-else"})
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no loadable checkpoint"):
        ppox.resume(tmp_path / "run")
    assert not marker.exists()  # the payload never ran


def test_checkpoint_from_another_format_version_is_refused(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "update_00000001.safetensors"
    save_file({"x": np.zeros(1, np.float32)}, str(path), metadata={"format": "ppox-checkpoint", "format_version": "99"})
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        read_checkpoint(path)


def test_resume_errors_are_one_line_exit_2(tmp_path, capsys):
    from ppox.cli import main

    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["train", "--resume"]) == 2
    assert main(["train", "--resume", str(tmp_path), "--seed", "3"]) == 2
    assert "drop --seed 3" in capsys.readouterr().err


def test_diverging_fused_run_stops_naming_the_loss(tmp_path):
    config = ppox.Config(total_timesteps=4096, num_envs=4, num_steps=128, learning_rate=1e30, anneal_lr=False,
                         max_grad_norm=None, checkpoint_every=0, run_dir=str(tmp_path), run_name="x",
                         progress=False, tensorboard=False)
    with pytest.raises(FloatingPointError, match=r"non-finite .* in update \d+"):
        ppox.train(config)
    assert list_checkpoints(tmp_path / "x") == []  # nothing non-finite was saved


def test_missing_optional_extra_names_the_pip_extra(monkeypatch):
    import gymnasium as gym

    from ppox.config.config import ConfigError
    from ppox.envs.gym_envs import make_vector_env

    def missing(*args, **kwargs):
        raise gym.error.DependencyNotInstalled('MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`')

    monkeypatch.setattr(gym, "make", missing)
    with pytest.raises(ConfigError, match=r'pip install "ppox\[mujoco\]"'):
        make_vector_env("HalfCheetah-v5", 1, "sync")


@pytest.mark.parametrize("driver", ["fused", "host"])
def test_evaluation_at_checkpoints_keeps_the_best(tmp_path, driver):
    config = ppox.Config(driver=driver, total_timesteps=8192, num_envs=4, num_steps=128, checkpoint_every=2048,
                         eval_episodes=3, run_dir=str(tmp_path), run_name="e", progress=False, tensorboard=False)
    ppox.train(config)
    rows = np.atleast_2d(np.genfromtxt(tmp_path / "e" / "evaluations.csv", delimiter=",", skip_header=1))
    assert rows.shape == (4, 4)  # a row per checkpoint: update, step, mean, seed_0
    np.testing.assert_array_equal(rows[:, 1], [2048, 4096, 6144, 8192])
    best = json.loads((tmp_path / "e" / "checkpoints" / "best.json").read_text())
    assert best["eval_return"] == pytest.approx(rows[:, 2].max(), abs=1e-3)
    best_checkpoint = read_checkpoint(tmp_path / "e" / "checkpoints" / "best.safetensors")
    update, meta = best_checkpoint.update, best_checkpoint.meta
    assert update == best["update"] and meta["eval_return"] == best["eval_return"]
    assert all(r >= 8 for r in rows[:, 2])  # CartPole episodes last at least 8 steps


def test_evaluation_refuses_an_env_instance():
    import gymnasium as gym

    with pytest.raises(ppox.ConfigError, match="--eval-episodes needs a fresh env"):
        ppox.train(ppox.Config(eval_episodes=2, save=False, progress=False), env=gym.make("CartPole-v1"))
