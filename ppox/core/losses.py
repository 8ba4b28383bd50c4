"""The PPO objective and its diagnostics, one pure function per term.

Conventions: ``log_prob`` is log pi_theta(a_t|s_t) under the policy being optimised,
``old_log_prob`` is log pi_theta_old(a_t|s_t) recorded when the batch was collected.
Per-sample functions return arrays shaped like their inputs; reducing them is the
caller's choice (``ppo_loss`` takes the mean over the minibatch).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def clipped_surrogate(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, clip_coef: float | jax.Array | None
) -> jax.Array:
    """Clipped surrogate objective per sample (to be maximised).

    r_t = pi(a|s) / pi_old(a|s) = exp(log_prob - old_log_prob)
    L_clip = min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)

    Args:
        log_prob: log pi_theta(a_t|s_t), float [B] (any shape, one entry per sample).
        old_log_prob: log pi_theta_old(a_t|s_t), float, shaped like ``log_prob``.
        advantages: A_t, float, shaped like ``log_prob``.
        clip_coef: eps, a float or a traced scalar; None: the plain importance-sampled surrogate r_t A_t.

    Returns:
        L_clip per sample, float, shaped like ``log_prob``.
    """
    ratio = jnp.exp(log_prob - old_log_prob)
    unclipped = ratio * advantages
    if clip_coef is None:
        return unclipped
    clipped = jnp.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return jnp.minimum(unclipped, clipped)


def value_loss(
    values: jax.Array, old_values: jax.Array, returns: jax.Array, clip_coef: float | jax.Array | None
) -> jax.Array:
    """Value loss per sample (to be minimised).

    L_V = (V(s_t) - G_t)^2, or with value clipping (clip_coef = eps_v):
    L_V = max((V - G)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - G)^2).

    Args:
        values: V(s_t) under the parameters being optimised, float [B].
        old_values: V_old(s_t) recorded with the batch, float [B].
        returns: the value targets G_t, float [B].
        clip_coef: eps_v, a float or a traced scalar; None: no value clipping.

    Returns:
        L_V per sample, float [B].
    """
    unclipped = jnp.square(values - returns)
    if clip_coef is None:
        return unclipped
    clipped_values = old_values + jnp.clip(values - old_values, -clip_coef, clip_coef)
    return jnp.maximum(unclipped, jnp.square(clipped_values - returns))


def approx_kl(log_prob: jax.Array, old_log_prob: jax.Array) -> jax.Array:
    """Approximate KL(pi_old || pi) with the low-variance estimator E[(r - 1) - log r].

    Args:
        log_prob: log pi_theta(a_t|s_t), float [B].
        old_log_prob: log pi_theta_old(a_t|s_t), float [B].

    Returns:
        The mean over samples, a float scalar.
    """
    log_ratio = log_prob - old_log_prob
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


UNCLIPPED_REFERENCE = 0.2  # the eps that clip_fraction reports against when the loss has no clip


def clip_fraction(log_prob: jax.Array, old_log_prob: jax.Array, clip_coef: float | jax.Array) -> jax.Array:
    """Fraction of samples whose ratio lies outside [1 - eps, 1 + eps]: mean(|r_t - 1| > eps).

    Args:
        log_prob: log pi_theta(a_t|s_t), float [B].
        old_log_prob: log pi_theta_old(a_t|s_t), float [B].
        clip_coef: eps, a float or a traced scalar.

    Returns:
        The fraction in [0, 1], a float32 scalar.
    """
    ratio = jnp.exp(log_prob - old_log_prob)
    return jnp.mean((jnp.abs(ratio - 1.0) > clip_coef).astype(jnp.float32))


def explained_variance(values: jax.Array, returns: jax.Array) -> jax.Array:
    """1 - Var[G - V] / Var[G]: 1 is a perfect critic, 0 no better than a constant.

    Args:
        values: the critic's V(s_t), float, any shape.
        returns: the value targets G_t, float, shaped like ``values``.

    Returns:
        A float scalar; NaN where ``returns`` is constant (Var[G] = 0).
    """
    constant = jnp.all(returns == returns.ravel()[0])  # exact: float32 var() of a constant need not be 0
    var_returns = jnp.where(constant, 1.0, jnp.var(returns))
    return jnp.where(constant, jnp.nan, 1.0 - jnp.var(returns - values) / var_returns)


class LossTerms(NamedTuple):
    """The terms of the PPO objective for one minibatch (all scalars)."""

    loss: jax.Array  # total, minimised: -L_clip + c1 L_V - c2 H
    policy_loss: jax.Array  # -mean(L_clip)
    value_loss: jax.Array  # mean(L_V)
    entropy: jax.Array  # mean(H)
    approx_kl: jax.Array
    clip_fraction: jax.Array


def ppo_loss(
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    values: jax.Array | None,
    old_values: jax.Array,
    returns: jax.Array,
    entropy: jax.Array,
    *,
    clip_coef: float | jax.Array | None,
    vf_clip_coef: float | jax.Array | None,
    vf_coef: float | jax.Array,
    ent_coef: float | jax.Array,
) -> LossTerms:
    """Total PPO loss to minimise: -(L_clip - c1 L_V + c2 H), each term averaged over samples.

    Args:
        log_prob: log pi_theta(a_t|s_t), float [B].
        old_log_prob: log pi_theta_old(a_t|s_t), float [B].
        advantages: A_t, float [B].
        values: V(s_t) under the parameters being optimised, float [B]; None drops the value term (no
            critic: REINFORCE-style training).
        old_values: V_old(s_t), float [B].
        returns: the value targets G_t, float [B].
        entropy: H[pi_theta(.|s_t)], float [B].
        clip_coef: the surrogate's eps (``clipped_surrogate``); None: no clip.
        vf_clip_coef: the value loss's eps_v (``value_loss``); None: no value clip.
        vf_coef: c1.
        ent_coef: c2.

    Returns:
        ``LossTerms`` of float scalars: the total and each term, with the approx KL and the clip fraction.
    """
    policy_loss = -jnp.mean(clipped_surrogate(log_prob, old_log_prob, advantages, clip_coef))
    if values is None:
        v_loss = jnp.zeros(())
    else:
        v_loss = jnp.mean(value_loss(values, old_values, returns, vf_clip_coef))
    mean_entropy = jnp.mean(entropy)
    total = policy_loss + vf_coef * v_loss - ent_coef * mean_entropy
    return LossTerms(
        loss=total,
        policy_loss=policy_loss,
        value_loss=v_loss,
        entropy=mean_entropy,
        approx_kl=approx_kl(log_prob, old_log_prob),
        # without a clip: the fraction the usual clip (0.2) would have clipped, to show how far reuse drifts
        clip_fraction=clip_fraction(log_prob, old_log_prob, UNCLIPPED_REFERENCE if clip_coef is None else clip_coef),
    )
