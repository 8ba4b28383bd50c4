"""Action distributions against float64 NumPy references and sampling statistics."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppox.core import Categorical, DiagGaussian, MultiCategorical
from tests.core import reference as ref
from tests.core.modes import MODES, SEEDS, SETTINGS, f32, transform  # noqa: F401

RTOL, ATOL = 1e-5, 1e-5






def random_mask(rng, shape):
    """Random bool mask over the last axis with at least one allowed action per row."""
    mask = rng.random(shape) < 0.5
    rows = np.reshape(mask, (-1, shape[-1]))
    rows[~rows.any(axis=1), rng.integers(shape[-1])] = True
    return rows.reshape(shape)


# ----------------------------------------------------------------------------- functions under test
# (module level, so that jit compiles each once per shape)


def categorical_stats(logits, mask, actions):
    d = Categorical(logits, mask)
    return d.log_probs(), d.log_prob(actions), d.entropy(), d.mode()


def categorical_samples(logits, mask, keys):
    return jax.vmap(lambda k: Categorical(logits, mask).sample(k))(keys)


def categorical_entropy_grad(logits, mask):
    return jax.grad(lambda z: jnp.sum(Categorical(z, mask).entropy()))(logits)


def gaussian_stats(mean, log_std, actions):
    d = DiagGaussian(mean, log_std)
    return d.log_prob(actions), d.entropy(), d.mode()


def gaussian_samples(mean, log_std, keys):
    return jax.vmap(lambda k: DiagGaussian(mean, log_std).sample(k))(keys)


def multi_stats(logits, mask, actions, nvec):
    d = MultiCategorical(logits, nvec, mask)
    return d.log_prob(actions), d.entropy(), d.mode()


def multi_samples(logits, mask, keys, nvec):
    return jax.vmap(lambda k: MultiCategorical(logits, nvec, mask).sample(k))(keys)


# ----------------------------------------------------------------------------- Categorical


@MODES
@SETTINGS
@given(SEEDS, st.sampled_from([(1, 2), (6, 5)]), st.booleans())
def test_categorical_matches_numpy_softmax(mode, seed, shape, masked):
    """log_probs / log_prob / entropy / mode vs float64 softmax. With a mask the reference
    is the softmax over the allowed actions only (renormalised)."""
    rng = np.random.default_rng(seed)
    batch, n = shape
    logits = f32(rng.normal(scale=2.0, size=(batch, n)))
    mask = random_mask(rng, (batch, n)) if masked else None
    # actions to score: allowed ones only (the log-prob of a masked action is not specified)
    allowed = np.ones((batch, n), bool) if mask is None else mask
    actions = np.array([rng.choice(np.flatnonzero(row)) for row in allowed], dtype=np.int32)

    log_probs, log_prob, entropy, mode_ = transform(mode, categorical_stats)(logits, mask, actions)

    expected = ref.log_softmax(logits, mask)
    got = np.asarray(log_probs)
    np.testing.assert_allclose(got[allowed], expected[allowed], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(np.exp(got[~allowed]), 0.0)  # masked actions: probability 0
    np.testing.assert_allclose(np.exp(got).sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(log_prob, expected[np.arange(batch), actions], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(entropy, ref.categorical_entropy(logits, mask), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(mode_, np.argmax(np.where(allowed, logits, -np.inf), axis=-1))
    assert np.shape(log_prob) == np.shape(entropy) == np.shape(mode_) == (batch,)


@MODES
def test_categorical_masked_entropy_is_entropy_of_allowed_actions(mode):
    logits = jnp.array([[3.0, 0.0, -1.0, 10.0], [1.0, 1.0, 1.0, 1.0]])
    mask = jnp.array([[True, True, True, False], [True, False, True, False]])
    _, _, entropy, mode_ = transform(mode, categorical_stats)(logits, mask, jnp.zeros(2, jnp.int32))
    p = np.exp([3.0, 0.0, -1.0]) / np.exp([3.0, 0.0, -1.0]).sum()
    np.testing.assert_allclose(entropy, [-(p * np.log(p)).sum(), np.log(2.0)], rtol=1e-6)
    np.testing.assert_array_equal(mode_, [0, 0])  # the masked action 3 has the largest logit


@MODES
def test_all_true_mask_is_no_mask(mode):
    logits = f32(np.random.default_rng(0).normal(size=(4, 3)))
    actions = np.array([0, 1, 2, 1], np.int32)
    fn = transform(mode, categorical_stats)
    for a, b in zip(fn(logits, np.ones((4, 3), bool), actions), fn(logits, None, actions)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@MODES
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_categorical_sampling(mode, masked):
    """Samples stay on allowed actions (even when the masked ones have the largest logits)
    and their frequencies match the (renormalised) probabilities."""
    logits = jnp.array([[0.0, 1.0, 6.0, -1.0, 0.5], [2.0, 8.0, 0.0, 0.0, 1.0]])
    mask = jnp.array([[True, True, False, True, True], [False, False, True, True, True]]) if masked else None
    num = 4000
    keys = jax.random.split(jax.random.key(0), num)
    samples = np.asarray(transform(mode, categorical_samples)(logits, mask, keys))
    assert samples.shape == (num, 2)
    allowed = np.ones((2, 5), bool) if mask is None else np.asarray(mask)
    probs = np.exp(ref.log_softmax(logits, None if mask is None else allowed))
    for b in range(2):
        assert allowed[b][samples[:, b]].all(), "sampled a masked action"
        freq = np.bincount(samples[:, b], minlength=5) / num
        tol = 5 * np.sqrt(probs[b] * (1 - probs[b]) / num) + 1e-3
        assert np.all(np.abs(freq - probs[b]) <= tol), (freq, probs[b])


@MODES
def test_masked_categorical_gradients_are_finite(mode):
    logits = f32(np.random.default_rng(1).normal(size=(3, 4)))
    mask = np.array([[True, False, True, False], [False, False, False, True], [True] * 4])
    grad = np.asarray(transform(mode, categorical_entropy_grad)(logits, mask))
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[~mask], 0.0)  # masked logits do not matter


# ----------------------------------------------------------------------------- DiagGaussian


@MODES
@SETTINGS
@given(SEEDS, st.sampled_from([(1, 1), (5, 3)]), st.booleans())
def test_diag_gaussian_matches_numpy_formula(mode, seed, shape, shared_log_std):
    """log_prob / entropy vs the float64 density; log_std either [act_dim] (broadcast
    against mean [B, act_dim], state-independent) or [B, act_dim]."""
    rng = np.random.default_rng(seed)
    batch, act_dim = shape
    mean = f32(rng.normal(size=(batch, act_dim)))
    log_std = f32(rng.uniform(-1.5, 1.0, (act_dim,) if shared_log_std else (batch, act_dim)))
    actions = f32(mean + rng.normal(scale=1.5, size=(batch, act_dim)))

    log_prob, entropy, mode_ = transform(mode, gaussian_stats)(mean, log_std, actions)
    assert np.shape(log_prob) == np.shape(entropy) == (batch,)
    np.testing.assert_allclose(log_prob, ref.gaussian_log_prob(actions, mean, log_std), rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(entropy, ref.gaussian_entropy(mean, log_std), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(mode_, mean)
    if shared_log_std:  # same as giving every row the same log_std explicitly
        full = np.broadcast_to(log_std, mean.shape)
        lp_full, ent_full, _ = transform(mode, gaussian_stats)(mean, full, actions)
        np.testing.assert_allclose(log_prob, lp_full, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(entropy, ent_full, rtol=1e-6, atol=1e-6)


@MODES
def test_diag_gaussian_sample_statistics(mode):
    mean = jnp.array([[0.0, 1.0, -2.0], [3.0, -0.5, 0.25]])
    log_std = jnp.array([-1.0, 0.0, 0.7])  # shared by both rows
    num = 20000
    keys = jax.random.split(jax.random.key(1), num)
    x = np.asarray(transform(mode, gaussian_samples)(mean, log_std, keys), np.float64)
    assert x.shape == (num, 2, 3)
    std = np.exp(np.asarray(log_std, np.float64))
    # sample mean: standard error std / sqrt(num); sample std: relative error ~ 1 / sqrt(2 num)
    mean_err = np.abs(x.mean(axis=0) - np.asarray(mean))
    assert np.all(mean_err < 5 * std / np.sqrt(num)), mean_err
    std_err = np.abs(x.std(axis=0) / std - 1)
    assert np.all(std_err < 5 / np.sqrt(2 * num)), std_err
    # Gaussian shape, not just the first two moments: P(|z| < 1) = 0.6827 (uniform: 0.577)
    z = (x - np.asarray(mean)) / std
    within = np.mean(np.abs(z) < 1.0, axis=0)
    assert np.all(np.abs(within - 0.6827) < 5 * np.sqrt(0.6827 * 0.3173 / num)), within
    # Monte Carlo: E[-log pi(x)] = H
    log_prob, entropy, _ = gaussian_stats(mean, log_std, x.astype(np.float32))
    np.testing.assert_allclose(-np.asarray(log_prob).mean(axis=0), entropy, atol=0.05)


# ----------------------------------------------------------------------------- MultiCategorical


@MODES
@SETTINGS
@given(SEEDS, st.sampled_from([(2,), (3, 2, 4)]), st.booleans())
def test_multi_categorical_is_sum_of_independent_categoricals(mode, seed, nvec, masked):
    rng = np.random.default_rng(seed)
    batch = 3
    total = sum(nvec)
    logits = f32(rng.normal(scale=2.0, size=(batch, total)))
    mask = np.concatenate([random_mask(rng, (batch, k)) for k in nvec], axis=-1) if masked else None
    allowed = np.ones((batch, total), bool) if mask is None else mask
    starts = np.cumsum((0,) + nvec)[:-1]
    actions = np.stack(
        [[rng.choice(np.flatnonzero(allowed[b, s : s + k])) for s, k in zip(starts, nvec)] for b in range(batch)]
    ).astype(np.int32)

    log_prob, entropy, mode_ = transform(mode, multi_stats, ("nvec",))(logits, mask, actions, nvec)

    exp_lp, exp_ent, exp_mode = np.zeros(batch), np.zeros(batch), []
    for i, (s, k) in enumerate(zip(starts, nvec)):
        part_mask = None if mask is None else mask[:, s : s + k]
        part_logp = ref.log_softmax(logits[:, s : s + k], part_mask)
        exp_lp += part_logp[np.arange(batch), actions[:, i]]
        exp_ent += ref.categorical_entropy(logits[:, s : s + k], part_mask)
        exp_mode.append(np.argmax(part_logp, axis=-1))
    np.testing.assert_allclose(log_prob, exp_lp, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(entropy, exp_ent, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(mode_, np.stack(exp_mode, axis=-1))
    assert np.shape(log_prob) == np.shape(entropy) == (batch,)
    assert np.shape(mode_) == (batch, len(nvec))


@MODES
def test_multi_categorical_sampling(mode):
    """Each dimension samples from its own categorical; row 0 allows every action (same as
    no mask), row 1 masks some, including the most likely ones."""
    nvec = (3, 2, 4)
    logits = jnp.array([[0.0, 2.0, 5.0, 1.0, -1.0, 0.0, 0.0, 4.0, 1.0]] * 2)
    mask = np.array([[True] * 9, [True, True, False, False, True, True, True, False, True]])
    num = 4000
    keys = jax.random.split(jax.random.key(2), num)
    samples = np.asarray(transform(mode, multi_samples, ("nvec",))(logits, mask, keys, nvec))
    assert samples.shape == (num, 2, 3)
    starts = np.cumsum((0,) + nvec)[:-1]
    for row in range(2):
        for i, (s, k) in enumerate(zip(starts, nvec)):
            part_mask = mask[row, s : s + k]
            probs = np.exp(ref.log_softmax(logits[row, s : s + k], part_mask))
            freq = np.bincount(samples[:, row, i], minlength=k) / num
            assert freq.shape == (k,), "sample out of range"
            tol = 5 * np.sqrt(probs * (1 - probs) / num) + 1e-3
            assert np.all(np.abs(freq - probs) <= tol), (row, i, freq, probs)
            assert freq[~part_mask].sum() == 0, "sampled a masked action"
