"""Running normalisation statistics as pure state (observation and reward normalisation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningMeanStd:
    """Mean and variance of everything seen so far (Chan et al.'s parallel update)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape=()) -> RunningMeanStd:
        return cls(jnp.zeros(shape), jnp.ones(shape), jnp.asarray(1e-4))


def update_stats(stats: RunningMeanStd, batch: jax.Array) -> RunningMeanStd:
    """Merge a batch (leading axis = samples) into the running mean and variance.

    delta = mean_b - mean;  n = n_a + n_b;  mean' = mean + delta n_b / n
    var' = (var n_a + var_b n_b + delta^2 n_a n_b / n) / n
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
    """(x - mean) / sqrt(var + eps), clipped to [-clip, clip]."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + eps), -clip, clip)


@struct.dataclass
class RewardScaler:
    """Reward scaling by the running std of the discounted return (per-env accumulators).

    R_t = gamma R_{t-1} (1 - done_{t-1}) + r_t;   r_scaled = clip(r / sqrt(Var[R] + eps), -clip, clip)
    """

    returns: jax.Array  # [num_envs] discounted return so far in each env's episode
    stats: RunningMeanStd

    @classmethod
    def create(cls, num_envs: int) -> RewardScaler:
        return cls(jnp.zeros((num_envs,)), RunningMeanStd.create(()))


def scale_reward(scaler: RewardScaler, reward, done, gamma: float, clip: float = 10.0, eps: float = 1e-8):
    """Update the scaler with one vector step and return (scaler', scaled reward)."""
    returns = scaler.returns * gamma + reward
    stats = update_stats(scaler.stats, returns)
    scaled = jnp.clip(reward / jnp.sqrt(stats.var + eps), -clip, clip)
    returns = jnp.where(done, 0.0, returns)
    return RewardScaler(returns=returns, stats=stats), scaled
