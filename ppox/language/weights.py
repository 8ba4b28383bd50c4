"""Hugging Face model folders: config.json plus model.safetensors or shards listed in
model.safetensors.index.json, read into ppox.language parameters and written back under the same names.

Every safetensors file is checked before a tensor is read (``ppox.utils.tensorfile.check_header``); float32,
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
from ppox.language.config import LMConfig
from ppox.language.models import init_params
from ppox.utils.tensorfile import CHECKSUM, check_header, checksum

FILE_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F64": np.float64,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
DTYPE_NAMES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}
# tensors some checkpoints carry that are not parameters (causal-mask and rotary buffers)
BUFFERS = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|rotary_emb\.inv_freq)$")
# a block's modules (flax name -> Hugging Face name inside the block)
GPT2_BLOCK = {
    "ln_1": "ln_1",
    "c_attn": "attn.c_attn",
    "c_proj": "attn.c_proj",
    "ln_2": "ln_2",
    "mlp_c_fc": "mlp.c_fc",
    "mlp_c_proj": "mlp.c_proj",
}
LLAMA_BLOCK = {
    "input_layernorm": "input_layernorm",
    "post_attention_layernorm": "post_attention_layernorm",
    **{p: f"self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")},
    **{p: f"mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj")},
}


def hf_name(config: LMConfig, path: tuple[str, ...]) -> tuple[str, bool]:
    """(Hugging Face tensor name, whether it is stored transposed) of the parameter at ``path``.

    torch's nn.Linear stores W^T (Llama's projections, every lm_head); GPT-2's Conv1D layers, embeddings
    and norms store the array as flax holds it."""
    *modules, leaf = path
    gpt2 = config.family == "gpt2"
    root = "transformer." if gpt2 else "model."
    name = "bias" if leaf == "bias" else "weight"
    if modules == ["lm_head"]:
        return "lm_head.weight", True
    if not modules:  # an embedding: wte, wpe, embed_tokens
        return f"{root}{leaf}.weight", False
    if len(modules) == 1:  # the final norm: ln_f, norm
        return f"{root}{modules[0]}.{name}", False
    index = modules[0].rsplit("_", 1)[1]  # h_3, layers_3
    part = (GPT2_BLOCK if gpt2 else LLAMA_BLOCK)[modules[1]]
    return f"{root}{'h' if gpt2 else 'layers'}.{index}.{part}.{name}", leaf == "kernel" and not gpt2


def weight_table(config: LMConfig) -> dict[tuple[str, ...], tuple[str, bool, tuple[int, ...]]]:
    """flax path -> (HF name, transposed, flax shape) for every parameter of ``config``."""
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    table = {}
    for keys, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        path = tuple(k.key for k in keys)
        table[path] = (*hf_name(config, path), tuple(leaf.shape))
    return table


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of one checked safetensors file, in the dtypes they are stored in (floating point, or
    integer and bool for the buffers some checkpoints carry)."""
    entries, metadata = check_header(path, "model file")
    with open(path, "rb") as f:
        start = 8 + int.from_bytes(f.read(8), "little")
        data = np.memmap(f, dtype=np.uint8, mode="r")
        arrays = {}
        for name, entry in entries.items():
            if entry["dtype"] not in FILE_DTYPES:
                raise CheckpointError(f"{path}: tensor {name!r} is {entry['dtype']}, which ppox does not read")
            lo, hi = entry["data_offsets"]
            raw = np.array(data[start + lo : start + hi])
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
        raise CheckpointError(
            f"{folder}: no model.safetensors or model.safetensors.index.json (ppox reads "
            "safetensors only; convert .bin checkpoints first)"
        )
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
    by_name = {(n[len("transformer.") :] if n.startswith("transformer.") else n): a for n, a in tensors.items()}
    params: dict = {}
    used: set[str] = set()
    for path, (name, transposed, shape) in weight_table(config).items():
        key = name[len("transformer.") :] if name.startswith("transformer.") else name
        if key not in by_name:
            raise CheckpointError(f"{where}: tensor {name!r} is missing")
        array = by_name[key].T if transposed else by_name[key]
        if array.shape != shape:
            raise CheckpointError(
                f"{where}: tensor {name!r} has shape {array.shape[::-1] if transposed else array.shape}"
                f", the config asks for {shape[::-1] if transposed else shape}"
            )
        used.add(key)
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.asarray(array, DTYPE_NAMES[dtype])
    unknown = sorted(
        k
        for k in by_name
        if k not in used and not BUFFERS.search(k) and not (config.tie_embeddings and k == "lm_head.weight")
    )
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
