"""Load a language model from a local Hugging Face model folder and save it back in the same form.

A folder is config.json, model.safetensors (or model.safetensors.index.json and its shards) and, for
text, tokenizer.json. What ``save`` writes loads in transformers (``AutoModelForCausalLM``) as well as here.
Before any tensor is read, the config is checked (types, signs, sizes), the memory its parameters need is
compared with the machine's, and the files' headers are checked to hold every tensor the config needs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ppox.errors import CheckpointError, ConfigError
from ppox.language.config import LMConfig, check_memory, parameter_count, read_json, shown
from ppox.language.hf_config import from_hf
from ppox.language.models import params_dtype
from ppox.language.weights import (
    DTYPE_NAMES,
    SHARD_NAME,
    params_from_tensors,
    read_folder_tensors,
    tensors_from_params,
)
from ppox.utils.files import atomic_write_bytes, atomic_write_text
from ppox.utils.tensorfile import write

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclasses.dataclass(frozen=True)
class LanguageModel:
    """A model's configuration, its parameters (a flax pytree), and the config.json and
    generation_config.json (empty if absent) it came from."""

    config: LMConfig
    params: dict
    hf_config: dict
    generation_config: dict = dataclasses.field(default_factory=dict)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        """The end-of-sequence token ids: generation_config.json's if it names any (chat models often add
        an end-of-turn id there), else config.json's (both checked by ``load``)."""
        eos = self.generation_config.get("eos_token_id", self.hf_config.get("eos_token_id"))
        return tuple(int(i) for i in eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))


def pad_id(model: LanguageModel) -> int:
    """config.json's pad_token_id, else the smallest id that is no end token (GPT-2 has no pad token; the
    mask keeps padding out of every computation, so any other id serves)."""
    pad = model.hf_config.get("pad_token_id")
    return int(pad) if pad is not None else next(i for i in range(len(model.eos_ids) + 1) if i not in model.eos_ids)


def read_config(folder: Path) -> tuple[LMConfig, dict]:
    """(LMConfig, the parsed config.json) of a model folder; CheckpointError (one line) for a folder without
    one, a file that is not a JSON object, or values of the wrong type, sign or size."""
    path = Path(folder) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{folder}: not a model folder (no config.json)")
    hf = read_json(path)
    return from_hf(hf, str(path)), hf


def check_token_ids(hf: dict, vocab: int, where: str) -> None:
    """eos_token_id (a token id or a list of them) and pad_token_id (a token id) are ids of the vocabulary,
    or null; CheckpointError naming the entry otherwise."""
    for key in ("eos_token_id", "pad_token_id"):
        value = hf.get(key)
        ids = value if key == "eos_token_id" and isinstance(value, list) else [value]
        if value is not None and not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab for i in ids
        ):
            kind = "a token id or a list of them" if key == "eos_token_id" else "a token id"
            raise CheckpointError(f"{where}: {key} is {shown(value)}: it must be {kind} (0 to {vocab - 1}) or null")


def load(folder: Path, dtype: str = "float32") -> LanguageModel:
    """The model in ``folder``, its parameters as ``dtype`` ("float32" or "bfloat16") arrays on JAX's
    default device (put there once, not at every compiled call). Refused before anything is read when
    its parameters (as read, then cast) need more memory than the machine has."""
    if dtype not in DTYPE_NAMES:
        raise ConfigError(f"dtype {dtype!r}: use one of {', '.join(DTYPE_NAMES)}")
    folder = Path(folder)
    config, hf = read_config(folder)
    check_token_ids(hf, config.vocab_size, str(folder / "config.json"))
    generation = folder / "generation_config.json"
    generation_config = read_json(generation) if generation.exists() else {}
    if not isinstance(generation_config, dict):
        raise CheckpointError(f"{generation}: not a JSON object")
    check_token_ids(generation_config, config.vocab_size, str(generation))
    count = parameter_count(config)
    check_memory(  # (the tensors as read, 2 bytes each at least, and the parameters)
        count * (np.dtype(DTYPE_NAMES[dtype]).itemsize + 2),
        f"{folder}: its {count:,} parameters (as read, then as {dtype})",
        "load a smaller model",
        CheckpointError,
    )
    tensors = read_folder_tensors(folder, config)
    params = jax.device_put(params_from_tensors(config, tensors, dtype, str(folder)))
    return LanguageModel(config, params, hf, generation_config)


def save(
    folder: Path, model: LanguageModel, max_shard_bytes: int | None = None, tokenizer_from: Path | None = None
) -> None:
    """Write ``model`` as a Hugging Face folder: config.json, generation_config.json (if the model has one)
    and model.safetensors, or shards of at most ``max_shard_bytes`` each with model.safetensors.index.json;
    tensors in the parameters' dtype. The tokenizer files of ``tokenizer_from`` (a model folder) are copied
    beside them.

    Every file is written beside the old one and renamed over it; files of an older layout are removed only
    after the new ones are in place, so that a folder interrupted while saving still holds a whole model."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = tensors_from_params(model.config, model.params)
    dtype = {np.dtype(v): k for k, v in DTYPE_NAMES.items()}.get(np.dtype(params_dtype(model.params)))
    if dtype is None:
        raise CheckpointError(f"parameters in {params_dtype(model.params)}: save float32 or bfloat16 ones")
    written = _write_tensors(folder, tensors, _shards(tensors, max_shard_bytes))
    # a model made here names no special tokens: say so, or transformers fills in its class defaults
    hf = {"bos_token_id": None, "eos_token_id": None, **model.hf_config, **to_hf(model.config), "dtype": dtype}
    hf.pop("torch_dtype", None)
    atomic_write_text(folder / "config.json", json.dumps(hf, indent=2, sort_keys=True))
    for stale in folder.glob("model-*-of-*.safetensors"):
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    if model.generation_config:
        atomic_write_text(folder / "generation_config.json", json.dumps(model.generation_config, indent=2))
    if tokenizer_from is not None and Path(tokenizer_from).resolve() != folder.resolve():
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_from) / name).is_file():
                atomic_write_bytes(folder / name, (Path(tokenizer_from) / name).read_bytes())


def _write_tensors(folder: Path, tensors: dict[str, np.ndarray], shards: list[list[str]]) -> set[str]:
    """model.safetensors, or the shards and then their index, each renamed over the old file; then the file
    of the other layout, which a reader would otherwise take (model.safetensors first), goes. Returns the
    names written."""
    if len(shards) == 1:
        write(folder / "model.safetensors", tensors, {"format": "pt"})
        (folder / "model.safetensors.index.json").unlink(missing_ok=True)
        return {"model.safetensors"}
    weight_map = {}
    for i, names in enumerate(shards):
        file = SHARD_NAME.format(i + 1, len(shards))
        write(folder / file, {n: tensors[n] for n in names}, {"format": "pt"})
        weight_map.update({n: file for n in names})
    index = {"metadata": {"total_size": sum(a.nbytes for a in tensors.values())}, "weight_map": weight_map}
    atomic_write_text(folder / "model.safetensors.index.json", json.dumps(index, indent=2))
    (folder / "model.safetensors").unlink(missing_ok=True)
    return set(weight_map.values())


def _shards(tensors: dict[str, np.ndarray], max_bytes: int | None) -> list[list[str]]:
    """Tensor names grouped, in order, into shards of at most ``max_bytes`` (a larger tensor alone)."""
    if max_bytes is None:
        return [list(tensors)]
    shards: list[list[str]] = [[]]
    size = 0
    for name, array in tensors.items():
        if shards[-1] and size + array.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += array.nbytes
    return shards


def to_hf(config: LMConfig) -> dict[str, Any]:
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
    entries = {
        "model_type": config.model_type,
        "architectures": [ARCHITECTURES[config.model_type]],
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_positions,
        "rms_norm_eps": config.norm_eps,
        "hidden_activation" if config.gemma else "hidden_act": config.activation,
        "tie_word_embeddings": config.tie_embeddings,
        "rope_parameters": rope_entries(config),
        "mlp_bias": config.mlp_bias,
        **sliding_entries(config),
    }
    if config.model_type != "qwen2":
        entries["attention_bias"] = config.qkv_bias
    if config.gemma:
        scalar = config.query_scalar  # (an int where it is whole: transformers' config class checks the type)
        entries["query_pre_attn_scalar"] = int(scalar) if scalar.is_integer() else scalar
        entries["attn_logit_softcapping"] = config.attn_softcap or None
        entries["final_logit_softcapping"] = config.final_softcap or None
    return entries


ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "mistral": "MistralForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
}


def rope_entries(config: LMConfig) -> dict[str, Any]:
    """config.json's rope_parameters (transformers 5's form; Gemma 3's has one entry per layer type)."""
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": config.rope_theta}
    if config.rope_scaling and config.rope_scaling[0] == "linear":
        rope = {"rope_type": "linear", "factor": config.rope_scaling[1], "rope_theta": config.rope_theta}
    elif config.rope_scaling:
        keys = ("rope_type", "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        rope = {**dict(zip(keys, config.rope_scaling)), "rope_theta": config.rope_theta}
        rope["original_max_position_embeddings"] = int(rope["original_max_position_embeddings"])
    if config.model_type != "gemma3_text":
        return rope
    local = {"rope_type": "default", "rope_theta": config.local_rope_theta or config.rope_theta}
    return {"full_attention": rope, "sliding_attention": local}


def sliding_entries(config: LMConfig) -> dict[str, Any]:
    """config.json's sliding_window (null: none), layer_types and, for Qwen, use_sliding_window."""
    if config.model_type == "llama":
        return {}
    window = config.sliding_window or None
    sliding = config.sliding_layers or (False,) * config.num_layers
    types = ["sliding_attention" if s else "full_attention" for s in sliding]
    entries: dict[str, Any] = {"sliding_window": window}
    if config.model_type in ("qwen2", "qwen3"):
        entries["use_sliding_window"] = window is not None
    if config.model_type != "mistral":
        entries["layer_types"] = types
    return entries
