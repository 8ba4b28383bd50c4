"""The advantage switch (the registry: gae | td | nstep | mc | ...) and the baseline switch, on both drivers."""

import numpy as np
import pytest

import ppox
from ppox.config.config import Config, ConfigError
from ppox.agent.learner import advantages_and_targets
from ppox.core import ADVANTAGE_ESTIMATORS


def batch(seed=0, T=24, N=3):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    terminated = rng.random((T, N)) < 0.1
    truncated = (rng.random((T, N)) < 0.1) & ~terminated
    # V(s_{t+1}) is the next step's value within an episode; where an episode ends (or the batch does) it
    # is the value of the episode's final observation, which no later step sees
    next_values = np.roll(values, -1, axis=0)
    ends = terminated | truncated
    ends[-1] = True
    next_values[ends] = rng.normal(size=ends.sum()).astype(np.float32)
    return rewards, values, next_values, terminated, truncated


def estimate(**kw):
    return [np.asarray(x, np.float64) for x in advantages_and_targets(Config(**kw), *batch())]


def test_modes_meet_at_their_limits():
    td, _ = estimate(advantage="td")
    mc, _ = estimate(advantage="mc")
    np.testing.assert_allclose(estimate(advantage="gae", gae_lambda=0.0)[0], td, atol=1e-5)
    np.testing.assert_allclose(estimate(advantage="gae", gae_lambda=1.0)[0], mc, atol=1e-4)
    np.testing.assert_allclose(estimate(advantage="nstep", nstep_n=1)[0], td, atol=1e-5)
    np.testing.assert_allclose(estimate(advantage="nstep", nstep_n=24)[0], mc, atol=1e-4)
    assert not np.allclose(estimate(advantage="nstep", nstep_n=4)[0], td, atol=1e-3)


@pytest.mark.parametrize("mode", ["gae", "td", "nstep", "mc"])
def test_value_targets_are_advantage_plus_value(mode):
    advantages, targets = estimate(advantage=mode)
    np.testing.assert_allclose(targets, advantages + batch()[1], atol=1e-5)


@pytest.mark.parametrize("mode", sorted(ADVANTAGE_ESTIMATORS))
def test_every_registered_estimator_reaches_the_learner(mode):
    """--advantage NAME picks the registry's entry: finite advantages and targets shaped [T, N]."""
    advantages, targets = estimate(advantage=mode)
    assert advantages.shape == targets.shape == batch()[0].shape
    assert np.isfinite(advantages).all() and np.isfinite(targets).all()


def test_no_baseline_is_reinforce_on_the_raw_return():
    """G_t summed to the episode's (or the batch's) end, float64 reference, no value anywhere."""
    rewards, _, _, terminated, truncated = (np.asarray(x, np.float64) for x in batch())
    gamma, (T, N) = 0.99, rewards.shape
    expected = np.zeros((T, N))
    for i in range(N):
        g = 0.0
        for t in reversed(range(T)):
            g = rewards[t, i] + (0.0 if (terminated[t, i] or truncated[t, i]) else gamma * g)
            expected[t, i] = g
    advantages, targets = estimate(advantage="mc", baseline=False, gamma=gamma)
    np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(advantages, targets)


def test_invalid_combinations_are_clear_errors():
    with pytest.raises(ConfigError, match="--no-baseline is REINFORCE .* needs --advantage mc"):
        Config(baseline=False)
    *others, last = ADVANTAGE_ESTIMATORS
    with pytest.raises(ConfigError, match=f"--advantage must be {', '.join(others)} or {last}"):
        Config(advantage="lambda")
    with pytest.raises(ConfigError, match="--nstep-n must be a positive integer"):
        Config(advantage="nstep", nstep_n=0)


@pytest.mark.parametrize("driver", ["fused", "host"])
@pytest.mark.parametrize("kw", [dict(advantage="td"), dict(advantage="nstep", nstep_n=3), dict(advantage="mc"),
                                dict(advantage="mc", baseline=False, clip_coef=None, update_epochs=1)])
def test_every_mode_trains_on_both_drivers(driver, kw):
    result = ppox.train(ppox.Config(driver=driver, total_timesteps=2048, num_envs=4, num_steps=64, save=False,
                                    progress=False, **kw))
    assert np.isfinite(result.metrics["policy_loss"]).all()


def test_reinforce_leaves_the_critic_untouched():
    result = ppox.train(ppox.Config(advantage="mc", baseline=False, total_timesteps=4096, save=False, progress=False))
    initial = ppox.train(ppox.Config(advantage="mc", baseline=False, total_timesteps=512, num_steps=128,
                                     num_envs=4, update_epochs=1, num_minibatches=1, learning_rate=1e-12,
                                     anneal_lr=False, save=False, progress=False))
    import jax

    for part in ("critic_trunk", "Dense_0"):  # the critic's hidden layers and its value head
        trained, untouched = result.params["params"][part], initial.params["params"][part]
        for a, b in zip(jax.tree_util.tree_leaves(trained), jax.tree_util.tree_leaves(untouched)):
            np.testing.assert_array_equal(a, b)  # zero gradient, so Adam moves it by exactly 0
    assert not np.array_equal(result.params["params"]["actor_trunk"]["Dense_0"]["kernel"],
                              initial.params["params"]["actor_trunk"]["Dense_0"]["kernel"])


@pytest.mark.long
@pytest.mark.learning
def test_reinforce_learns_cartpole():
    result = ppox.train(ppox.Config(advantage="mc", baseline=False, total_timesteps=200_000, save=False,
                                    progress=False))
    assert result.final_return()[0] >= 120, result.final_return()
