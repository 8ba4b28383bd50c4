"""Returns and advantage estimators, as pure functions over time-major arrays.

Every function takes arrays shaped [T, ...] (time first) and keeps the two ways an
episode can end apart:

* ``terminated[t]``: the episode ended *inside* the MDP at step t (s_{t+1} is terminal,
  its value is 0; nothing is bootstrapped).
* ``truncated[t]``: the episode was cut off at step t by a time limit (s_{t+1} is not
  terminal; its value ``next_values[t]`` is bootstrapped).

``next_values[t]`` is V(s_{t+1}) where s_{t+1} is the *true* next observation of step t,
i.e. the final observation of the episode when step t ended it (not the reset
observation). The last step of a batch is treated like a truncation: it bootstraps from
``next_values[T-1]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _not(x: jax.Array) -> jax.Array:
    return 1.0 - x.astype(jnp.float32) if x.dtype == jnp.bool_ else 1.0 - x


def td_residuals(rewards, values, next_values, terminated, gamma: float):
    """TD residual: delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)."""
    return rewards + gamma * _not(terminated) * next_values - values


def gae(rewards, values, next_values, terminated, truncated, gamma: float, gae_lambda: float):
    """Generalised advantage estimation (Schulman et al. 2016).

    A_t = sum_l (gamma * lambda)^l delta_{t+l}, the sum stopping where an episode ends:
    A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},  done_t = terminated_t or truncated_t.

    lambda = 0 gives the TD residual; lambda = 1 gives G_t - V(s_t) (Monte Carlo).
    Returns the advantages, shaped like ``rewards``.
    """
    deltas = td_residuals(rewards, values, next_values, terminated, gamma)
    carry_on = gamma * gae_lambda * _not(jnp.logical_or(terminated, truncated))

    def step(next_advantage, inputs):
        delta, cont = inputs
        advantage = delta + cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, carry_on), reverse=True)
    return advantages


def discounted_returns(rewards, next_values, terminated, truncated, gamma: float):
    """Discounted return G_t = sum_k gamma^k r_{t+k}, summed to the end of the episode.

    G_t = r_t + gamma * (1 - terminated_t) * X_t, with X_t = next_values_t where the episode
    was truncated at t or the batch ends at t, and X_t = G_{t+1} otherwise. Pass zeros as
    ``next_values`` for the pure Monte Carlo return that never bootstraps.
    """
    not_term = _not(terminated)
    cut = jnp.logical_or(truncated, jnp.zeros_like(truncated).at[-1].set(True))

    def step(next_return, inputs):
        reward, nv, cont, is_cut = inputs
        future = jnp.where(is_cut, nv, next_return)
        ret = reward + gamma * cont * future
        return ret, ret

    _, returns = jax.lax.scan(step, jnp.zeros_like(rewards[0]), (rewards, next_values, not_term, cut), reverse=True)
    return returns


def nstep_advantages(rewards, values, next_values, terminated, truncated, gamma: float, n: int):
    """n-step advantage: sum_{l<k} gamma^l r_{t+l} + gamma^k V(s_{t+k}) - V(s_t).

    k = n, or fewer where the episode or the batch ends first; a terminated episode adds
    no bootstrap value. n = 1 is the TD residual; n >= T (past the horizon) is the Monte
    Carlo advantage G_t - V(s_t).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    horizon = rewards.shape[0]
    n = min(int(n), horizon)
    done = jnp.logical_or(terminated, truncated)
    not_term = _not(terminated)
    time = jnp.arange(horizon).reshape((horizon,) + (1,) * (rewards.ndim - 1))

    def pad(x):
        return jnp.concatenate([x, jnp.zeros_like(x)], axis=0)

    padded = (pad(rewards), pad(next_values), pad(not_term), pad(done))

    def step(lag, carry):
        total, discount, alive = carry
        r, nv, nt, d = (jax.lax.dynamic_slice_in_dim(x, lag, horizon) for x in padded)
        valid = jnp.logical_and(alive, time + lag < horizon)
        total = total + jnp.where(valid, discount * r, 0.0)
        stop = valid & (d | (lag == n - 1) | (time + lag == horizon - 1))
        total = total + jnp.where(stop, discount * gamma * nt * nv, 0.0)
        return total, discount * gamma, jnp.logical_and(valid, ~stop)

    init = (jnp.zeros_like(rewards), jnp.ones_like(rewards), jnp.ones(rewards.shape, bool))
    total, _, _ = jax.lax.fori_loop(0, n, step, init)
    return total - values
