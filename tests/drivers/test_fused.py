"""The fused driver: rollouts keep episode boundaries right, runs are reproducible, and PPO learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.config.config import Config
from ppox.drivers.fused_program import build, make_train


def _rollout(config):
    fused = build(config)
    runner = fused.init(jax.random.PRNGKey(0))
    runner, traj = jax.jit(fused.collect)(runner)
    return fused, runner, traj


def test_cartpole_terminations_carry_the_terminal_observation():
    config = Config(num_envs=4, num_steps=256, total_timesteps=1024, save=False)
    _, _, traj = _rollout(config)
    term = np.asarray(traj.terminated)
    assert term.sum() > 0, "a random CartPole policy ends episodes within 256 steps"
    next_obs, obs = np.asarray(traj.next_obs), np.asarray(traj.obs)
    t, e = np.nonzero(term)
    # the final observation is out of bounds (|x| > 2.4 or |theta| > 12 degrees) ...
    out = (np.abs(next_obs[t, e, 0]) > 2.4) | (np.abs(next_obs[t, e, 2]) > 12 * 2 * np.pi / 360)
    assert out.all()
    # ... while the observation the policy sees next is a fresh reset (all components within +-0.05)
    inside = t + 1 < config.num_steps
    assert np.all(np.abs(obs[t[inside] + 1, e[inside]]) <= 0.05)
    # where no episode ended, next_obs is the next step's observation
    cont = ~(term[:-1] | np.asarray(traj.truncated)[:-1])
    np.testing.assert_array_equal(next_obs[:-1][cont], obs[1:][cont])


def test_pendulum_truncates_never_terminates_and_clips_actions():
    config = Config.preset("Pendulum-v1", num_envs=2, num_steps=256, total_timesteps=512, save=False,
                           log_std_init=1.0)
    _, _, traj = _rollout(config)
    assert not np.asarray(traj.terminated).any()
    trunc = np.asarray(traj.truncated)
    assert trunc[199].all() and trunc.sum() == 2  # time limit 200
    assert trunc.dtype == bool
    raw = np.asarray(traj.action)
    assert (np.abs(raw) > 2.0).any(), "actions are stored unclipped for the update"
    assert np.isfinite(np.asarray(traj.finished_return)[199]).all()


def test_episode_statistics_are_raw_returns():
    config = Config.preset("Pendulum-v1", num_envs=2, num_steps=256, total_timesteps=512, save=False)
    _, _, traj = _rollout(config)  # norm_reward is on in this preset: training rewards are scaled ...
    raw_return = np.asarray(traj.finished_return)[199]
    assert np.all(raw_return < -100)  # ... but a random Pendulum episode's raw return is in the -1000s
    assert np.all(np.asarray(traj.finished_length)[199] == 200)


def test_same_seed_same_result_bit_for_bit():
    config = Config(total_timesteps=4096, save=False, progress=False)
    a, b = ppox.train(config), ppox.train(config)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.metrics["policy_loss"], b.metrics["policy_loss"])


def test_make_train_is_one_vmappable_function_matching_ppox_train():
    config = Config(total_timesteps=4096, save=False, progress=False, seeds=2)
    keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    runner, metrics = jax.jit(jax.vmap(make_train(config)))(keys)
    assert metrics["policy_loss"].shape == (2, config.num_updates)
    result = ppox.train(config)
    np.testing.assert_allclose(metrics["episode_count"], result.metrics["episode_count"])
    for x, y in zip(jax.tree_util.tree_leaves(runner.params), jax.tree_util.tree_leaves(result.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_metrics_are_complete_and_finite():
    result = ppox.train(Config(total_timesteps=8192, save=False, progress=False))
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "learning_rate"):
        assert np.isfinite(result.metrics[name]).all(), name
    assert (result.metrics["approx_kl"] >= -1e-6).all()
    assert result.metrics["episode_count"].sum() > 0


@pytest.mark.learning
def test_default_cartpole_solves():
    """`ppox train` defaults: mean episodic return over the last tenth of training >= 475."""
    result = ppox.train(Config(save=False, progress=False))
    assert result.final_return()[0] >= 475


@pytest.mark.long
@pytest.mark.learning
def test_cleanrl_cartpole_eight_vmapped_seeds_all_solve():
    config = Config(env="CartPole-v1", total_timesteps=500_000, num_envs=4, num_steps=128, update_epochs=4,
                    num_minibatches=4, learning_rate=2.5e-4, anneal_lr=True, clip_coef=0.2, ent_coef=0.01,
                    gae_lambda=0.95, seeds=8, save=False, progress=False)
    finals = ppox.train(config).final_return()
    assert finals.shape == (8,) and (finals >= 475).all(), finals


@pytest.mark.long
@pytest.mark.learning
def test_acrobot_preset_reaches_minus_100():
    result = ppox.train(Config.preset("Acrobot-v1", seeds=2, save=False, progress=False))
    assert (result.final_return() >= -100).all(), result.final_return()


@pytest.mark.long
@pytest.mark.learning
def test_pendulum_preset_learns():
    result = ppox.train(Config.preset("Pendulum-v1", seeds=2, save=False, progress=False))
    early = np.nanmean(result.metrics["episode_return"][:, :5])
    assert early < -900
    assert (result.final_return() >= -400).all(), result.final_return()


@pytest.mark.parametrize("env", ["Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Breakout-MinAtar",
                                 "SpaceInvaders-MinAtar"])
def test_runs_on_the_gymnax_set(env):
    """Every supported JAX-native env trains for a few updates with finite losses (learning is tested above)."""
    config = Config.preset(env, num_envs=4, num_steps=32, total_timesteps=256, num_minibatches=2,
                           hidden_sizes=(16,), save=False, progress=False)
    result = ppox.train(config)
    assert result.metrics["policy_loss"].shape == (1, 2)
    assert np.isfinite(result.metrics["value_loss"]).all() and np.isfinite(result.metrics["entropy"]).all()


def test_train_with_an_env_id_uses_its_preset():
    result = ppox.train(env="Acrobot-v1", total_timesteps=4096, save=False, progress=False)
    assert result.config.env == "Acrobot-v1" and result.config.num_envs == 8  # the Acrobot preset, fused driver
