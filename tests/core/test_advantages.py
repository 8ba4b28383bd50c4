"""Advantage estimators against explicit-loop float64 references, and their identities."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppox.core import discounted_returns, gae, nstep_advantages, td_residuals
from tests.core import reference as ref
from tests.core.modes import MODES, SEEDS, SETTINGS, f32, transform  # noqa: F401

# ----------------------------------------------------------------------------- harness

RTOL, ATOL = 1e-4, 1e-4  # float32 results vs float64 references (values are O(1..30))



# Called eagerly, every lax.scan / fori_loop is traced and compiled again (~0.1 s per call),
# so the eager runs draw fewer examples than the jitted ones to keep the suite fast.
EXAMPLES = {"jit": 30, "eager": 4}


def property_test(*strategies, examples=EXAMPLES):
    """Decorate ``body(mode, *drawn)``: a pytest test parametrized over jit/eager that runs
    ``body`` on hypothesis examples drawn from ``strategies``."""

    def decorate(body):
        @MODES
        def test(mode):
            @settings(max_examples=examples[mode], deadline=None, database=None)
            @given(st.tuples(*strategies))
            def run(drawn):
                body(mode, *drawn)

            run()

        # not functools.wraps: pytest would follow __wrapped__ and ask for body's arguments
        test.__name__, test.__qualname__, test.__doc__ = body.__name__, body.__qualname__, body.__doc__
        return test

    return decorate


TD = lambda mode: transform(mode, td_residuals)  # noqa: E731
GAE = lambda mode: transform(mode, gae)  # noqa: E731
RET = lambda mode: transform(mode, discounted_returns)  # noqa: E731
NSTEP = lambda mode: transform(mode, nstep_advantages, ("n",))  # noqa: E731


class Batch(NamedTuple):
    rewards: np.ndarray  # float32 [T, N]
    values: np.ndarray
    next_values: np.ndarray
    terminated: np.ndarray  # bool [T, N]
    truncated: np.ndarray
    gamma: float
    lam: float

    @property
    def jax(self):
        return tuple(jnp.asarray(x) for x in self[:5])


def make_batch(seed, T, N, p_term, p_trunc, force_both, consistent, gamma, lam, shape=None):
    """Random rollout. ``consistent``: next_values[t] == values[t+1] unless step t ended the
    episode (so the bootstrap value is the next step's value, as in a real rollout)."""
    rng = np.random.default_rng(seed)
    shape = (T, N) if shape is None else shape
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    next_values = rng.normal(size=shape).astype(np.float32)
    terminated = rng.random(shape) < p_term
    truncated = rng.random(shape) < p_trunc
    if force_both:  # one step that is both terminated and truncated
        idx = tuple(rng.integers(s) for s in shape)
        terminated[idx] = truncated[idx] = True
    if consistent:
        done = terminated | truncated
        next_values[:-1] = np.where(done[:-1], next_values[:-1], values[1:])
    return Batch(rewards, values, next_values, terminated, truncated, gamma, lam)


PROBS = st.sampled_from([0.0, 0.1, 0.3, 0.7])
UNIT = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


# A few fixed shapes (each new shape is a new compilation): T = 1, short and longer
# batches, one and several envs.
SHAPES = st.sampled_from([(1, 1), (2, 3), (7, 1), (16, 3)])


@st.composite
def batches(draw, consistent=False, lam=None):
    T, N = draw(SHAPES)
    return make_batch(
        seed=draw(st.integers(0, 2**32 - 1)),
        T=T,
        N=N,
        p_term=draw(PROBS),
        p_trunc=draw(PROBS),
        force_both=draw(st.booleans()),
        consistent=consistent,
        gamma=draw(UNIT),
        lam=draw(UNIT) if lam is None else lam,
    )


def assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    actual = np.asarray(actual)
    assert actual.shape == np.shape(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- references


@property_test(batches())
def test_td_residuals_matches_reference(mode, b):
    r, v, nv, term, _ = b.jax
    got = TD(mode)(r, v, nv, term, b.gamma)
    assert_close(got, ref.td_residuals(b.rewards, b.values, b.next_values, b.terminated, b.gamma))


@property_test(batches())
def test_gae_matches_reference(mode, b):
    got = GAE(mode)(*b.jax, b.gamma, b.lam)
    assert_close(got, ref.gae(*b[:5], b.gamma, b.lam))


@property_test(batches())
def test_discounted_returns_matches_reference(mode, b):
    r, _, nv, term, trunc = b.jax
    got = RET(mode)(r, nv, term, trunc, b.gamma)
    assert_close(got, ref.discounted_returns(b.rewards, b.next_values, b.terminated, b.truncated, b.gamma))


@property_test(batches(), st.sampled_from([1, 2, 3, 6, 40]))
def test_nstep_advantages_matches_reference(mode, b, n):
    got = NSTEP(mode)(*b.jax, b.gamma, n=n)
    assert_close(got, ref.nstep_advantages(*b[:5], b.gamma, n))


@MODES
@pytest.mark.parametrize("shape", [(7,), (6, 2, 3)], ids=["T", "TxNxK"])
def test_other_batch_shapes_match_reference(mode, shape):
    b = make_batch(3, None, None, 0.2, 0.2, True, False, 0.9, 0.8, shape=shape)
    r, v, nv, term, trunc = b.jax
    assert_close(TD(mode)(r, v, nv, term, b.gamma), ref.td_residuals(*b[:4], b.gamma))
    assert_close(GAE(mode)(*b.jax, b.gamma, b.lam), ref.gae(*b[:5], b.gamma, b.lam))
    assert_close(
        RET(mode)(r, nv, term, trunc, b.gamma),
        ref.discounted_returns(b.rewards, b.next_values, b.terminated, b.truncated, b.gamma),
    )
    assert_close(NSTEP(mode)(*b.jax, b.gamma, n=3), ref.nstep_advantages(*b[:5], b.gamma, 3))


@MODES
def test_hand_computed_example(mode):
    """One env, T=5: step 1 terminates, step 3 is truncated, step 4 ends the batch."""
    gamma, lam = 0.5, 0.5
    r = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    v = jnp.array([0.5, 1.0, 1.5, 2.0, 2.5])
    nv = jnp.array([1.0, 9.0, 2.0, 8.0, 6.0])  # nv[1] is never used (termination)
    term = jnp.array([False, True, False, False, False])
    trunc = jnp.array([False, False, False, True, False])
    td = np.array([1 + 0.5 * 1 - 0.5, 2 - 1.0, 3 + 0.5 * 2 - 1.5, 4 + 0.5 * 8 - 2, 5 + 0.5 * 6 - 2.5])
    assert_close(TD(mode)(r, v, nv, term, gamma), td)
    adv = np.array([td[0] + 0.25 * td[1], td[1], td[2] + 0.25 * td[3], td[3], td[4]])
    assert_close(GAE(mode)(r, v, nv, term, trunc, gamma, lam), adv)
    ret = np.array([1 + 0.5 * 2, 2, 3 + 0.5 * 4 + 0.25 * 8, 4 + 0.5 * 8, 5 + 0.5 * 6])
    assert_close(RET(mode)(r, nv, term, trunc, gamma), ret)
    two_step = np.array([1 + 0.5 * 2, 2, 3 + 0.5 * 4 + 0.25 * 8, 4 + 0.5 * 8, 5 + 0.5 * 6]) - np.asarray(v)
    assert_close(NSTEP(mode)(r, v, nv, term, trunc, gamma, n=2), two_step)


# ----------------------------------------------------------------------------- identities


@property_test(batches(lam=0.0))
def test_gae_lambda_zero_is_td_residual(mode, b):
    r, v, nv, term, trunc = b.jax
    got = GAE(mode)(r, v, nv, term, trunc, b.gamma, 0.0)
    assert_close(got, TD(mode)(r, v, nv, term, b.gamma), atol=1e-6, rtol=1e-6)


@property_test(batches(consistent=True, lam=1.0))
def test_gae_lambda_one_is_monte_carlo(mode, b):
    r, v, nv, term, trunc = b.jax
    got = GAE(mode)(r, v, nv, term, trunc, b.gamma, 1.0)
    expected = np.asarray(RET(mode)(r, nv, term, trunc, b.gamma)) - b.values
    assert_close(got, expected)


@property_test(batches())
def test_nstep_one_is_td_residual(mode, b):
    r, v, nv, term, trunc = b.jax
    got = NSTEP(mode)(r, v, nv, term, trunc, b.gamma, n=1)
    assert_close(got, TD(mode)(r, v, nv, term, b.gamma), atol=1e-6, rtol=1e-6)


@property_test(batches(), st.sampled_from([0, 1, 50]))
def test_nstep_past_horizon_is_monte_carlo(mode, b, extra):
    """n >= T: the walk always reaches the end of the episode or batch (any next_values)."""
    r, v, nv, term, trunc = b.jax
    n = r.shape[0] + extra
    got = NSTEP(mode)(r, v, nv, term, trunc, b.gamma, n=n)
    expected = np.asarray(RET(mode)(r, nv, term, trunc, b.gamma)) - b.values
    assert_close(got, expected, atol=1e-5, rtol=1e-5)


@property_test(batches(), st.floats(-100.0, 100.0), st.floats(-5.0, 5.0))
def test_bootstrap_only_from_truncated_not_terminated(mode, b, term_shift, trunc_shift):
    """Shifting next_values at terminated steps (terminated-and-truncated ones included)
    changes no estimate anywhere; at a step that is truncated but not terminated every
    estimate of that step is r_t + gamma * next_values[t] - ..., so it moves by
    gamma * shift. All three variants go through one call per estimator, side by side as
    extra env columns (the estimators treat envs independently)."""
    only_trunc = b.truncated & ~b.terminated
    nv_term = np.where(b.terminated, b.next_values + np.float32(term_shift), b.next_values)
    nv_trunc = np.where(only_trunc, b.next_values + np.float32(trunc_shift), b.next_values)
    thrice = lambda x: jnp.asarray(np.concatenate([x, x, x], axis=1))  # noqa: E731
    r, v, term, trunc = (thrice(x) for x in (b.rewards, b.values, b.terminated, b.truncated))
    nv = jnp.asarray(np.concatenate([b.next_values, nv_term, nv_trunc], axis=1))
    estimates = {
        "td": TD(mode)(r, v, nv, term, b.gamma),
        "gae": GAE(mode)(r, v, nv, term, trunc, b.gamma, b.lam),
        "returns": RET(mode)(r, nv, term, trunc, b.gamma),
        "nstep2": NSTEP(mode)(r, v, nv, term, trunc, b.gamma, n=2),
        "nstepT": NSTEP(mode)(r, v, nv, term, trunc, b.gamma, n=r.shape[0]),
    }
    for name, x in estimates.items():
        base, moved_term, moved_trunc = np.split(np.asarray(x), 3, axis=1)
        np.testing.assert_array_equal(moved_term, base, err_msg=name)
        np.testing.assert_allclose(
            (moved_trunc - base)[only_trunc], b.gamma * trunc_shift, atol=1e-4, err_msg=name
        )


@MODES
def test_last_batch_step_bootstraps_like_truncation(mode):
    rng = np.random.default_rng(0)
    r, v, nv = (jnp.asarray(rng.normal(size=(6, 2)).astype(np.float32)) for _ in range(3))
    none = jnp.zeros((6, 2), bool)
    gamma = 0.9
    expected_last = r[-1] + gamma * nv[-1]
    assert_close(RET(mode)(r, nv, none, none, gamma)[-1], expected_last, atol=1e-6)
    assert_close(GAE(mode)(r, v, nv, none, none, gamma, 0.7)[-1], expected_last - v[-1], atol=1e-6)
    assert_close(NSTEP(mode)(r, v, nv, none, none, gamma, n=4)[-1], expected_last - v[-1], atol=1e-6)
    # ...and it is the same as marking the last step truncated
    trunc = none.at[-1].set(True)
    assert_close(RET(mode)(r, nv, none, trunc, gamma), RET(mode)(r, nv, none, none, gamma), atol=0)
    assert_close(GAE(mode)(r, v, nv, none, trunc, gamma, 0.7), GAE(mode)(r, v, nv, none, none, gamma, 0.7), atol=0)


@MODES
def test_float_flags_equal_bool_flags(mode):
    b = make_batch(11, 9, 3, 0.2, 0.2, True, False, 0.95, 0.9)
    r, v, nv, term, trunc = b.jax
    fterm, ftrunc = term.astype(jnp.float32), trunc.astype(jnp.float32)
    assert_close(TD(mode)(r, v, nv, fterm, b.gamma), TD(mode)(r, v, nv, term, b.gamma), atol=0)
    assert_close(GAE(mode)(r, v, nv, fterm, ftrunc, b.gamma, b.lam), GAE(mode)(*b.jax, b.gamma, b.lam), atol=0)
    assert_close(RET(mode)(r, nv, fterm, ftrunc, b.gamma), RET(mode)(r, nv, term, trunc, b.gamma), atol=0)
    assert_close(NSTEP(mode)(r, v, nv, fterm, ftrunc, b.gamma, n=3), NSTEP(mode)(*b.jax, b.gamma, n=3), atol=0)


def test_nstep_rejects_nonpositive_n():
    b = make_batch(0, 4, 2, 0.1, 0.1, False, False, 0.9, 0.9)
    with pytest.raises(ValueError):
        nstep_advantages(*b.jax, b.gamma, n=0)
