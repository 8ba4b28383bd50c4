"""Running normalisation statistics as pure state (observation and reward normalisation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningMeanStd:
    """Mean and variance of everything seen so far (Chan et al.'s parallel update).

    Attributes:
        mean: the running mean, float [*shape].
        var: the running (population) variance, float [*shape].
        count: the number of samples merged, a float scalar (starts at 1e-4, so that nothing divides by 0).
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...] = ()) -> RunningMeanStd:
        """Statistics of samples shaped ``shape``: mean 0, variance 1, count 1e-4."""
        return cls(jnp.zeros(shape), jnp.ones(shape), jnp.asarray(1e-4))


def update_stats(stats: RunningMeanStd, batch: jax.Array) -> RunningMeanStd:
    """Merge a batch (leading axis = samples) into the running mean and variance.

    delta = mean_b - mean;  n = n_a + n_b;  mean' = mean + delta n_b / n
    var' = (var n_a + var_b n_b + delta^2 n_a n_b / n) / n

    Args:
        stats: the statistics so far (n_a = ``stats.count``).
        batch: the new samples, float [B, *shape] (n_b = B).

    Returns:
        The merged statistics.
    """
    batch_mean = jnp.mean(batch, axis=0)
    batch_var = jnp.var(batch, axis=0)
    batch_count = batch.shape[0]
    delta = batch_mean - stats.mean
    total = stats.count + batch_count
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_var * batch_count + jnp.square(delta) * stats.count * batch_count / total
    return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def normalize(stats: RunningMeanStd, x: jax.Array, clip: float = 10.0, eps: float = 1e-8) -> jax.Array:
    """(x - mean) / sqrt(var + eps), clipped to [-clip, clip].

    Args:
        stats: the running statistics, mean and var [*shape].
        x: the values, float [..., *shape] (broadcast against the statistics).
        clip: the bound of the result.
        eps: added to the variance.

    Returns:
        The normalised values, float, shaped like ``x``.
    """
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + eps), -clip, clip)


@struct.dataclass
class RewardScaler:
    """Reward scaling by the running std of the discounted return (per-env accumulators).

    R_t = gamma R_{t-1} (1 - done_{t-1}) + r_t;   r_scaled = clip(r / sqrt(Var[R] + eps), -clip, clip)

    Attributes:
        returns: the discounted return so far in each env's episode, float [N].
        stats: the running statistics of R, scalars.
    """

    returns: jax.Array
    stats: RunningMeanStd

    @classmethod
    def create(cls, num_envs: int) -> RewardScaler:
        """A scaler for ``num_envs`` envs: no return yet, variance 1."""
        return cls(jnp.zeros((num_envs,)), RunningMeanStd.create(()))


def scale_reward(
    scaler: RewardScaler,
    reward: jax.Array,
    done: jax.Array,
    gamma: float | jax.Array,
    clip: float = 10.0,
    eps: float = 1e-8,
) -> tuple[RewardScaler, jax.Array]:
    """One vector step of reward scaling: R = gamma R + r, Var[R] updated, r / sqrt(Var[R] + eps) clipped.

    Args:
        scaler: the scaler before the step.
        reward: r_t of each env, float [N].
        done: the step ended each env's episode (its R restarts at 0), bool [N].
        gamma: the discount factor, a float or a traced scalar.
        clip: the bound of the scaled reward.
        eps: added to the variance.

    Returns:
        (the updated scaler, the scaled rewards float [N]).
    """
    returns = scaler.returns * gamma + reward
    stats = update_stats(scaler.stats, returns)
    scaled = jnp.clip(reward / jnp.sqrt(stats.var + eps), -clip, clip)
    returns = jnp.where(done, 0.0, returns)
    return RewardScaler(returns=returns, stats=stats), scaled
