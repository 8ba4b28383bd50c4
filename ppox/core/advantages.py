"""Returns and advantage estimators, as pure functions over time-major arrays, and their registry.

Every function takes arrays shaped [T, N] (time first; any trailing shape [T, ...] works) and keeps the two
ways an episode can end apart:

* ``terminated[t]``: the episode ended *inside* the MDP at step t (s_{t+1} is terminal,
  its value is 0; nothing is bootstrapped).
* ``truncated[t]``: the episode was cut off at step t by a time limit (s_{t+1} is not
  terminal; its value ``next_values[t]`` is bootstrapped).

``next_values[t]`` is V(s_{t+1}) where s_{t+1} is the *true* next observation of step t,
i.e. the final observation of the episode when step t ended it (not the reset
observation). The last step of a batch is treated like a truncation: it bootstraps from
``next_values[T-1]``.

``ADVANTAGE_ESTIMATORS`` names the estimators the learner can use (``--advantage``): the config's choices,
their validation and the learner all read it. A new estimator is its function and one line there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp


def _not(x: jax.Array) -> jax.Array:
    return 1.0 - x.astype(jnp.float32) if x.dtype == jnp.bool_ else 1.0 - x


def td_residuals(
    rewards: jax.Array, values: jax.Array, next_values: jax.Array, terminated: jax.Array, gamma: float | jax.Array
) -> jax.Array:
    """TD residual: delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t).

    Args:
        rewards: r_t, float [T, N].
        values: V(s_t), float [T, N].
        next_values: V(s_{t+1}) of the true next observation, float [T, N].
        terminated: s_{t+1} is terminal, bool (or 0/1 float) [T, N].
        gamma: the discount factor in [0, 1], a float or a traced scalar.

    Returns:
        delta_t, float [T, N].
    """
    return rewards + gamma * _not(terminated) * next_values - values


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float | jax.Array,
    gae_lambda: float | jax.Array,
) -> jax.Array:
    """Generalised advantage estimation (Schulman et al. 2016).

    A_t = sum_l (gamma * lambda)^l delta_{t+l}, the sum stopping where an episode ends:
    A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},  done_t = terminated_t or truncated_t.
    lambda = 0 gives the TD residual; lambda = 1 gives G_t - V(s_t) (Monte Carlo).

    Args:
        rewards: r_t, float [T, N].
        values: V(s_t), float [T, N].
        next_values: V(s_{t+1}) of the true next observation, float [T, N].
        terminated: s_{t+1} is terminal, bool (or 0/1 float) [T, N].
        truncated: the episode was cut off after step t, bool (or 0/1 float) [T, N].
        gamma: the discount factor in [0, 1], a float or a traced scalar.
        gae_lambda: lambda in [0, 1], a float or a traced scalar.

    Returns:
        The advantages A_t, float [T, N], shaped like ``rewards``.
    """
    deltas = td_residuals(rewards, values, next_values, terminated, gamma)
    carry_on = gamma * gae_lambda * _not(jnp.logical_or(terminated, truncated))

    def step(next_advantage, inputs):
        delta, cont = inputs
        advantage = delta + cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, carry_on), reverse=True)
    return advantages


def discounted_returns(
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float | jax.Array,
) -> jax.Array:
    """Discounted return G_t = sum_k gamma^k r_{t+k}, summed to the end of the episode.

    G_t = r_t + gamma * (1 - terminated_t) * X_t, with X_t = next_values_t where the episode
    was truncated at t or the batch ends at t, and X_t = G_{t+1} otherwise.

    Args:
        rewards: r_t, float [T, N].
        next_values: V(s_{t+1}) of the true next observation, float [T, N]; zeros give the pure Monte
            Carlo return that never bootstraps.
        terminated: s_{t+1} is terminal, bool (or 0/1 float) [T, N].
        truncated: the episode was cut off after step t, bool (or 0/1 float) [T, N].
        gamma: the discount factor in [0, 1], a float or a traced scalar.

    Returns:
        G_t, float [T, N].
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


def nstep_advantages(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float | jax.Array,
    n: int,
) -> jax.Array:
    """n-step advantage: sum_{l<k} gamma^l r_{t+l} + gamma^k V(s_{t+k}) - V(s_t).

    k = n, or fewer where the episode or the batch ends first; a terminated episode adds
    no bootstrap value. n = 1 is the TD residual; n >= T (past the horizon) is the Monte
    Carlo advantage G_t - V(s_t).

    Args:
        rewards: r_t, float [T, N].
        values: V(s_t), float [T, N].
        next_values: V(s_{t+1}) of the true next observation, float [T, N].
        terminated: s_{t+1} is terminal, bool [T, N].
        truncated: the episode was cut off after step t, bool [T, N].
        gamma: the discount factor in [0, 1], a float or a traced scalar.
        n: the number of steps, a Python int >= 1 (static: it sets the loop's length).

    Returns:
        The advantages, float [T, N].

    Raises:
        ValueError: if ``n`` < 1.
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


# ----------------------------------------------------------------------------- the registry


class Trajectory(NamedTuple):
    """A time-major rollout as the estimators read it, each [T, N]; in the order of ``gae``'s arguments."""

    rewards: jax.Array
    values: jax.Array  # V(s_t)
    next_values: jax.Array  # V(s_{t+1}) of the true next observation
    terminated: jax.Array
    truncated: jax.Array


class EstimatorParams(NamedTuple):
    """The numbers an estimator may read: gamma and lambda (floats or traced scalars), n (a static int)."""

    gamma: Any
    gae_lambda: Any
    nstep_n: int


Estimator = Callable[[Trajectory, EstimatorParams], tuple[jax.Array, jax.Array]]
"""(trajectory, params) -> (advantages [T, N], value targets [T, N])."""


def with_targets(advantages: jax.Array, values: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(A_t, A_t + V(s_t)): an advantage and the value target it implies."""
    return advantages, advantages + values


ADVANTAGE_ESTIMATORS: dict[str, Estimator] = {
    "gae": lambda s, p: with_targets(gae(*s, p.gamma, p.gae_lambda), s.values),
    "td": lambda s, p: with_targets(td_residuals(s.rewards, s.values, s.next_values, s.terminated, p.gamma), s.values),
    "nstep": lambda s, p: with_targets(nstep_advantages(*s, p.gamma, p.nstep_n), s.values),
    "mc": lambda s, p: with_targets(
        discounted_returns(s.rewards, s.next_values, s.terminated, s.truncated, p.gamma) - s.values, s.values
    ),
}
"""--advantage name -> estimator: gae (GAE with --gae-lambda), td (one-step TD residual), nstep (--nstep-n
steps, then V), mc (Monte Carlo return G_t - V(s_t)); each value target is advantage + V(s_t)."""

if TYPE_CHECKING:
    AdvantageName = str
else:
    AdvantageName = Literal[tuple(ADVANTAGE_ESTIMATORS)]
    """The registry's names as a Literal: the choices of ``Config.advantage`` (shown by --help, checked)."""
