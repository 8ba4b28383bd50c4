"""Generation with a key/value cache, and the log-probabilities PPO needs of what was generated.

``make_sampler`` compiles one program for a batch of left-padded prompts of fixed shape: the prompts are
run once (prefill), then one token per step goes through the model with the cache, inside a
``lax.while_loop`` that ends when every row has produced an end-of-sequence token or ``max_new_tokens``.

The log-probability returned with each token is log pi_T(y_t | x, y_<t) = log softmax(z / T)[y_t], the
policy at the sampling temperature T over the whole vocabulary: what ``sequence_logprobs`` computes from a
full forward pass, so that the PPO ratio starts at exactly 1. top-k and top-p only restrict which tokens
may be drawn; with them the samples come from a narrower distribution than the policy that scores them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ppox.errors import ConfigError
from ppox.language.config import LMConfig
from ppox.language.layers import positions_from_mask
from ppox.language.models import CausalLM, forward, new_cache, params_dtype


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How tokens are drawn (hashable: part of the compiled program)."""

    max_new_tokens: int
    eos_ids: tuple[int, ...]  # a row ends at the first of these it produces (the token is kept)
    pad_id: int  # fills a row after its end; must not be an end-of-sequence id
    temperature: float = 1.0  # z / T before the softmax
    top_k: int = 0  # draw among the k most likely tokens only; 0: no limit
    top_p: float = 1.0  # draw among the fewest most likely tokens whose probability reaches p; 1: no limit
    greedy: bool = False  # take the most likely token (log-probabilities still at temperature T)

    def __post_init__(self):
        object.__setattr__(self, "eos_ids", tuple(int(i) for i in self.eos_ids))
        problems = [
            (self.max_new_tokens < 1, f"max_new_tokens={self.max_new_tokens}: at least 1"),
            (
                not self.temperature > 0,
                f"temperature={self.temperature}: must be > 0 (greedy=True for the most likely token)",
            ),
            (self.top_k < 0, f"top_k={self.top_k}: 0 (no limit) or more"),
            (not 0 < self.top_p <= 1, f"top_p={self.top_p}: in (0, 1]"),
            (
                self.pad_id in self.eos_ids,
                f"pad_id={self.pad_id} is an end-of-sequence id; padding must "
                "be told apart from the end: choose another pad id",
            ),
        ]
        for bad, message in problems:
            if bad:
                raise ConfigError(f"Sampling: {message}")


class Generation(struct.PyTreeNode):
    """What a sampler returns for B prompts and N = max_new_tokens."""

    tokens: jax.Array  # [B, N] int32: the response, pad_id after its end
    logprobs: jax.Array  # [B, N] float32: log pi_T(token | prefix); 0 where mask is False
    mask: jax.Array  # [B, N] bool: the response's tokens, its end-of-sequence token included

    @property
    def lengths(self) -> jax.Array:
        """Tokens in each response."""
        return self.mask.sum(-1)


def largest_threshold(logits: jax.Array, reaches: Callable[[jax.Array], jax.Array], halvings: int = 40) -> jax.Array:
    """The largest t [..., 1] for which ``reaches(t)`` holds, found by bisection between the smallest finite
    logit (where it must hold) and just above the largest (where it must not); ``reaches`` is monotone.

    After 40 halvings of a range R the bounds are at most R 2^-40 apart (usually adjacent floats, so the
    answer is exact): a logit that close below the boundary is treated as tied with it."""
    top = jnp.max(logits, axis=-1, keepdims=True)
    low = jnp.min(jnp.where(jnp.isfinite(logits), logits, top), axis=-1, keepdims=True)

    def halve(_, bounds):
        low, high = bounds
        middle = low + (high - low) / 2
        ok = reaches(middle)
        return jnp.where(ok, middle, low), jnp.where(ok, high, middle)

    return jax.lax.fori_loop(0, halvings, halve, (low, jnp.nextafter(top, jnp.inf)))[0]


def filter_logits(logits: jax.Array, top_k: int, top_p: float) -> jax.Array:
    """``logits`` with the tokens outside the top-k and outside the top-p nucleus set to -inf.

    top-k keeps z_i >= t_k, t_k the k-th largest logit; top-p keeps z_i >= t_p, t_p the largest t with
    sum_{z_j >= t} softmax(z)_j >= p: the fewest most likely tokens whose probability reaches p (the most
    likely token always stays), over what top-k left. Ties at a boundary are kept. Both thresholds come from
    bisection rather than a sort of the vocabulary (cheaper on a CPU)."""
    if top_k and top_k < logits.shape[-1]:
        kth = largest_threshold(logits, lambda t: jnp.sum(logits >= t, axis=-1, keepdims=True) >= top_k)
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        probs = jax.nn.softmax(logits, axis=-1)
        nucleus = largest_threshold(
            logits, lambda t: jnp.sum(jnp.where(logits >= t, probs, 0.0), axis=-1, keepdims=True) >= top_p
        )
        logits = jnp.where(logits < nucleus, -jnp.inf, logits)
    return logits


def inverse_cdf(logits: jax.Array, u: jax.Array) -> jax.Array:
    """The token i with C_{i-1} <= u C_V < C_i, C_i = sum_{j<=i} exp(z_j - max z): a draw from softmax(z)
    for u ~ U[0, 1) [B]. Tokens at -inf are never chosen (the last possible token stands in for u C_V
    rounding up to C_V). One uniform per row instead of Gumbel noise per token (cheaper on a CPU); float32's
    cumulative sum moves each token's probability by at most ~1e-7."""
    weights = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    cumulative = jnp.cumsum(weights, axis=-1)
    index = jnp.sum(cumulative <= u[:, None] * cumulative[:, -1:], axis=-1)
    last_possible = logits.shape[-1] - 1 - jnp.argmax((weights > 0)[:, ::-1], axis=-1)
    return jnp.minimum(index, last_possible)


def sample_tokens(logits: jax.Array, key: jax.Array, sampling: Sampling) -> tuple[jax.Array, jax.Array]:
    """(tokens [B], log pi_T(token) [B]) drawn from next-token ``logits`` [B, vocab]."""
    scaled = logits.astype(jnp.float32) / sampling.temperature
    if sampling.greedy:
        tokens = jnp.argmax(scaled, axis=-1)
    else:
        u = jax.random.uniform(key, scaled.shape[:1])
        tokens = inverse_cdf(filter_logits(scaled, sampling.top_k, sampling.top_p), u)
    logprobs = jnp.take_along_axis(jax.nn.log_softmax(scaled, axis=-1), tokens[:, None], axis=-1)[:, 0]
    return tokens.astype(jnp.int32), logprobs


class _Decoding(struct.PyTreeNode):
    step: jax.Array
    cache: object
    logits: jax.Array  # [B, vocab]: the next token's
    position: jax.Array  # [B]: the next token's position id
    done: jax.Array
    out: Generation
    key: jax.Array


def _decode_step(config: LMConfig, sampling: Sampling, params: dict, prompt_length: int, state: _Decoding) -> _Decoding:
    key, draw = jax.random.split(state.key)
    token, logprob = sample_tokens(state.logits, draw, sampling)
    live = ~state.done
    token = jnp.where(live, token, sampling.pad_id)
    out = Generation(
        tokens=state.out.tokens.at[:, state.step].set(token),
        logprobs=state.out.logprobs.at[:, state.step].set(jnp.where(live, logprob, 0.0)),
        mask=state.out.mask.at[:, state.step].set(live),
    )
    done = state.done | jnp.isin(token, jnp.asarray(sampling.eos_ids, jnp.int32))
    logits, cache = CausalLM(config).apply(
        {"params": params}, token[:, None], state.position[:, None], state.cache, prompt_length + state.step
    )
    return _Decoding(state.step + 1, cache, logits[:, 0], state.position + 1, done, out, key)


def _generate(
    config: LMConfig, sampling: Sampling, params: dict, prompt: jax.Array, prompt_mask: jax.Array, key: jax.Array
) -> Generation:
    batch, length = prompt.shape
    steps = sampling.max_new_tokens
    prompt_mask = prompt_mask.astype(bool)
    valid = jnp.concatenate([prompt_mask, jnp.ones((batch, steps), bool)], axis=1)
    positions = positions_from_mask(prompt_mask)
    logits, cache = CausalLM(config).apply(
        {"params": params}, prompt, positions, new_cache(config, valid, params_dtype(params)), 0
    )
    empty = Generation(
        tokens=jnp.full((batch, steps), sampling.pad_id, jnp.int32),
        logprobs=jnp.zeros((batch, steps), jnp.float32),
        mask=jnp.zeros((batch, steps), bool),
    )
    state = _Decoding(
        jnp.int32(0), cache, logits[:, -1], prompt_mask.sum(-1).astype(jnp.int32), jnp.zeros(batch, bool), empty, key
    )
    state = jax.lax.while_loop(
        lambda s: (s.step < steps) & ~s.done.all(),
        functools.partial(_decode_step, config, sampling, params, length),
        state,
    )
    return state.out


def bucket_width(longest: int, full: int, smallest: int) -> int:
    """The prompt width an update compiles for: the smallest power of two >= ``longest`` (at least
    ``smallest``), capped at ``full`` (the data set's width). Widths 1..W then give at most
    log2(W / smallest) + 2 programs, not W."""
    if not 1 <= longest <= full:
        raise ConfigError(f"bucket_width: longest prompt {longest} must be in [1, {full}] (the padded width)")
    return min(full, max(smallest, 1 << (longest - 1).bit_length()))


def trim_prompts(ids: np.ndarray, mask: np.ndarray, smallest: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded prompts [B, W] cut to ``bucket_width`` of their longest row (``smallest`` 0: not cut): the
    columns dropped are padding in every row, so the completions are the same (positions count real tokens,
    padding is masked out)."""
    if not smallest:
        return ids, mask
    width = bucket_width(int(np.asarray(mask, bool).sum(-1).max()), ids.shape[1], smallest)
    return ids[:, ids.shape[1] - width :], mask[:, mask.shape[1] - width :]


@functools.lru_cache(maxsize=32)
def make_sampler(config: LMConfig, sampling: Sampling) -> Callable[..., Generation]:
    """A compiled ``sample(params, prompt, prompt_mask, key) -> Generation`` for left-padded prompts
    ([B, P] int32 ids and bool mask; every row needs at least one prompt token). P + max_new_tokens may
    not exceed the model's max_position_embeddings (n_positions for GPT-2)."""
    compiled = jax.jit(functools.partial(_generate, config, sampling))

    def sample(params: dict, prompt: jax.Array, prompt_mask: jax.Array, key: jax.Array) -> Generation:
        if prompt.shape[1] + sampling.max_new_tokens > config.max_positions:
            raise ConfigError(
                f"prompts of {prompt.shape[1]} tokens + max_new_tokens={sampling.max_new_tokens} "
                f"exceed the model's {config.max_positions} positions: shorten one of them"
            )
        return compiled(params, prompt, prompt_mask, key)

    return sample


def sequence_logprobs(
    config: LMConfig,
    params: dict,
    prompt: jax.Array,
    prompt_mask: jax.Array,
    response: jax.Array,
    response_mask: jax.Array,
    temperature: float = 1.0,
) -> jax.Array:
    """log pi_T(y_t | x, y_<t) = log softmax(z_t / T)[y_t] for each response token [B, N], from one forward
    pass over prompt and response; 0 where ``response_mask`` is False. Differentiable in ``params``."""
    tokens = jnp.concatenate([prompt, response], axis=1)
    mask = jnp.concatenate([prompt_mask.astype(bool), response_mask.astype(bool)], axis=1)
    logits = forward(config, params, tokens, mask)[:, prompt.shape[1] - 1 : -1] / temperature
    logprobs = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), response[..., None], axis=-1)[..., 0]
    return jnp.where(response_mask, logprobs, 0.0)
