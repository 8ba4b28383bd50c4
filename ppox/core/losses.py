"""The PPO objective and its diagnostics, one pure function per term.

Conventions: ``log_prob`` is log pi_theta(a_t|s_t) under the policy being optimised,
``old_log_prob`` is log pi_theta_old(a_t|s_t) recorded when the batch was collected.
Per-sample functions return arrays shaped like their inputs; reducing them is the
caller's choice (``ppo_loss`` takes the mean over the minibatch).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_coef: float | None):
    """Clipped surrogate objective per sample (to be maximised).

    r_t = pi(a|s) / pi_old(a|s) = exp(log_prob - old_log_prob)
    L_clip = min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)

    With ``clip_coef=None`` it is the plain importance-sampled surrogate r_t A_t.
    """
    ratio = jnp.exp(log_prob - old_log_prob)
    unclipped = ratio * advantages
    if clip_coef is None:
        return unclipped
    clipped = jnp.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return jnp.minimum(unclipped, clipped)


def value_loss(values, old_values, returns, clip_coef: float | None):
    """Value loss per sample (to be minimised).

    L_V = (V(s_t) - G_t)^2, or with value clipping (clip_coef = eps_v):
    L_V = max((V - G)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - G)^2).
    """
    unclipped = jnp.square(values - returns)
    if clip_coef is None:
        return unclipped
    clipped_values = old_values + jnp.clip(values - old_values, -clip_coef, clip_coef)
    return jnp.maximum(unclipped, jnp.square(clipped_values - returns))


def approx_kl(log_prob, old_log_prob):
    """Approximate KL(pi_old || pi) with the low-variance estimator E[(r - 1) - log r]."""
    log_ratio = log_prob - old_log_prob
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)


UNCLIPPED_REFERENCE = 0.2  # the eps that clip_fraction reports against when the loss has no clip


def clip_fraction(log_prob, old_log_prob, clip_coef: float):
    """Fraction of samples whose ratio lies outside [1 - eps, 1 + eps]."""
    ratio = jnp.exp(log_prob - old_log_prob)
    return jnp.mean((jnp.abs(ratio - 1.0) > clip_coef).astype(jnp.float32))


def explained_variance(values, returns):
    """1 - Var[G - V] / Var[G]: 1 is a perfect critic, 0 no better than a constant, NaN if Var[G] = 0."""
    constant = jnp.all(returns == returns.ravel()[0])  # exact: float32 var() of a constant can be 1e-17, not 0
    var_returns = jnp.where(constant, 1.0, jnp.var(returns))
    return jnp.where(constant, jnp.nan, 1.0 - jnp.var(returns - values) / var_returns)


class LossTerms(NamedTuple):
    """The terms of the PPO objective for one minibatch (all scalars)."""

    loss: jnp.ndarray  # total, minimised: -L_clip + c1 L_V - c2 H
    policy_loss: jnp.ndarray  # -mean(L_clip)
    value_loss: jnp.ndarray  # mean(L_V)
    entropy: jnp.ndarray  # mean(H)
    approx_kl: jnp.ndarray
    clip_fraction: jnp.ndarray


def ppo_loss(
    log_prob,
    old_log_prob,
    advantages,
    values,
    old_values,
    returns,
    entropy,
    *,
    clip_coef: float | None,
    vf_clip_coef: float | None,
    vf_coef: float,
    ent_coef: float,
) -> LossTerms:
    """Total PPO loss to minimise: -(L_clip - c1 L_V + c2 H), each term averaged over samples.

    ``values=None`` drops the value term (no critic: REINFORCE-style training).
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
