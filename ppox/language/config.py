"""What ppox needs to know of a Hugging Face language model, read from its config.json.

Two families: ``gpt2`` (learned positions, LayerNorm with bias, fused qkv, GELU MLP) and ``llama``
(Llama 2/3, Qwen2/2.5 and their kin: rotary positions, RMSNorm, grouped-query attention, gated SiLU MLP,
optional qkv bias). A configuration ppox cannot reproduce exactly is refused with a message, never
approximated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ppox.errors import CheckpointError

LLAMA_TYPES = {"llama": False, "qwen2": True}  # model_type -> q/k/v projections have a bias
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

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 = multi-head attention, > 1 = grouped-query attention)."""
        return self.num_heads // self.num_kv_heads


def _get(hf: dict, key: str, where: str):
    if key not in hf or hf[key] is None:
        raise CheckpointError(f"{where}: config.json has no {key!r}")
    return hf[key]


def from_hf(hf: dict, where: str = "config.json") -> LMConfig:
    """The LMConfig of a Hugging Face config.json (already parsed), or CheckpointError naming what is unsupported."""
    model_type = hf.get("model_type")
    if model_type == "gpt2":
        return _gpt2(hf, where)
    if model_type in LLAMA_TYPES:
        return _llama(hf, where)
    raise CheckpointError(
        f"{where}: model_type {model_type!r} is not supported (ppox.lm reads gpt2, {', '.join(sorted(LLAMA_TYPES))})"
    )


def _gpt2(hf: dict, where: str) -> LMConfig:
    for flag in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if hf.get(flag):
            raise CheckpointError(f"{where}: GPT-2 with {flag}=true is not supported")
    if hf.get("scale_attn_weights") is False:
        raise CheckpointError(f"{where}: GPT-2 with scale_attn_weights=false is not supported")
    hidden, heads = _get(hf, "n_embd", where), _get(hf, "n_head", where)
    return _checked(
        LMConfig(
            family="gpt2",
            model_type="gpt2",
            vocab_size=_get(hf, "vocab_size", where),
            hidden_size=hidden,
            num_layers=_get(hf, "n_layer", where),
            num_heads=heads,
            num_kv_heads=heads,
            head_dim=hidden // heads,
            intermediate_size=hf.get("n_inner") or 4 * hidden,
            max_positions=_get(hf, "n_positions", where),
            norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
            activation=hf.get("activation_function", "gelu_new"),
            tie_embeddings=hf.get("tie_word_embeddings", True),
            qkv_bias=True,
            out_bias=True,
            mlp_bias=True,
        ),
        where,
    )


def _llama(hf: dict, where: str) -> LMConfig:
    model_type = hf["model_type"]
    if hf.get("use_sliding_window"):
        raise CheckpointError(f"{where}: sliding-window attention is not supported")
    if hf.get("pretraining_tp", 1) not in (None, 1):
        raise CheckpointError(f"{where}: pretraining_tp != 1 is not supported")
    hidden, heads = _get(hf, "hidden_size", where), _get(hf, "num_attention_heads", where)
    theta, scaling = _rope(hf, where)
    attention_bias = bool(hf.get("attention_bias", False))
    return _checked(
        LMConfig(
            family="llama",
            model_type=model_type,
            vocab_size=_get(hf, "vocab_size", where),
            hidden_size=hidden,
            num_layers=_get(hf, "num_hidden_layers", where),
            num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim") or hidden // heads,
            intermediate_size=_get(hf, "intermediate_size", where),
            max_positions=hf.get("max_position_embeddings", 2048),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            activation=hf.get("hidden_act", "silu"),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=LLAMA_TYPES[model_type] or attention_bias,
            out_bias=attention_bias,
            mlp_bias=bool(hf.get("mlp_bias", False)),
            rope_theta=theta,
            rope_scaling=scaling,
        ),
        where,
    )


def _rope(hf: dict, where: str) -> tuple[float, tuple]:
    """(theta, scaling) from transformers 5's rope_parameters or the older rope_theta + rope_scaling."""
    params = dict(hf.get("rope_scaling") or {})
    params.update(hf.get("rope_parameters") or {})
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, ()
    if kind == "llama3":
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        return theta, ("llama3", *(float(_get(params, k, where + " rope_parameters")) for k in keys))
    raise CheckpointError(f"{where}: rope_type {kind!r} is not supported (default and llama3 are)")


def _checked(config: LMConfig, where: str) -> LMConfig:
    if config.activation not in ACTIVATIONS:
        raise CheckpointError(f"{where}: activation {config.activation!r} is not supported ({', '.join(ACTIVATIONS)})")
    if config.num_heads % config.num_kv_heads:
        raise CheckpointError(
            f"{where}: {config.num_heads} attention heads do not divide into {config.num_kv_heads} key/value heads"
        )
    if config.family == "gpt2" and config.hidden_size % config.num_heads:
        raise CheckpointError(
            f"{where}: hidden size {config.hidden_size} is not a multiple of {config.num_heads} heads"
        )
    if config.family == "llama" and config.head_dim % 2:
        raise CheckpointError(f"{where}: rotary positions need an even head_dim, not {config.head_dim}")
    return config


def to_hf(config: LMConfig) -> dict:
    """The config.json entries that describe ``config`` (merged over the original file when saving)."""
    if config.family == "gpt2":
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": config.vocab_size,
            "n_embd": config.hidden_size,
            "n_layer": config.num_layers,
            "n_head": config.num_heads,
            "n_inner": config.intermediate_size,
            "n_positions": config.max_positions,
            "layer_norm_epsilon": config.norm_eps,
            "activation_function": config.activation,
            "tie_word_embeddings": config.tie_embeddings,
        }
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": config.rope_theta}
    if config.rope_scaling:
        keys = ("rope_type", "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        rope = {**dict(zip(keys, config.rope_scaling)), "rope_theta": config.rope_theta}
        rope["original_max_position_embeddings"] = int(rope["original_max_position_embeddings"])
    architecture = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
    entries = {
        "model_type": config.model_type,
        "architectures": [architecture[config.model_type]],
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_positions,
        "rms_norm_eps": config.norm_eps,
        "hidden_act": config.activation,
        "tie_word_embeddings": config.tie_embeddings,
        "rope_parameters": rope,
        "mlp_bias": config.mlp_bias,
    }
    if config.model_type != "qwen2":
        entries["attention_bias"] = config.qkv_bias
    return entries


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
    mlp = 3 * d * f + (2 * f + d if config.mlp_bias else 0)
    return v * d + config.num_layers * (attention + mlp + 2 * d) + d + (0 if config.tie_embeddings else v * d)


def rope_frequencies(config: LMConfig):
    """Inverse frequencies of the rotary embedding, theta^(-2i/d) for i < d/2, with Llama 3's rescaling.

    Llama 3: wavelengths 2 pi / f longer than L / low_freq_factor are divided by ``factor``, shorter than
    L / high_freq_factor are kept, and in between blend linearly in s = (L / wavelength - low) / (high - low),
    with L the original context length."""
    d = config.head_dim
    freqs = [config.rope_theta ** (-2 * i / d) for i in range(d // 2)]
    if not config.rope_scaling:
        return freqs
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
