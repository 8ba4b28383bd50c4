"""What ppox needs to know of a Hugging Face language model, read from its config.json.

Two families: ``gpt2`` (learned positions, LayerNorm with bias, fused qkv, GELU MLP) and ``llama``
(Llama 2/3, Qwen2/2.5, Qwen3, Mistral, Gemma 2/3 and their kin: rotary positions, RMSNorm, grouped-query
attention, gated MLP, optional qkv bias; Qwen3's and Gemma 3's per-head q/k norms, sliding-window layers,
and Gemma's (1 + w) norms, sandwich norms, embedding scale, query scalar and logit softcaps as flags).
A configuration ppox cannot reproduce exactly is refused with a message, never approximated; so is a
value of the wrong type, sign or size (at most MAX_LAYERS layers, MAX_SIZE for any dimension), before
anything is built (``ppox.language.hf_config`` reads config.json with the readers here). ``check_memory``
compares what a setting needs with the machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import jax

from ppox.errors import CheckpointError, ConfigError

# model_type -> q/k/v projections have a bias (whatever attention_bias says)
LLAMA_TYPES = {"llama": False, "qwen2": True, "qwen3": False, "mistral": False, "gemma2": False, "gemma3_text": False}
GEMMA_TYPES = ("gemma2", "gemma3_text")
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu", "relu", "silu", "swish")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """The shape and numerics of one model (hashable: it is a static argument of compiled functions)."""

    family: str  # "gpt2" or "llama"
    model_type: str  # the config's model_type: gpt2, llama, qwen2
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_positions: int
    norm_eps: float
    activation: str
    tie_embeddings: bool
    qkv_bias: bool = False
    out_bias: bool = False  # Llama's attention_bias also puts a bias on o_proj
    mlp_bias: bool = False
    rope_theta: float = 10000.0
    rope_scaling: tuple = ()  # ("llama3", factor, low_freq_factor, high_freq_factor, original_max_positions)
    # or ("linear", factor)
    qk_norm: bool = False  # RMSNorm over each head's query and key before the rotation (Qwen3, Gemma 3)
    sliding_window: int = 0  # a query in slot t sees slots > t - window on the sliding layers (0: none)
    sliding_layers: tuple = ()  # per layer: True where attention is windowed (empty: none is)
    local_rope_theta: float = 0.0  # the sliding layers' rotary base, unscaled (Gemma 3; 0: as the others)
    gemma: bool = False  # (1 + w) RMSNorm, embeddings scaled by sqrt(hidden), sandwich norms around attn and MLP
    query_scalar: float = 0.0  # scores are q k / sqrt(query_scalar) (Gemma's query_pre_attn_scalar; 0: head_dim)
    attn_softcap: float = 0.0  # scores -> c tanh(scores / c) before the mask (Gemma 2; 0: none)
    final_softcap: float = 0.0  # logits -> c tanh(logits / c) (Gemma 2; 0: none)

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 = multi-head attention, > 1 = grouped-query attention)."""
        return self.num_heads // self.num_kv_heads


MAX_LAYERS = 1024  # the layers are unrolled in every compiled program; the largest published models have ~130
MAX_SIZE = 2**31 - 1  # any one dimension (vocabulary, width, heads, positions): int32 indexes it
MAX_JSON_BYTES = 1 << 30  # a model folder's JSON files (tokenizer.json is the largest: tens of MB)
MISSING = object()


def shown(value: Any) -> str:
    """``value`` for a one-line message: its repr, cut to 40 characters (a 5000-digit integer has no repr)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_json(path: Path) -> Any:
    """The JSON value in a model folder's file; CheckpointError (one line) when it is not a regular file (a
    FIFO would block), is over MAX_JSON_BYTES, or is not JSON (bad UTF-8, nesting too deep, an integer of
    more than 4300 digits)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise CheckpointError(f"{path}: not a regular file")
        if path.stat().st_size > MAX_JSON_BYTES:
            raise CheckpointError(
                f"{path}: {path.stat().st_size:,} bytes, more than a JSON file of a model folder holds"
            )
        return json.loads(path.read_bytes())
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    except (ValueError, RecursionError) as err:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise CheckpointError(f"{path}: not readable JSON ({str(err).splitlines()[0][:120]})") from None


def whole(hf: dict, key: str, where: str, default: Any = MISSING, most: int = MAX_SIZE) -> int:
    """``hf[key]``, a whole number in [1, ``most``]; ``default`` where it is absent or null (none: an error)."""
    value = hf.get(key)
    if value is None:
        if default is MISSING:
            raise CheckpointError(f"{where}: config.json has no {key!r}")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise CheckpointError(f"{where}: {key} is {shown(value)}: it must be a whole number from 1 to {most}")
    return value


def positive(hf: dict, key: str, where: str, default: float, below: float = math.inf) -> float:
    """``hf[key]``, a finite number in (0, ``below``); ``default`` where it is absent or null."""
    value = hf.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < below:
        limit = "" if below == math.inf else f" and below {below:g}"
        raise CheckpointError(f"{where}: {key} is {shown(value)}: it must be a finite number above 0{limit}")
    return float(value)


def flag(hf: dict, key: str, where: str, default: bool) -> bool:
    """``hf[key]``, true or false; ``default`` where it is absent or null."""
    value = hf.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise CheckpointError(f"{where}: {key} is {shown(value)}: it must be true or false")
    return value


def word(hf: dict, key: str, where: str, default: str) -> str:
    """``hf[key]``, a string; ``default`` where it is absent or null."""
    value = hf.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise CheckpointError(f"{where}: {key} is {shown(value)}: it must be a string")
    return value


def parameter_count(config: LMConfig) -> int:
    """Number of parameters of a model of this configuration (tied embeddings counted once)."""
    d, f, v = config.hidden_size, config.intermediate_size, config.vocab_size
    q, kv = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
    if config.family == "gpt2":
        layer = 2 * 2 * d + d * 3 * d + 3 * d + d * d + d + d * f + f + f * d + d
        return (
            v * d
            + config.max_positions * d
            + config.num_layers * layer
            + 2 * d
            + (0 if config.tie_embeddings else v * d)
        )
    attention = d * (q + 2 * kv) + q * d + (q + 2 * kv if config.qkv_bias else 0) + (d if config.out_bias else 0)
    attention += 2 * config.head_dim if config.qk_norm else 0
    mlp = 3 * d * f + (2 * f + d if config.mlp_bias else 0)
    norms = (4 if config.gemma else 2) * d
    return v * d + config.num_layers * (attention + mlp + norms) + d + (0 if config.tie_embeddings else v * d)


def machine_memory() -> int:
    """Bytes the default device can hold: an accelerator's allocator limit, else the host's memory (or the
    limit of its cgroup, where lower)."""
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = ""
    return min(total, int(limit)) if limit.isdigit() else total


def check_memory(needed: float, what: str, change: str, error: type[Exception] = ConfigError) -> None:
    """Refuse (``error``, one line) what needs more than ``machine_memory()``: ``what`` says what needs it,
    ``change`` what to change. Estimates are lower bounds (the arrays that must exist at once)."""
    limit = machine_memory()
    if needed > limit:
        raise error(
            f"{what} need about {needed / 2**30:,.1f} GiB, more than this machine's {limit / 2**30:,.1f} GiB: {change}"
        )
