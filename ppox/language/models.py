"""Decoder-only language models in flax.linen: GPT-2 and the Llama family (Llama 2/3, Qwen2/2.5, Qwen3,
Mistral, Gemma 2/3).

Parameters are named after Hugging Face's tensors (``h_3/c_attn/kernel`` is ``transformer.h.3.attn.c_attn.weight``,
``layers_0/q_proj/kernel`` is ``model.layers.0.self_attn.q_proj.weight`` transposed), so that loading and
saving is one table (``ppox.language.weights.weight_table``). One call serves a whole sequence (scoring,
prefill) and one step of generation: tokens go into cache slots ``start .. start + T - 1``.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppox.language.config import LMConfig
from ppox.language.layers import (
    ACTIVATIONS,
    KVCache,
    LayerNorm,
    RMSNorm,
    attend,
    dense,
    empty_cache,
    positions_from_mask,
    rotary,
    write,
)


def rope_frequencies(config: LMConfig, local: bool = False):
    """Inverse frequencies of the rotary embedding, theta^(-2i/d) for i < d/2, with linear or Llama 3's
    rescaling; ``local``: those of a sliding layer where the config gives them their own base (Gemma 3: no
    scaling there).

    Linear: every f is divided by ``factor``. Llama 3: wavelengths 2 pi / f longer than L / low_freq_factor
    are divided by ``factor``, shorter than L / high_freq_factor are kept, and in between blend linearly in
    s = (L / wavelength - low) / (high - low), with L the original context length."""
    d = config.head_dim
    if local and config.local_rope_theta:
        return [config.local_rope_theta ** (-2 * i / d) for i in range(d // 2)]
    freqs = [config.rope_theta ** (-2 * i / d) for i in range(d // 2)]
    if not config.rope_scaling:
        return freqs
    if config.rope_scaling[0] == "linear":
        return [f / config.rope_scaling[1] for f in freqs]
    _, factor, low, high, length = config.rope_scaling
    scaled = []
    for f in freqs:
        wavelength = 2 * math.pi / f
        if wavelength > length / low:
            scaled.append(f / factor)
        elif wavelength < length / high:
            scaled.append(f)
        else:
            s = (length / wavelength - low) / (high - low)
            scaled.append((1 - s) * f / factor + s * f)
    return scaled


class GPT2Block(nn.Module):
    """x + attn(ln_1(x)), then + mlp(ln_2(x)); attention projections fused in c_attn."""

    config: LMConfig

    @nn.compact
    def __call__(self, x, positions, keys, values, valid, start):
        c = self.config
        qkv = dense(3 * c.hidden_size, "c_attn", True)(LayerNorm(c.norm_eps, name="ln_1")(x))
        q, k, v = (t.reshape(*x.shape[:2], c.num_heads, c.head_dim) for t in jnp.split(qkv, 3, axis=-1))
        keys, values = write(keys, k, start), write(values, v, start)
        out = attend(q, keys, values, valid, start)
        x = x + dense(c.hidden_size, "c_proj", True)(out)
        h = LayerNorm(c.norm_eps, name="ln_2")(x)
        h = dense(c.hidden_size, "mlp_c_proj", True)(
            ACTIVATIONS[c.activation](dense(c.intermediate_size, "mlp_c_fc", True)(h))
        )
        return x + h, keys, values


class LlamaBlock(nn.Module):
    """x + o_proj(attention(rope(q), rope(k), v)), then + down_proj(act(gate_proj(x)) * up_proj(x)), each
    branch after an RMSNorm. Qwen3 and Gemma 3 normalise each head's q and k before the rotation; Gemma
    normalises each branch's output too (post_attention_layernorm, post_feedforward_layernorm)."""

    config: LMConfig
    index: int = 0

    @nn.compact
    def __call__(self, x, positions, keys, values, valid, start):
        c = self.config
        norm = functools.partial(RMSNorm, c.norm_eps, c.gemma)
        h = norm(name="input_layernorm")(x)
        shape = x.shape[:2]
        q = dense(c.num_heads * c.head_dim, "q_proj", c.qkv_bias)(h).reshape(*shape, c.num_heads, c.head_dim)
        k = dense(c.num_kv_heads * c.head_dim, "k_proj", c.qkv_bias)(h).reshape(*shape, c.num_kv_heads, c.head_dim)
        v = dense(c.num_kv_heads * c.head_dim, "v_proj", c.qkv_bias)(h).reshape(*shape, c.num_kv_heads, c.head_dim)
        if c.qk_norm:
            q, k = norm(name="q_norm")(q), norm(name="k_norm")(k)
        sliding = bool(c.sliding_layers) and c.sliding_layers[self.index]
        freqs = tuple(rope_frequencies(c, local=sliding))
        q, k = rotary(q, positions, freqs), rotary(k, positions, freqs)
        keys, values = write(keys, k, start), write(values, v, start)
        scale = c.query_scalar**-0.5 if c.query_scalar else 0.0
        window = c.sliding_window if sliding else 0
        out = attend(q, keys, values, valid, start, window=window, scale=scale, softcap=c.attn_softcap)
        out = dense(c.hidden_size, "o_proj", c.out_bias)(out)
        if c.gemma:
            out = norm(name="post_attention_layernorm")(out)
        x = x + out
        h = norm(name="pre_feedforward_layernorm" if c.gemma else "post_attention_layernorm")(x)
        gate = ACTIVATIONS[c.activation](dense(c.intermediate_size, "gate_proj", c.mlp_bias)(h))
        h = dense(c.hidden_size, "down_proj", c.mlp_bias)(gate * dense(c.intermediate_size, "up_proj", c.mlp_bias)(h))
        if c.gemma:
            h = norm(name="post_feedforward_layernorm")(h)
        return x + h, keys, values


class CausalLM(nn.Module):
    """logits [B, T, vocab] (float32) of the next token after each of ``tokens`` [B, T], and the cache
    with their keys and values written into slots ``start .. start + T - 1``. ``hidden=True`` returns the
    final normed hidden states [B, T, width] (float32) instead of logits (for value and reward heads)."""

    config: LMConfig
    hidden: bool = False

    @nn.compact
    def __call__(self, tokens, positions, cache: KVCache, start):
        c = self.config
        gpt2 = c.family == "gpt2"
        init = nn.initializers.normal(0.02)
        embedding = self.param("wte" if gpt2 else "embed_tokens", init, (c.vocab_size, c.hidden_size))
        x = jnp.take(embedding, tokens, axis=0)
        if c.gemma:  # (the scale rounded to the parameters' dtype first, as transformers does)
            x = x * jnp.asarray(math.sqrt(c.hidden_size), embedding.dtype)
        if gpt2:
            x = x + jnp.take(self.param("wpe", init, (c.max_positions, c.hidden_size)), positions, axis=0)
        keys, values = [], []
        for i in range(c.num_layers):
            layer = GPT2Block(c, name=f"h_{i}") if gpt2 else LlamaBlock(c, i, name=f"layers_{i}")
            x, k, v = layer(x, positions, cache.keys[i], cache.values[i], cache.valid, start)
            keys.append(k)
            values.append(v)
        x = LayerNorm(c.norm_eps, name="ln_f")(x) if gpt2 else RMSNorm(c.norm_eps, c.gemma, name="norm")(x)
        if self.hidden:
            return x.astype(jnp.float32), KVCache(tuple(keys), tuple(values), cache.valid)
        if c.tie_embeddings:
            logits = x @ embedding.T.astype(x.dtype)
        else:
            logits = dense(c.vocab_size, "lm_head", False)(x)
        logits = logits.astype(jnp.float32)
        if c.final_softcap:
            logits = c.final_softcap * jnp.tanh(logits / c.final_softcap)
        return logits, KVCache(tuple(keys), tuple(values), cache.valid)


def new_cache(config: LMConfig, valid: jax.Array, dtype=jnp.float32) -> KVCache:
    """An empty cache for ``config`` with one slot per column of ``valid`` [B, S]."""
    return empty_cache(config.num_layers, config.num_kv_heads, config.head_dim, valid, dtype)


def init_params(config: LMConfig, key: jax.Array, dtype=jnp.float32) -> dict:
    """Random parameters (normal, std 0.02; norms at 1, biases at 0) for tests and new models."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    cache = new_cache(config, jnp.ones((1, 1), bool))
    params = CausalLM(config).init(key, tokens, tokens, cache, 0)["params"]
    return jax.tree.map(lambda p: p.astype(dtype), params)


def params_dtype(params: dict):
    """The dtype the parameters compute in (that of the token embedding)."""
    return jax.tree.leaves(params)[0].dtype


def forward(config: LMConfig, params: dict, tokens: jax.Array, mask: jax.Array, dropout_key=None) -> jax.Array:
    """Logits [B, T, vocab] for whole left-padded sequences (no cache kept): position ids from ``mask``.
    ``dropout_key``: the key of the LoRA adapters' dropout (training; ``layers.Dense``)."""
    cache = new_cache(config, mask, params_dtype(params))
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    logits, _ = CausalLM(config).apply({"params": params}, tokens, positions_from_mask(mask), cache, 0, rngs=rngs)
    return logits


def hidden_states(config: LMConfig, params: dict, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """The final normed hidden states [B, T, width] (float32) of whole left-padded sequences."""
    cache = new_cache(config, mask, params_dtype(params))
    x, _ = CausalLM(config, hidden=True).apply({"params": params}, tokens, positions_from_mask(mask), cache, 0)
    return x
