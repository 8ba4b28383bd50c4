"""The PPO objective's terms against float64 references, and the clipping's gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppox.config.config import PRESETS, Config
from ppox.core import (
    Categorical,
    approx_kl,
    clip_fraction,
    clipped_surrogate,
    explained_variance,
    ppo_loss,
    value_loss,
)
from tests.core import reference as ref
from tests.core.modes import MODES, SEEDS, SETTINGS, f32, transform  # noqa: F401

RTOL, ATOL = 1e-4, 1e-5



SIZES = st.sampled_from([1, 33])
CLIPS = st.sampled_from([None, 0.1, 0.2, 0.3])




def samples(seed, size, spread=0.5):
    """log_prob, old_log_prob (log-ratios within +-spread), advantages, values, old_values, returns."""
    rng = np.random.default_rng(seed)
    old_log_prob = f32(rng.uniform(-3.0, 0.0, size))
    log_prob = f32(old_log_prob + rng.uniform(-spread, spread, size))
    advantages = f32(rng.normal(size=size))
    returns = f32(rng.normal(size=size))
    old_values = f32(returns + rng.normal(scale=0.5, size=size))
    values = f32(old_values + rng.normal(scale=0.5, size=size))
    return log_prob, old_log_prob, advantages, values, old_values, returns


# ----------------------------------------------------------------------------- surrogate


@MODES
@SETTINGS
@given(SEEDS, SIZES, CLIPS)
def test_clipped_surrogate_matches_reference(mode, seed, size, clip):
    lp, olp, adv, *_ = samples(seed, size)
    got = transform(mode, clipped_surrogate)(lp, olp, adv, clip)
    np.testing.assert_allclose(got, ref.clipped_surrogate(lp, olp, adv, clip), rtol=RTOL, atol=ATOL)


def _summed_surrogate(log_prob, old_log_prob, advantages, clip_coef):
    return jnp.sum(clipped_surrogate(log_prob, old_log_prob, advantages, clip_coef))


surrogate_grad = jax.grad(_summed_surrogate)  # d/d log_prob of each sample's surrogate


def _ratios_away_from_clip_edges(rng, size, eps, margin=0.02):
    """Ratios drawn in the three regions below, inside and above [1 - eps, 1 + eps],
    keeping ``margin`` away from the edges (where the gradient is not defined)."""
    regions = [(0.3, 1 - eps - margin), (1 - eps + margin, 1 + eps - margin), (1 + eps + margin, 2.5)]
    which = rng.integers(0, 3, size)
    lo = np.array([regions[i][0] for i in which])
    hi = np.array([regions[i][1] for i in which])
    return rng.uniform(lo, hi)


@MODES
@SETTINGS
@given(SEEDS, st.sampled_from([0.1, 0.2, 0.3]), st.sampled_from([1.0, -1.0]))
def test_clipped_surrogate_gradient_vanishes_only_where_clipped(mode, seed, eps, sign):
    """d L_clip / d log_prob is r A (the unclipped gradient) except where clipping binds:
    A > 0 and r > 1 + eps, or A < 0 and r < 1 - eps, where it is 0."""
    rng = np.random.default_rng(seed)
    ratio = _ratios_away_from_clip_edges(rng, 64, eps)
    adv = f32(sign * rng.uniform(0.1, 2.0, 64))
    olp = f32(rng.uniform(-3.0, 0.0, 64))
    lp = f32(olp + np.log(ratio))
    r = np.exp(lp.astype(np.float64) - olp)  # the ratio the function actually sees

    got = np.asarray(transform(mode, surrogate_grad)(lp, olp, adv, eps))

    clipped = (r > 1 + eps) if sign > 0 else (r < 1 - eps)
    expected = np.where(clipped, 0.0, r * adv)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    # the region that is not clipped on this side includes ratios on the *other* side
    # of the clip range (A > 0 and r < 1 - eps, or A < 0 and r > 1 + eps): not zero there
    other_side = (r < 1 - eps) if sign > 0 else (r > 1 + eps)
    if other_side.any():
        assert np.all(np.abs(got[other_side]) > 0)


@MODES
@SETTINGS
@given(SEEDS, SIZES)
def test_unclipped_surrogate_is_ratio_times_advantage(mode, seed, size):
    lp, olp, adv, *_ = samples(seed, size, spread=1.5)
    r = np.exp(lp.astype(np.float64) - olp)
    got = transform(mode, clipped_surrogate)(lp, olp, adv, None)
    np.testing.assert_allclose(got, r * adv, rtol=RTOL, atol=ATOL)
    grad = transform(mode, surrogate_grad)(lp, olp, adv, None)
    np.testing.assert_allclose(grad, r * adv, rtol=RTOL, atol=ATOL)


def _policy_log_prob(params, obs, actions):
    return Categorical(obs @ params).log_prob(actions)


def _mean_surrogate_at_ratio_one(params, obs, actions, adv, eps):
    log_prob = _policy_log_prob(params, obs, actions)
    old = jax.lax.stop_gradient(log_prob)  # same policy: ratio is exactly 1
    return jnp.mean(clipped_surrogate(log_prob, old, adv, eps))


surrogate_policy_grad = jax.grad(_mean_surrogate_at_ratio_one)


@MODES
@pytest.mark.parametrize("eps", [None, 0.2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surrogate_gradient_at_ratio_one_is_policy_gradient(mode, eps, seed):
    """With pi = pi_old the surrogate's gradient is the policy gradient mean(grad log pi * A).

    Policy: logits = obs @ W. grad_W log softmax(z)_a = outer(obs, onehot(a) - p) (float64)."""
    rng = np.random.default_rng(seed)
    batch, obs_dim, n_actions = 16, 3, 4
    W = f32(rng.normal(size=(obs_dim, n_actions)))
    obs = f32(rng.normal(size=(batch, obs_dim)))
    actions = rng.integers(0, n_actions, batch)
    adv = f32(rng.normal(size=batch))

    got = np.asarray(transform(mode, surrogate_policy_grad)(W, obs, actions, adv, eps))

    expected = np.zeros((obs_dim, n_actions))
    logp = ref.log_softmax(obs.astype(np.float64) @ W.astype(np.float64))
    for b in range(batch):
        onehot = np.eye(n_actions)[actions[b]]
        grad_log_pi = np.outer(obs[b], onehot - np.exp(logp[b]))
        expected += grad_log_pi * adv[b] / batch
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # and it is the same as differentiating mean(log pi * A) in JAX
    pg = jax.grad(lambda p: jnp.mean(_policy_log_prob(p, obs, actions) * adv))(W)
    np.testing.assert_allclose(got, pg, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- value loss


@MODES
@SETTINGS
@given(SEEDS, SIZES, CLIPS)
def test_value_loss_matches_reference(mode, seed, size, clip):
    _, _, _, v, ov, g = samples(seed, size)
    got = transform(mode, value_loss)(v, ov, g, clip)
    np.testing.assert_allclose(got, ref.value_loss(v, ov, g, clip), rtol=RTOL, atol=ATOL)


value_loss_grad = jax.grad(lambda v, old, g, eps: jnp.sum(value_loss(v, old, g, eps)))


@MODES
def test_value_loss_max_picks_the_larger_branch(mode):
    fn = transform(mode, value_loss)
    old = jnp.zeros(3)
    returns = jnp.ones(3)
    values = jnp.array([0.5, 2.0, 1.05])
    got = np.asarray(fn(values, old, returns, 0.1))
    # 0: V moved 0.5 towards G, clipped to 0.1: (0.1 - 1)^2 = 0.81 > (0.5 - 1)^2 = 0.25
    # 1: V overshot: unclipped (2 - 1)^2 = 1 > clipped (0.1 - 1)^2 = 0.81
    # 2: unclipped (0.05)^2 = 0.0025 < clipped 0.81
    np.testing.assert_allclose(got, [0.81, 1.0, 0.81], rtol=1e-6)
    np.testing.assert_allclose(fn(values, old, returns, None), [0.25, 1.0, 0.0025], rtol=1e-5)
    # where the clipped branch wins and the step was clipped, the value gets no gradient
    grad = transform(mode, value_loss_grad)(values, old, returns, 0.1)
    np.testing.assert_allclose(grad, [0.0, 2.0, 0.0], atol=1e-6)


# ----------------------------------------------------------------------------- diagnostics


@MODES
@SETTINGS
@given(SEEDS, SIZES, st.sampled_from([0.1, 0.5, 2.0]))
def test_approx_kl_matches_reference_and_is_nonnegative(mode, seed, size, spread):
    lp, olp, *_ = samples(seed, size, spread=spread)
    got = float(transform(mode, approx_kl)(lp, olp))
    r = np.exp(lp.astype(np.float64) - olp)
    np.testing.assert_allclose(got, np.mean((r - 1) - np.log(r)), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got, ref.approx_kl(lp, olp), rtol=1e-4, atol=1e-7)
    assert got >= 0.0


@MODES
def test_approx_kl_is_zero_at_ratio_one(mode):
    lp = jnp.asarray(np.random.default_rng(0).uniform(-5, 0, 50), jnp.float32)
    assert float(transform(mode, approx_kl)(lp, lp)) == 0.0


@MODES
@SETTINGS
@given(SEEDS, SIZES, st.sampled_from([0.1, 0.2, 0.3]))
def test_clip_fraction_matches_reference(mode, seed, size, eps):
    rng = np.random.default_rng(seed)
    ratio = _ratios_away_from_clip_edges(rng, size, eps)
    olp = f32(rng.uniform(-3, 0, size))
    lp = f32(olp + np.log(ratio))
    got = float(transform(mode, clip_fraction)(lp, olp, eps))
    assert got == pytest.approx(ref.clip_fraction(lp, olp, eps), abs=1e-6)
    assert got == pytest.approx(np.mean((ratio < 1 - eps) | (ratio > 1 + eps)), abs=1e-6)


@MODES
@SETTINGS
@given(SEEDS, SIZES.filter(lambda n: n > 1))
def test_explained_variance_matches_reference(mode, seed, size):
    _, _, _, v, _, g = samples(seed, size)
    got = float(transform(mode, explained_variance)(v, g))
    assert got == pytest.approx(ref.explained_variance(v, g), rel=1e-4, abs=1e-5)


@MODES
def test_explained_variance_special_cases(mode):
    fn = transform(mode, explained_variance)
    g = jnp.asarray(np.random.default_rng(0).normal(size=40), jnp.float32)
    assert float(fn(g, g)) == pytest.approx(1.0)  # perfect critic
    assert float(fn(jnp.full_like(g, jnp.mean(g)), g)) == pytest.approx(0.0, abs=1e-6)  # the mean
    assert float(fn(jnp.full_like(g, 123.0), g)) == pytest.approx(0.0, abs=1e-4)  # any constant
    assert float(fn(-g, g)) == pytest.approx(-3.0, rel=1e-5)  # worse than a constant
    assert math.isnan(float(fn(g, jnp.full_like(g, 2.0))))  # Var[G] = 0 (exactly representable)


@MODES
def test_explained_variance_is_nan_for_any_constant_returns(mode):
    """Var[G] = 0 for constant returns whatever the constant. float32 rounding of the mean
    must not turn that into a huge finite number (it gave -7.2e16 for G = [0.1] * 7)."""
    fn = transform(mode, explained_variance)
    results = {}
    for size in (7, 10, 33):
        for constant in (0.1, 0.3, 0.7, 1.7, 3.0):
            g = jnp.full((size,), constant, jnp.float32)
            results[(size, constant)] = float(fn(jnp.arange(size, dtype=jnp.float32), g))
    not_nan = {case: ev for case, ev in results.items() if not math.isnan(ev)}
    assert not not_nan, f"explained_variance of constant returns (size, G) -> not NaN: {not_nan}"


# ----------------------------------------------------------------------------- total loss

COEFS = dict(vf_coef=0.5, ent_coef=0.01)


@MODES
@SETTINGS
@given(SEEDS, SIZES, CLIPS, CLIPS, st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([0.0, 0.01, 0.1]))
def test_ppo_loss_combines_the_terms(mode, seed, size, clip, vf_clip, vf_coef, ent_coef):
    lp, olp, adv, v, ov, g = samples(seed, size)
    entropy = f32(np.random.default_rng(seed + 1).uniform(0, 2, size))
    terms = transform(mode, ppo_loss)(
        lp, olp, adv, v, ov, g, entropy, clip_coef=clip, vf_clip_coef=vf_clip, vf_coef=vf_coef, ent_coef=ent_coef
    )
    policy_loss = -np.mean(ref.clipped_surrogate(lp, olp, adv, clip))
    v_loss = np.mean(ref.value_loss(v, ov, g, vf_clip))
    h = np.mean(entropy.astype(np.float64))
    close = dict(rel=1e-4, abs=1e-5)
    assert float(terms.policy_loss) == pytest.approx(policy_loss, **close)
    assert float(terms.value_loss) == pytest.approx(v_loss, **close)
    assert float(terms.entropy) == pytest.approx(h, **close)
    assert float(terms.loss) == pytest.approx(policy_loss + vf_coef * v_loss - ent_coef * h, **close)
    assert float(terms.approx_kl) == pytest.approx(ref.approx_kl(lp, olp), **close)
    # clip_coef=None clips nothing; its clip fraction counts the ratios the usual clip (0.2) would have clipped
    expected_frac = ref.clip_fraction(lp, olp, 0.2 if clip is None else clip)
    assert float(terms.clip_fraction) == pytest.approx(expected_frac, abs=1e-6)
    for x in terms:
        assert np.shape(x) == ()


def cleanrl_loss(lp, olp, adv, v, ov, g, entropy, clip, ent_coef, vf_coef=0.5) -> float:
    """CleanRL's PPO loss (ppo_atari.py, ppo_continuous_action.py) in float64, value clip = surrogate clip: its
    value loss carries a 1/2 that ppox's does not."""
    lp, olp, adv, v, ov, g, entropy = (np.asarray(x, np.float64) for x in (lp, olp, adv, v, ov, g, entropy))
    ratio = np.exp(lp - olp)
    pg_loss = np.maximum(-adv * ratio, -adv * np.clip(ratio, 1 - clip, 1 + clip)).mean()
    v_clipped = ov + np.clip(v - ov, -clip, clip)
    v_loss = 0.5 * np.maximum((v - g) ** 2, (v_clipped - g) ** 2).mean()
    return float(pg_loss - ent_coef * entropy.mean() + vf_coef * v_loss)


CLEANRL_PRESETS = {name: (0.1, 0.01) for name in PRESETS if name.startswith("ALE/")} | {  # (clip, entropy)
    name: (0.2, 0.0) for name in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5",
                                  "InvertedPendulum-v5")}


@pytest.mark.parametrize("env", sorted(CLEANRL_PRESETS))
def test_cleanrl_presets_give_cleanrls_loss(env):
    """The Atari and MuJoCo presets' vf_coef (0.25 with ppox's (V - G)^2) weighs the value term as CleanRL's
    0.5 x 0.5 (V - G)^2: with Atari's one trunk for actor and critic the weight shapes the shared layers, with
    MuJoCo's two networks it acts through the one gradient-norm clip."""
    clip, ent_coef = CLEANRL_PRESETS[env]
    preset = Config.preset(env)
    lp, olp, adv, v, ov, g = samples(3, 256)
    entropy = f32(np.random.default_rng(4).uniform(0, 2, 256))
    terms = ppo_loss(lp, olp, adv, v, ov, g, entropy, clip_coef=preset.clip_coef, vf_clip_coef=preset.vf_clip_coef,
                     vf_coef=preset.vf_coef, ent_coef=preset.ent_coef)
    assert preset.clip_coef == preset.vf_clip_coef == clip and preset.shared_trunk == env.startswith("ALE/")
    expected = cleanrl_loss(lp, olp, adv, v, ov, g, entropy, clip=clip, ent_coef=ent_coef)
    assert float(terms.loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@MODES
@pytest.mark.parametrize("clip", [None, 0.2])
def test_ppo_loss_without_values_drops_the_value_term(mode, clip):
    lp, olp, adv, v, ov, g = samples(7, 32)
    entropy = f32(np.random.default_rng(0).uniform(0, 2, 32))
    fn = transform(mode, ppo_loss)
    kw = dict(clip_coef=clip, vf_clip_coef=0.2, vf_coef=0.5, ent_coef=0.01)
    without = fn(lp, olp, adv, None, None, None, entropy, **kw)
    with_values = fn(lp, olp, adv, v, ov, g, entropy, **kw)
    assert float(without.value_loss) == 0.0
    assert float(without.loss) == pytest.approx(float(without.policy_loss) - 0.01 * float(without.entropy), rel=1e-6)
    assert float(with_values.loss) == pytest.approx(float(without.loss) + 0.5 * float(with_values.value_loss), rel=1e-5)
    assert float(with_values.policy_loss) == float(without.policy_loss)
    # the loss is differentiable without a critic too
    grad = jax.grad(lambda x: fn(x, olp, adv, None, None, None, entropy, **kw).loss)(lp)
    assert np.all(np.isfinite(grad))
