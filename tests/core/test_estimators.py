"""The registry of advantage estimators: each entry is its function under one calling convention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppox.core import ADVANTAGE_ESTIMATORS, EstimatorParams, Trajectory, discounted_returns, gae, nstep_advantages
from ppox.core import td_residuals
from tests.core import reference as ref

PARAMS = EstimatorParams(gamma=0.9, gae_lambda=0.8, nstep_n=3)


def trajectory(seed=0, T=12, N=3) -> Trajectory:
    rng = np.random.default_rng(seed)
    rewards, values, next_values = (jnp.asarray(rng.normal(size=(T, N)), jnp.float32) for _ in range(3))
    terminated = jnp.asarray(rng.random((T, N)) < 0.15)
    truncated = jnp.asarray(rng.random((T, N)) < 0.15)
    return Trajectory(rewards, values, next_values, terminated, truncated)


def test_each_entry_is_its_function_and_targets_are_advantage_plus_value():
    """Bit for bit: the registry adds no arithmetic of its own."""
    s, p = trajectory(), PARAMS
    direct = {
        "gae": gae(*s, p.gamma, p.gae_lambda),
        "td": td_residuals(s.rewards, s.values, s.next_values, s.terminated, p.gamma),
        "nstep": nstep_advantages(*s, p.gamma, p.nstep_n),
        "mc": discounted_returns(s.rewards, s.next_values, s.terminated, s.truncated, p.gamma) - s.values,
    }
    for name, expected in direct.items():
        advantages, targets = ADVANTAGE_ESTIMATORS[name](s, p)
        np.testing.assert_array_equal(advantages, expected, err_msg=name)
        np.testing.assert_array_equal(targets, expected + s.values, err_msg=name)


def test_entries_match_the_float64_references():
    s, p = trajectory(1), PARAMS
    flat = [np.asarray(x) for x in s]
    expected = {
        "gae": ref.gae(*flat, p.gamma, p.gae_lambda),
        "td": ref.td_residuals(*flat[:4], p.gamma),
        "nstep": ref.nstep_advantages(*flat, p.gamma, p.nstep_n),
        "mc": ref.discounted_returns(flat[0], flat[2], flat[3], flat[4], p.gamma) - flat[1],
    }
    for name, want in expected.items():
        np.testing.assert_allclose(ADVANTAGE_ESTIMATORS[name](s, p)[0], want, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_every_entry_takes_traced_gamma_and_lambda(name):
    """Every registered estimator, jitted with gamma and lambda as arguments (as the fused program passes
    them), gives what it gives with Python floats, shaped [T, N]."""
    s = trajectory(2)
    run = jax.jit(lambda s, g, lam: ADVANTAGE_ESTIMATORS[name](s, EstimatorParams(g, lam, PARAMS.nstep_n)))
    advantages, targets = run(s, jnp.float32(PARAMS.gamma), jnp.float32(PARAMS.gae_lambda))
    eager_advantages, eager_targets = ADVANTAGE_ESTIMATORS[name](s, PARAMS)
    assert advantages.shape == targets.shape == s.rewards.shape
    np.testing.assert_allclose(advantages, eager_advantages, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, eager_targets, rtol=1e-5, atol=1e-5)
