"""Saved policies: safe round trip, same actions as in training, clear errors for bad files."""

import numpy as np
import pytest

import ppox
from ppox.storage.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    config = ppox.Config.preset("Pendulum-v1", total_timesteps=4096, num_steps=256, num_envs=4, seeds=2,
                                run_dir=str(tmp_path_factory.mktemp("runs")), run_name="p", progress=False)
    return ppox.train(config)


def test_loaded_policy_acts_like_the_trained_one(pendulum_run):
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    for seed_index in (0, 1):
        loaded = ppox.load(pendulum_run.run_path, seed_index=seed_index)
        np.testing.assert_array_equal(loaded.act(obs), pendulum_run.policy(seed_index).act(obs))
    assert loaded.config == pendulum_run.config
    # observation normalisation statistics travel with the policy
    np.testing.assert_array_equal(np.asarray(loaded.obs_stats.mean), np.asarray(pendulum_run.obs_stats.mean[1]))
    actions = loaded.act(obs * 100)
    assert actions.shape == (16, 1) and np.all(np.abs(actions) <= 2.0)  # clipped to the action bounds


def test_policy_input_checks(pendulum_run):
    policy = pendulum_run.policy()
    with pytest.raises(ValueError, match=r"shaped \[batch, 3\]"):
        policy.act(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="needs a key"):
        policy.act(np.zeros((2, 3)), deterministic=False)
    with pytest.raises(CheckpointError, match="seed_index 5 out of range"):
        ppox.load(pendulum_run.run_path, seed_index=5)


def test_damaged_and_foreign_files_are_clear_errors(pendulum_run, tmp_path):
    good = (pendulum_run.run_path / "policy.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="not a readable ppox policy"):
        ppox.load(truncated)
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"\x80\x04\x95 this is a pickle, not a policy")
    with pytest.raises(CheckpointError):
        ppox.load(foreign)
    with pytest.raises(CheckpointError, match="no such file"):
        ppox.load(tmp_path / "missing")
