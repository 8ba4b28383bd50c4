"""Running statistics, observation normalisation and reward scaling vs float64 references."""

from __future__ import annotations


import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppox.core import RewardScaler, RunningMeanStd, normalize, scale_reward, update_stats
from tests.core import reference as ref
from tests.core.modes import MODES, SEEDS, SETTINGS, f32, transform  # noqa: F401






# ----------------------------------------------------------------------------- RunningMeanStd


def test_create_is_the_prior():
    stats = RunningMeanStd.create((3,))
    np.testing.assert_array_equal(stats.mean, np.zeros(3))
    np.testing.assert_array_equal(stats.var, np.ones(3))
    assert float(stats.count) == pytest.approx(ref.PRIOR_COUNT)
    assert RunningMeanStd.create().mean.shape == ()


@MODES
@SETTINGS
@given(
    SEEDS,
    st.lists(st.sampled_from([1, 8, 32]), min_size=1, max_size=5),
    st.sampled_from([(), (3,)]),
    st.sampled_from([0.0, 3.0, -20.0]),
    st.sampled_from([0.1, 1.0, 5.0]),
)
def test_update_stats_over_batches_matches_concatenation(mode, seed, sizes, shape, loc, scale):
    rng = np.random.default_rng(seed)
    batches = [f32(rng.normal(loc, scale, (n,) + shape)) for n in sizes]
    stats = RunningMeanStd.create(shape)
    for batch in batches:
        stats = transform(mode, update_stats)(stats, batch)
    data = np.concatenate(batches).astype(np.float64)

    # exact: the prior (mean 0, var 1, count 1e-4) pooled with all the data
    mean, var, count = ref.pooled_stats(data)
    assert float(stats.count) == pytest.approx(count, rel=1e-6)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(stats.var, var, rtol=1e-4, atol=1e-5 * scale**2)
    # and, up to the weight-1e-4 prior, the plain mean / variance of the concatenation
    # (the prior moves the mean by ~ n0 |mean| / n and the variance by ~ n0 (1 + mean^2) / n)
    prior_effect = 2 * ref.PRIOR_COUNT * np.max(1.0 + data.mean(axis=0) ** 2 + data.var(axis=0)) / data.shape[0]
    np.testing.assert_allclose(stats.mean, data.mean(axis=0), rtol=1e-5, atol=1e-5 * scale + prior_effect)
    np.testing.assert_allclose(stats.var, data.var(axis=0), rtol=1e-4, atol=1e-5 * scale**2 + 2 * prior_effect)


@MODES
def test_update_stats_batches_merge_like_one_batch(mode):
    rng = np.random.default_rng(0)
    data = f32(rng.normal(2.0, 3.0, (48, 2)))
    fn = transform(mode, update_stats)
    one = fn(RunningMeanStd.create((2,)), data)
    many = RunningMeanStd.create((2,))
    for chunk in np.split(data, [5, 6, 30]):
        many = fn(many, chunk)
    np.testing.assert_allclose(many.mean, one.mean, rtol=1e-5)
    np.testing.assert_allclose(many.var, one.var, rtol=1e-5)
    np.testing.assert_allclose(many.count, one.count, rtol=1e-6)


@MODES
@SETTINGS
@given(SEEDS, st.sampled_from([1.0, 5.0, 10.0]))
def test_normalize_matches_reference_and_clips(mode, seed, clip):
    rng = np.random.default_rng(seed)
    stats = RunningMeanStd(mean=f32(rng.normal(size=4)), var=f32(rng.uniform(0.01, 4.0, 4)), count=jnp.asarray(10.0))
    x = f32(rng.normal(scale=rng.choice([0.5, 5.0, 100.0]), size=(16, 4)))
    x[0] = [1e6, -1e6, 0.0, 1e3]  # far outside: clipped
    got = np.asarray(transform(mode, normalize)(stats, x, clip))
    expected = ref.normalize(np.asarray(stats.mean), np.asarray(stats.var), x, clip, 1e-8)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(got) <= clip)
    assert got[0, 0] == clip and got[0, 1] == -clip


@MODES
def test_normalize_default_clip_and_eps(mode):
    stats = RunningMeanStd(mean=jnp.zeros(2), var=jnp.zeros(2), count=jnp.asarray(1.0))
    got = np.asarray(transform(mode, normalize)(stats, jnp.array([1e-5, -1.0])))
    np.testing.assert_allclose(got, [1e-5 / np.sqrt(1e-8), -10.0], rtol=1e-5)


# ----------------------------------------------------------------------------- reward scaling


@MODES
@SETTINGS
@given(SEEDS, st.sampled_from([1, 3]), st.sampled_from([0.0, 0.1, 0.4]), st.floats(0.0, 0.999))
def test_scale_reward_matches_reference_loop(mode, seed, num_envs, p_done, gamma):
    rng = np.random.default_rng(seed)
    horizon = 12
    rewards = f32(rng.normal(0.5, 2.0, (horizon, num_envs)))
    dones = rng.random((horizon, num_envs)) < p_done
    expected, expected_returns, expected_var = ref.scale_rewards(rewards, dones, gamma)

    scaler = RewardScaler.create(num_envs)
    fn = transform(mode, scale_reward)
    got = []
    for t in range(horizon):
        scaler, scaled = fn(scaler, rewards[t], dones[t], gamma)
        got.append(np.asarray(scaled))
    np.testing.assert_allclose(np.stack(got), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scaler.returns, expected_returns, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaler.stats.var, expected_var, rtol=1e-4)
    assert float(scaler.stats.count) == pytest.approx(ref.PRIOR_COUNT + horizon * num_envs, rel=1e-6)


@MODES
def test_scale_reward_resets_returns_on_done(mode):
    fn = transform(mode, scale_reward)
    scaler = RewardScaler.create(2)
    gamma = 0.5
    scaler, _ = fn(scaler, jnp.array([1.0, 2.0]), jnp.array([False, True]), gamma)
    np.testing.assert_allclose(scaler.returns, [1.0, 0.0])  # env 1 ended: accumulator reset
    scaler, _ = fn(scaler, jnp.array([4.0, 4.0]), jnp.array([False, False]), gamma)
    np.testing.assert_allclose(scaler.returns, [4.5, 4.0])  # env 1 restarts from its reward
    scaler, scaled = fn(scaler, jnp.array([1.0, -1.0]), jnp.array([True, True]), gamma)
    np.testing.assert_allclose(scaler.returns, [0.0, 0.0])
    # the step's statistics include the returns computed at this step (before the reset)
    seen = np.array([1.0, 2.0, 4.5, 4.0, 3.25, 1.0])
    _, var, _ = ref.pooled_stats(seen)
    np.testing.assert_allclose(scaled, np.array([1.0, -1.0]) / np.sqrt(var + 1e-8), rtol=1e-5)


@MODES
def test_scale_reward_clips(mode):
    scaler = RewardScaler(
        returns=jnp.zeros(2), stats=RunningMeanStd(mean=jnp.asarray(0.0), var=jnp.asarray(1e-6), count=jnp.asarray(1e6))
    )
    _, scaled = transform(mode, scale_reward)(scaler, jnp.array([1.0, -1.0]), jnp.array([False, False]), 0.99, 3.0)
    np.testing.assert_array_equal(scaled, [3.0, -3.0])
