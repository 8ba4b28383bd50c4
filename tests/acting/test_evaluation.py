"""ppox eval: episodes with a saved policy, on Gymnasium and on gymnax-only environments."""

import dataclasses

import numpy as np
import pytest

import ppox
from ppox.cli import main
from ppox.core.normalize import RunningMeanStd
from ppox.acting.evaluation import evaluate


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    config = ppox.Config(total_timesteps=30_000, norm_obs=True, run_dir=str(tmp_path_factory.mktemp("runs")),
                         run_name="cp", progress=False)
    return ppox.train(config)


def test_saved_policy_evaluates_like_the_trained_one(cartpole_run):
    saved = evaluate(ppox.load(cartpole_run.run_path), episodes=3, seed=1)
    in_memory = evaluate(cartpole_run.policy(), episodes=3, seed=1)
    np.testing.assert_array_equal(saved, in_memory)  # the normalisation statistics travel with the file
    assert saved.shape == (3,) and np.all(saved >= 8)


def test_max_episode_steps_cuts_the_episodes_of_a_jax_env(cartpole_run):
    """gymnax CartPole (fused): ``max_episode_steps`` caps each episode (it was ignored for JAX envs before)."""
    capped = evaluate(ppox.load(cartpole_run.run_path), episodes=3, seed=1, max_episode_steps=5)
    whole = evaluate(ppox.load(cartpole_run.run_path), episodes=3, seed=1)
    assert (capped <= 5).all() and (whole > 5).all()


def test_normalisation_statistics_matter(cartpole_run):
    policy = ppox.load(cartpole_run.run_path)
    identity = dataclasses.replace(policy, obs_stats=RunningMeanStd.create((4,)))
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32) * [1, 2, 0.1, 2]
    assert not np.array_equal(policy.act(obs), identity.act(obs))


def test_cli_eval_prints_mean_and_std(cartpole_run, capsys):
    assert main(["eval", str(cartpole_run.run_path), "--episodes", "2", "--deterministic"]) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1: return" in out and "over 2 episodes (deterministic policy)" in out


def test_cli_eval_bad_input(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_gymnax_only_env_evaluates_in_jax(tmp_path):
    config = ppox.Config.preset("Breakout-MinAtar", total_timesteps=2048, num_envs=8, num_steps=32,
                                hidden_sizes=(16,), run_dir=str(tmp_path), run_name="b", progress=False)
    ppox.train(config)
    returns = evaluate(ppox.load(tmp_path / "b"), episodes=4)
    assert returns.shape == (4,) and np.all(returns >= 0)
    returns = evaluate(ppox.load(tmp_path / "b"), episodes=2, video_folder=tmp_path / "v")  # drawn from the grid
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["Breakout-MinAtar-episode-0.mp4",
                                                                  "Breakout-MinAtar-episode-1.mp4"]


@pytest.mark.learning
@pytest.mark.long
def test_host_policy_with_observation_normalisation_evaluates_as_in_training(tmp_path):
    """Pendulum's observations span [-1, 1] and [-8, 8]: the saved statistics decide the actions.

    Trained on the host driver (the Gymnasium env stepped from Python), saved, loaded from the file
    and run on fresh episodes, the policy returns what it returned during training; with the
    statistics replaced by the identity it does much worse."""
    config = ppox.Config.preset("Pendulum-v1", driver="host", total_timesteps=150_000, run_dir=str(tmp_path),
                                run_name="p", progress=False, tensorboard=False)
    result = ppox.train(config)
    training = float(result.final_return()[0])
    assert training >= -500, training
    policy = ppox.load(tmp_path / "p")
    evaluated = evaluate(policy, episodes=16, seed=123)
    assert abs(evaluated.mean() - training) < 120, (evaluated.mean(), training)
    identity = dataclasses.replace(policy, obs_stats=RunningMeanStd.create((3,)))
    assert evaluate(identity, episodes=16, seed=123).mean() < evaluated.mean() - 150
