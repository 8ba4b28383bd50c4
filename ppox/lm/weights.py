"""Hugging Face model folders: config.json plus model.safetensors or shards listed in
model.safetensors.index.json, read into ppox.lm parameters and written back under the same names.

Every safetensors file is checked before a tensor is read (``ppox.tensorfile.check_header``); float32,
float16 and bfloat16 tensors are read (bfloat16 through ml_dtypes, which NumPy lacks). Nothing is executed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import ml_dtypes
import numpy as np

from ppox.errors import CheckpointError
from ppox.lm.config import LMConfig
from ppox.lm.models import init_params
from ppox.tensorfile import CHECKSUM, check_header, checksum

FILE_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64}
DTYPE_NAMES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}
# tensors some checkpoints carry that are not parameters (causal-mask and rotary buffers)
BUFFERS = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|rotary_emb\.inv_freq)$")
LLAMA_PARTS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
               "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def hf_name(config: LMConfig, path: tuple[str, ...]) -> tuple[str, bool]:
    """(Hugging Face tensor name, whether it is stored transposed) of the parameter at ``path``.

    Linear layers (torch's nn.Linear) store W^T; GPT-2's Conv1D layers and all embeddings store W."""
    *modules, leaf = path
    if modules == ["lm_head"]:
        return "lm_head.weight", True
    if not modules:  # an embedding
        return ("transformer." if config.family == "gpt2" else "model.") + f"{leaf}.weight", False
    block, tail = modules[0].rsplit("_", 1) if modules[0].startswith(("h_", "layers_")) else (modules[0], None)
    name = {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)
    if config.family == "gpt2":
        if tail is None:
            return f"transformer.{block}.{name}", False
        part = modules[1].replace("mlp_", "mlp.") if modules[1].startswith("mlp_") else (
            modules[1] if modules[1].startswith("ln_") else f"attn.{modules[1]}")
        return f"transformer.h.{tail}.{part}.{name}", False
    if tail is None:
        return f"model.{block}.{name}", False
    part = f"{LLAMA_PARTS[modules[1]]}.{modules[1]}" if modules[1] in LLAMA_PARTS else modules[1]
    return f"model.layers.{tail}.{part}.{name}", leaf == "kernel"


def weight_table(config: LMConfig) -> dict[tuple[str, ...], tuple[str, bool, tuple[int, ...]]]:
    """flax path -> (HF name, transposed, flax shape) for every parameter of ``config``."""
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    table = {}
    for keys, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        path = tuple(k.key for k in keys)
        table[path] = (*hf_name(config, path), tuple(leaf.shape))
    return table


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of one checked safetensors file, in the dtypes they are stored in."""
    entries, metadata = check_header(path, "model file")
    with open(path, "rb") as f:
        start = 8 + int.from_bytes(f.read(8), "little")
        data = np.memmap(f, dtype=np.uint8, mode="r")
        arrays = {}
        for name, entry in entries.items():
            if entry["dtype"] not in FILE_DTYPES:
                raise CheckpointError(f"{path}: tensor {name!r} is {entry['dtype']}; floating-point tensors expected")
            lo, hi = entry["data_offsets"]
            raw = np.array(data[start + lo:start + hi])
            arrays[name] = raw.view(FILE_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    if CHECKSUM in metadata and metadata[CHECKSUM] != checksum(arrays):
        raise CheckpointError(f"{path}: damaged (its tensors do not match the checksum written with them)")
    return arrays


def read_folder_tensors(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of a model folder: model.safetensors, or the shards its index names."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return read_safetensors(single)
    if not index.is_file():
        raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json (ppox reads "
                              "safetensors only; convert .bin checkpoints first)")
    weight_map = json.loads(index.read_text()).get("weight_map", {})
    arrays = {}
    for shard in sorted(set(weight_map.values())):
        if Path(shard).name != shard:
            raise CheckpointError(f"{index}: shard {shard!r} is not a file name in the folder")
        arrays.update(read_safetensors(folder / shard))
    missing = sorted(set(weight_map) - set(arrays))
    if missing:
        raise CheckpointError(f"{index}: tensors listed but not found in the shards: {missing[:3]}")
    return arrays


def params_from_tensors(config: LMConfig, tensors: dict[str, np.ndarray], dtype: str, where: str) -> dict:
    """The flax parameters of ``config`` from HF-named tensors, cast to ``dtype`` ("float32"/"bfloat16")."""
    by_name = {(n[len("transformer."):] if n.startswith("transformer.") else n): a for n, a in tensors.items()}
    params, used = {}, set()
    for path, (name, transposed, shape) in weight_table(config).items():
        key = name[len("transformer."):] if name.startswith("transformer.") else name
        if key not in by_name:
            raise CheckpointError(f"{where}: tensor {name!r} is missing")
        array = by_name[key].T if transposed else by_name[key]
        if array.shape != shape:
            raise CheckpointError(f"{where}: tensor {name!r} has shape {array.shape[::-1] if transposed else array.shape}"
                                  f", the config asks for {shape[::-1] if transposed else shape}")
        used.add(key)
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.asarray(array, DTYPE_NAMES[dtype])
    unknown = sorted(k for k in by_name if k not in used and not BUFFERS.search(k)
                     and not (config.tie_embeddings and k == "lm_head.weight"))
    if unknown:
        raise CheckpointError(f"{where}: tensors this {config.model_type} config does not describe: {unknown[:3]}")
    return params


def tensors_from_params(config: LMConfig, params: dict) -> dict[str, np.ndarray]:
    """HF-named tensors (in the parameters' dtype) of flax parameters: the inverse of ``params_from_tensors``."""
    tensors = {}
    for path, (name, transposed, _) in weight_table(config).items():
        node = params
        for part in path:
            node = node[part]
        array = np.asarray(node)
        tensors[name] = np.ascontiguousarray(array.T if transposed else array)
    return tensors
