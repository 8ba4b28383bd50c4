"""The pieces of a decoder-only transformer: norms, rotary positions, causal attention over a key/value cache.

Arithmetic follows the parameters' dtype (float32 or bfloat16); normalisation statistics, attention
scores and their softmax are computed in float32.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

ACTIVATIONS = {
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


class KVCache(struct.PyTreeNode):
    """Keys and values of every layer for ``S`` token slots, and which slots hold a real token.

    keys[l], values[l]: [B, S, kv_heads, head_dim]; valid: [B, S] bool (False for left padding). A query
    in slot t attends to the slots s <= t that are valid."""

    keys: tuple
    values: tuple
    valid: jax.Array


def empty_cache(num_layers: int, kv_heads: int, head_dim: int, valid: jax.Array, dtype) -> KVCache:
    """A zero cache with ``valid.shape[1]`` slots per row."""
    shape = (*valid.shape, kv_heads, head_dim)
    zeros = tuple(jnp.zeros(shape, dtype) for _ in range(num_layers))
    return KVCache(keys=zeros, values=zeros, valid=valid.astype(bool))


def positions_from_mask(mask: jax.Array) -> jax.Array:
    """Position ids for left-padded rows: p_t = (sum_{s<=t} mask_s) - 1, 0 on the padding."""
    return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)


class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * scale + bias, statistics in float32."""

    eps: float

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * scale.astype(jnp.float32) + bias.astype(jnp.float32)).astype(scale.dtype)


class RMSNorm(nn.Module):
    """y = weight * x / sqrt(mean(x^2) + eps), the mean in float32. ``plus_one`` (Gemma): y = (1 + weight) *
    x / sqrt(mean(x^2) + eps), all in float32, then rounded to x's dtype (weight starts at 0)."""

    eps: float
    plus_one: bool = False

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.zeros if self.plus_one else nn.initializers.ones
        weight = self.param("weight", init, (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + self.eps)
        if self.plus_one:
            return (y * (1.0 + weight.astype(jnp.float32))).astype(x.dtype)
        return weight * y.astype(weight.dtype)


class Dense(nn.Dense):
    """nn.Dense, plus a LoRA adapter where its parameters hold one (``ppox.language.lora``): leaves lora_a
    [in, r], lora_b [r, out] and lora_scale s (= alpha / r; never trained: its gradient is stopped) add
    s (drop(x) A) B, in float32, to y = x W + b. drop: inverted dropout at rate lora_dropout, only when the
    call is given a "dropout" key (training); without the leaves, nn.Dense exactly."""

    @nn.compact
    def __call__(self, inputs):
        y = super().__call__(inputs)
        if not self.has_variable("params", "lora_a"):
            return y
        a, b = self.get_variable("params", "lora_a"), self.get_variable("params", "lora_b")
        scale = jax.lax.stop_gradient(self.get_variable("params", "lora_scale")).astype(jnp.float32)
        x = inputs.astype(jnp.float32)
        if self.has_rng("dropout") and self.has_variable("params", "lora_dropout"):
            rate = jax.lax.stop_gradient(self.get_variable("params", "lora_dropout")).astype(jnp.float32)
            keep = jax.random.uniform(self.make_rng("dropout"), x.shape) >= rate
            x = jnp.where(keep, x / jnp.maximum(1.0 - rate, 1e-6), 0.0)
        delta = (x @ a.astype(jnp.float32)) @ b.astype(jnp.float32)
        return (y.astype(jnp.float32) + scale * delta).astype(y.dtype)


def dense(features: int, name: str, bias: bool) -> nn.Dense:
    """A linear layer y = x W + b whose arithmetic follows its parameters' dtype (with a LoRA adapter where
    the parameters hold one: ``Dense``)."""
    return Dense(
        features,
        use_bias=bias,
        dtype=None,
        name=name,
        kernel_init=nn.initializers.normal(0.02),
        bias_init=nn.initializers.zeros,
    )


def rotary(x: jax.Array, positions: jax.Array, freqs: tuple) -> jax.Array:
    """Rotary position embedding (Su et al. 2021), halves convention: with x = [x1, x2] and angles p f_i,
    y = [x1 cos - x2 sin, x2 cos + x1 sin]. x: [B, T, heads, d]; positions: [B, T]."""
    angles = positions[..., None].astype(jnp.float32) * jnp.asarray(freqs, jnp.float32)
    cos = jnp.cos(jnp.concatenate([angles, angles], -1))[:, :, None].astype(x.dtype)
    sin = jnp.sin(jnp.concatenate([angles, angles], -1))[:, :, None].astype(x.dtype)
    x1, x2 = jnp.split(x, 2, axis=-1)
    return x * cos + jnp.concatenate([-x2, x1], -1) * sin


def write(cache: jax.Array, new: jax.Array, start) -> jax.Array:
    """``cache`` [B, S, ...] with ``new`` [B, T, ...] written into slots start .. start + T - 1."""
    return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), (0, start, 0, 0))


def attend(
    q: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    valid: jax.Array,
    start,
    window: int = 0,
    scale: float = 0.0,
    softcap: float = 0.0,
) -> jax.Array:
    """Causal attention softmax(q k^T / sqrt(d) + mask) v over the cache, grouped-query: query head h reads
    key/value head h // (heads / kv_heads). q: [B, T, heads, d] for slots start .. start + T - 1;
    keys, values: [B, S, kv_heads, d]; valid: [B, S]. Returns [B, T, heads * d].

    ``window`` > 0: the query in slot t sees only slots s > t - window (sliding-window attention; the valid
    slots of a row are consecutive, so this is a window of positions too). ``scale`` > 0 replaces
    1 / sqrt(d); ``softcap`` c > 0 maps the scores to c tanh(scores / c) before the mask."""
    batch, steps, heads, dim = q.shape
    slots, kv_heads = keys.shape[1], keys.shape[2]
    q = q.reshape(batch, steps, kv_heads, heads // kv_heads, dim)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, keys, preferred_element_type=jnp.float32)
    scores = scores * (scale if scale > 0 else 1.0 / math.sqrt(dim))
    if softcap > 0:
        scores = softcap * jnp.tanh(scores / softcap)
    query_slots = (start + jnp.arange(steps))[:, None]
    causal = jnp.arange(slots)[None, :] <= query_slots
    if window > 0:
        causal = causal & (jnp.arange(slots)[None, :] > query_slots - window)
    allowed = causal[None] & valid[:, None, :]
    scores = jnp.where(allowed[:, None, None], scores, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1).astype(values.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", weights, values)
    return out.reshape(batch, steps, heads * dim)
