"""Load a language model from a local Hugging Face model folder and save it back in the same form.

A folder is config.json, model.safetensors (or model.safetensors.index.json and its shards) and, for
text, tokenizer.json. What ``save`` writes loads in transformers (``AutoModelForCausalLM``) as well as here.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np

from ppox.errors import CheckpointError, ConfigError
from ppox.language.config import LMConfig, from_hf, to_hf
from ppox.language.models import params_dtype
from ppox.language.weights import DTYPE_NAMES, params_from_tensors, read_folder_tensors, tensors_from_params
from ppox.utils.files import atomic_write_text
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
        an end-of-turn id there), else config.json's."""
        eos = self.generation_config.get("eos_token_id", self.hf_config.get("eos_token_id"))
        return tuple(int(i) for i in eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))


def read_config(folder: Path) -> tuple[LMConfig, dict]:
    """(LMConfig, the parsed config.json) of a model folder."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a model folder (no config.json)")
    try:
        hf = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(hf, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return from_hf(hf, str(path)), hf


def load(folder: Path, dtype: str = "float32") -> LanguageModel:
    """The model in ``folder``, its parameters as ``dtype`` ("float32" or "bfloat16") arrays on JAX's
    default device (put there once, not at every compiled call)."""
    if dtype not in DTYPE_NAMES:
        raise ConfigError(f"dtype {dtype!r}: use one of {', '.join(DTYPE_NAMES)}")
    folder = Path(folder)
    config, hf = read_config(folder)
    params = jax.device_put(params_from_tensors(config, read_folder_tensors(folder), dtype, str(folder)))
    generation = folder / "generation_config.json"
    try:
        generation_config = json.loads(generation.read_text()) if generation.is_file() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{generation}: not readable JSON ({err})") from None
    return LanguageModel(config, params, hf, generation_config if isinstance(generation_config, dict) else {})


def save(
    folder: Path, model: LanguageModel, max_shard_bytes: int | None = None, tokenizer_from: Path | None = None
) -> None:
    """Write ``model`` as a Hugging Face folder: config.json, generation_config.json (if the model has one)
    and model.safetensors, or shards of at most ``max_shard_bytes`` each with model.safetensors.index.json;
    tensors in the parameters' dtype. The tokenizer files of ``tokenizer_from`` (a model folder) are copied
    beside them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = tensors_from_params(model.config, model.params)
    dtype = {np.dtype(v): k for k, v in DTYPE_NAMES.items()}.get(np.dtype(params_dtype(model.params)))
    if dtype is None:
        raise CheckpointError(f"parameters in {params_dtype(model.params)}: save float32 or bfloat16 ones")
    shards = _shards(tensors, max_shard_bytes)
    for stale in [
        *folder.glob("model-*-of-*.safetensors"),
        folder / "model.safetensors.index.json",
        folder / "model.safetensors",
    ]:
        stale.unlink(missing_ok=True)
    if len(shards) == 1:
        write(folder / "model.safetensors", tensors, {"format": "pt"})
    else:
        weight_map = {}
        for i, names in enumerate(shards):
            file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write(folder / file, {n: tensors[n] for n in names}, {"format": "pt"})
            weight_map.update({n: file for n in names})
        index = {"metadata": {"total_size": sum(a.nbytes for a in tensors.values())}, "weight_map": weight_map}
        atomic_write_text(folder / "model.safetensors.index.json", json.dumps(index, indent=2))
    # a model made here names no special tokens: say so, or transformers fills in its class defaults
    hf = {"bos_token_id": None, "eos_token_id": None, **model.hf_config, **to_hf(model.config), "dtype": dtype}
    hf.pop("torch_dtype", None)
    atomic_write_text(folder / "config.json", json.dumps(hf, indent=2, sort_keys=True))
    if model.generation_config:
        atomic_write_text(folder / "generation_config.json", json.dumps(model.generation_config, indent=2))
    if tokenizer_from is not None:
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_from) / name).is_file() and Path(tokenizer_from).resolve() != folder.resolve():
                shutil.copyfile(Path(tokenizer_from) / name, folder / name)


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
