"""Action distributions as small immutable dataclasses sharing one interface.

Each has ``sample(key)``, ``log_prob(action)``, ``entropy()`` and ``mode()``; batch
dimensions lead, the event dimension (if any) trails.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


@struct.dataclass
class Categorical:
    """pi(a|s) = softmax(logits)_a over n actions; ``mask`` (bool, True = allowed) removes actions.

    H = -sum_a p_a log p_a (masked actions contribute 0).

    Attributes:
        logits: unnormalised log-probabilities, float [B, n].
        mask: the allowed actions, bool [B, n]; None: all.
    """

    logits: jax.Array
    mask: jax.Array | None = None

    def _masked_logits(self):
        if self.mask is None:
            return self.logits
        return jnp.where(self.mask, self.logits, jnp.finfo(self.logits.dtype).min)

    def log_probs(self) -> jax.Array:
        """log pi(a|s) of every action, float [B, n] (a very negative number where masked)."""
        return jax.nn.log_softmax(self._masked_logits(), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """An action drawn from pi, int [B]."""
        return jax.random.categorical(key, self._masked_logits(), axis=-1)

    def mode(self) -> jax.Array:
        """The most probable allowed action, int [B]."""
        return jnp.argmax(self._masked_logits(), axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log pi(action|s), float [B], of actions int [B]."""
        # a one-hot product rather than a gather: its gradient is a product too, not a scatter
        one_hot = jax.nn.one_hot(action, self.logits.shape[-1], dtype=self.logits.dtype)
        return jnp.sum(jnp.where(one_hot > 0, self.log_probs(), 0.0), axis=-1)

    def entropy(self) -> jax.Array:
        """H[pi(.|s)], float [B]."""
        logp = self.log_probs()
        p = jnp.exp(logp)
        return -jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)


@struct.dataclass
class DiagGaussian:
    """pi(a|s) = N(mean, diag(exp(log_std)^2)); ``log_std`` broadcasts (state-independent).

    log pi(a) = -sum_i [ (a_i - mu_i)^2 / (2 sigma_i^2) + log sigma_i + log(2 pi) / 2 ]
    H = sum_i [ log sigma_i + (1 + log(2 pi)) / 2 ]

    Attributes:
        mean: mu, float [B, d].
        log_std: log sigma, float [d] (or broadcastable to [B, d]).
    """

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        """An action drawn from pi (unclipped), float [B, d]."""
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def mode(self) -> jax.Array:
        """The mean, float [B, d]."""
        return self.mean

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log pi(action|s), float [B], of actions float [B, d]."""
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        z = (action - self.mean) * jnp.exp(-log_std)
        return -jnp.sum(0.5 * jnp.square(z) + log_std + 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        """H[pi(.|s)], float [B]."""
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)


@struct.dataclass
class MultiCategorical:
    """Independent categoricals, one per action dimension (MultiDiscrete / MultiBinary).

    ``logits`` holds all dimensions' logits concatenated on the last axis; ``nvec`` (static)
    gives each dimension's size. log pi(a) = sum_i log pi_i(a_i); H = sum_i H_i.

    Attributes:
        logits: every dimension's logits, concatenated, float [B, sum(nvec)].
        nvec: the size of each action dimension (static).
        mask: the allowed values, bool [B, sum(nvec)]; None: all.
    """

    logits: jax.Array
    nvec: tuple[int, ...] = struct.field(pytree_node=False)
    mask: jax.Array | None = None

    def _parts(self):
        splits = list(itertools.accumulate(self.nvec))[:-1]
        logits = jnp.split(self.logits, splits, axis=-1)
        masks = [None] * len(logits) if self.mask is None else jnp.split(self.mask, splits, axis=-1)
        return [Categorical(lg, m) for lg, m in zip(logits, masks)]

    def sample(self, key: jax.Array) -> jax.Array:
        """An action drawn from pi, int [B, len(nvec)]."""
        parts = self._parts()
        keys = jax.random.split(key, len(parts))
        return jnp.stack([d.sample(k) for d, k in zip(parts, keys)], axis=-1)

    def mode(self) -> jax.Array:
        """The most probable allowed value of each dimension, int [B, len(nvec)]."""
        return jnp.stack([d.mode() for d in self._parts()], axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log pi(action|s), float [B], of actions int [B, len(nvec)]."""
        return sum(d.log_prob(action[..., i]) for i, d in enumerate(self._parts()))

    def entropy(self) -> jax.Array:
        """H[pi(.|s)], float [B]."""
        return sum(d.entropy() for d in self._parts())
