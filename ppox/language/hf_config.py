"""config.json to ``LMConfig``: what each supported model_type's file says, read as transformers reads it.

GPT-2, and the Llama family: Llama 2/3, Qwen2/2.5, Qwen3, Mistral, Gemma 2 and Gemma 3 (text). Each value is
checked for type, sign and size (``ppox.language.config``'s readers); a setting ppox cannot reproduce exactly is
a one-line CheckpointError that names it.
"""

from __future__ import annotations

import math

from ppox.errors import CheckpointError
from ppox.language.config import (
    ACTIVATIONS,
    GEMMA_TYPES,
    LLAMA_TYPES,
    MAX_LAYERS,
    MAX_SIZE,
    LMConfig,
    flag,
    positive,
    shown,
    whole,
    word,
)


def from_hf(hf: dict, where: str = "config.json") -> LMConfig:
    """The LMConfig of a Hugging Face config.json (already parsed), or CheckpointError naming what is
    unsupported or malformed (a value of the wrong type or sign, more than MAX_LAYERS layers)."""
    if not isinstance(hf, dict):
        raise CheckpointError(f"{where}: not a JSON object")
    model_type = hf.get("model_type")
    if model_type == "gpt2":
        return _gpt2(hf, where)
    if isinstance(model_type, str) and model_type in LLAMA_TYPES:
        return _llama(hf, where)
    raise CheckpointError(
        f"{where}: model_type {shown(model_type)} is not supported "
        f"(ppox.lm reads gpt2, {', '.join(sorted(LLAMA_TYPES))})"
    )


def _gpt2(hf: dict, where: str) -> LMConfig:
    for name in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if flag(hf, name, where, False):
            raise CheckpointError(f"{where}: GPT-2 with {name}=true is not supported")
    if not flag(hf, "scale_attn_weights", where, True):
        raise CheckpointError(f"{where}: GPT-2 with scale_attn_weights=false is not supported")
    hidden, heads = whole(hf, "n_embd", where), whole(hf, "n_head", where)
    return _checked(
        LMConfig(
            family="gpt2",
            model_type="gpt2",
            vocab_size=whole(hf, "vocab_size", where),
            hidden_size=hidden,
            num_layers=whole(hf, "n_layer", where, most=MAX_LAYERS),
            num_heads=heads,
            num_kv_heads=heads,
            head_dim=hidden // heads,
            intermediate_size=whole(hf, "n_inner", where, 4 * hidden),
            max_positions=whole(hf, "n_positions", where),
            norm_eps=positive(hf, "layer_norm_epsilon", where, 1e-5, below=1.0),
            activation=word(hf, "activation_function", where, "gelu_new"),
            tie_embeddings=flag(hf, "tie_word_embeddings", where, True),
            qkv_bias=True,
            out_bias=True,
            mlp_bias=True,
        ),
        where,
    )


def _llama(hf: dict, where: str) -> LMConfig:
    model_type = hf["model_type"]
    if hf.get("pretraining_tp") not in (None, 1):
        raise CheckpointError(f"{where}: pretraining_tp != 1 is not supported")
    if flag(hf, "use_bidirectional_attention", where, False):
        raise CheckpointError(f"{where}: bidirectional attention (an embedding model, no causal LM) is not supported")
    hidden, heads = whole(hf, "hidden_size", where), whole(hf, "num_attention_heads", where)
    layers = whole(hf, "num_hidden_layers", where, most=MAX_LAYERS)
    gemma = model_type in GEMMA_TYPES
    (theta, scaling), local_theta = _rope(hf, where, model_type)
    attention_bias = flag(hf, "attention_bias", where, False)
    window, sliding = _sliding(hf, where, model_type, layers)
    act_key, act = ("hidden_activation", "gelu_pytorch_tanh") if gemma else ("hidden_act", "silu")
    activation = word(hf, act_key, where, act)
    return _checked(
        LMConfig(
            family="llama",
            model_type=model_type,
            vocab_size=whole(hf, "vocab_size", where),
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=whole(hf, "num_key_value_heads", where, heads),
            head_dim=whole(hf, "head_dim", where, max(hidden // heads, 1)),
            intermediate_size=whole(hf, "intermediate_size", where),
            max_positions=whole(hf, "max_position_embeddings", where, 2048),
            norm_eps=positive(hf, "rms_norm_eps", where, 1e-6, below=1.0),
            activation=activation,
            tie_embeddings=flag(hf, "tie_word_embeddings", where, gemma),
            qkv_bias=LLAMA_TYPES[model_type] or attention_bias,
            out_bias=attention_bias,
            mlp_bias=flag(hf, "mlp_bias", where, False),
            rope_theta=theta,
            rope_scaling=scaling,
            qk_norm=model_type in ("qwen3", "gemma3_text"),
            sliding_window=window,
            sliding_layers=sliding,
            local_rope_theta=local_theta,
            gemma=gemma,
            query_scalar=positive(hf, "query_pre_attn_scalar", where, 256.0) if gemma else 0.0,
            attn_softcap=_softcap(hf, "attn_logit_softcapping", where, 50.0 if model_type == "gemma2" else 0.0),
            final_softcap=_softcap(hf, "final_logit_softcapping", where, 30.0 if model_type == "gemma2" else 0.0),
        ),
        where,
    )


def _softcap(hf: dict, key: str, where: str, default: float) -> float:
    """A softcap: ``default`` (transformers' for the model type) where absent, 0 (none) where null."""
    if key not in hf:
        return default
    return positive(hf, key, where, 0.0)


def _sliding(hf: dict, where: str, model_type: str, layers: int) -> tuple[int, tuple]:
    """(window, per-layer sliding flags) as transformers reads them: Mistral windows every layer when
    sliding_window is set; Qwen2/3 only with use_sliding_window, from layer max_window_layers on; Gemma 2
    every other layer from the first, Gemma 3 five in six (sliding_window_pattern); layer_types, where given,
    says which layers slide."""
    if model_type == "llama":
        return 0, ()
    window = whole(hf, "sliding_window", where, 4096 if model_type in GEMMA_TYPES else 0)
    if model_type in ("qwen2", "qwen3") and not flag(hf, "use_sliding_window", where, False):
        window = 0
    if not window:
        return 0, ()
    if model_type == "mistral":  # (transformers' Mistral ignores layer_types)
        return window, (True,) * layers
    types = hf.get("layer_types")
    if types is None:
        if model_type in GEMMA_TYPES:
            pattern = 2 if model_type == "gemma2" else whole(hf, "sliding_window_pattern", where, 6)
            types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
        else:
            start = whole(hf, "max_window_layers", where, 28)
            types = ["sliding_attention" if i >= start else "full_attention" for i in range(layers)]
    kinds = ("sliding_attention", "full_attention")
    if not (isinstance(types, list) and len(types) == layers and all(t in kinds for t in types)):
        raise CheckpointError(f"{where}: layer_types must list {layers} of {' or '.join(kinds)}")
    return window, tuple(t == "sliding_attention" for t in types)


def _rope(hf: dict, where: str, model_type: str = "llama") -> tuple[tuple[float, tuple], float]:
    """((theta, scaling), the sliding layers' theta or 0) from transformers 5's rope_parameters (for Gemma 3,
    one entry per layer type) or the older rope_theta + rope_scaling (+ rope_local_base_freq)."""
    params: dict = {}
    for key in ("rope_scaling", "rope_parameters"):
        if not isinstance(hf.get(key) or {}, dict):
            raise CheckpointError(f"{where}: {key} is {shown(hf[key])}: it must be a JSON object or null")
        params.update(hf.get(key) or {})
    if model_type != "gemma3_text":
        return _rope_entry(params, where, positive(hf, "rope_theta", where, 10000.0)), 0.0
    full, local = params.get("full_attention"), params.get("sliding_attention")
    if full is None and local is None:  # the older form: scaling for the global layers only
        full, local = params, {}
    if not (isinstance(full, dict) and isinstance(local, dict)):
        raise CheckpointError(f"{where}: rope_parameters' full_attention and sliding_attention must be objects")
    local_theta, local_scaling = _rope_entry(local, where, positive(hf, "rope_local_base_freq", where, 10000.0))
    if local_scaling:
        raise CheckpointError(f"{where}: rotary scaling on Gemma 3's sliding layers is not supported")
    return _rope_entry(full, where, positive(hf, "rope_theta", where, 1_000_000.0)), local_theta


def _rope_entry(params: dict, where: str, default_theta: float) -> tuple[float, tuple]:
    """(theta, scaling) of one rope_parameters object: default, linear or llama3."""
    theta = positive(params, "rope_theta", where, default_theta)
    kind = word(params, "rope_type", where, word(params, "type", where, "default"))
    if kind == "default":
        return theta, ()
    if kind == "linear":
        return theta, ("linear", positive(params, "factor", where, 1.0))
    if kind == "llama3":
        keys = ("factor", "low_freq_factor", "high_freq_factor")
        factors = tuple(positive(params, k, where, math.nan) for k in keys)
        length = whole(params, "original_max_position_embeddings", where + " rope_parameters")
        if any(math.isnan(f) for f in factors):
            raise CheckpointError(f"{where}: llama3 rope_parameters need {', '.join(keys)}")
        return theta, ("llama3", *factors, float(length))
    raise CheckpointError(f"{where}: rope_type {kind!r} is not supported (default, linear and llama3 are)")


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
    if config.num_heads * config.head_dim > MAX_SIZE:
        raise CheckpointError(f"{where}: {config.num_heads} heads of {config.head_dim} exceed {MAX_SIZE} features")
    return config
