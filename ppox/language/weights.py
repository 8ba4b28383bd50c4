"""Hugging Face model folders: config.json plus model.safetensors or shards listed in
model.safetensors.index.json, read into ppox.language parameters and written back under the same names.

Every safetensors file is checked before a tensor is read (``ppox.utils.tensorfile.check_header``): each is a
regular file (a FIFO would block), and together their headers hold every tensor the config needs, in its shape,
before any data is read. float32, float16 and bfloat16 tensors are read (bfloat16 through ml_dtypes, which
NumPy lacks). Nothing is executed.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import ml_dtypes
import numpy as np

from ppox.errors import CheckpointError
from ppox.language.config import LMConfig, read_json, shown
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
SHARD_NAME = "model-{:05d}-of-{:05d}.safetensors"
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
    "pre_feedforward_layernorm": "pre_feedforward_layernorm",  # (Gemma's sandwich norms)
    "post_feedforward_layernorm": "post_feedforward_layernorm",
    **{p: f"self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")},
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


def param_shapes(config: LMConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """flax path -> shape of every parameter of ``config``, in the order of jax's flattening (sorted paths),
    worked out from the config alone (what ``models.init_params`` builds; tested equal)."""
    d, f, v = config.hidden_size, config.intermediate_size, config.vocab_size
    q, kv = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim

    def linear(name: str, n_in: int, n_out: int, bias: bool) -> dict:
        return {(name, "kernel"): (n_in, n_out), **({(name, "bias"): (n_out,)} if bias else {})}

    if config.family == "gpt2":
        top = {("wte",): (v, d), ("wpe",): (config.max_positions, d), ("ln_f", "scale"): (d,), ("ln_f", "bias"): (d,)}
        block = {
            **{(n, leaf): (d,) for n in ("ln_1", "ln_2") for leaf in ("scale", "bias")},
            **linear("c_attn", d, 3 * d, True),
            **linear("c_proj", d, d, True),
            **linear("mlp_c_fc", d, f, True),
            **linear("mlp_c_proj", f, d, True),
        }
    else:
        top = {("embed_tokens",): (v, d), ("norm", "weight"): (d,)}
        block = {
            ("input_layernorm", "weight"): (d,),
            ("post_attention_layernorm", "weight"): (d,),
            **linear("q_proj", d, q, config.qkv_bias),
            **linear("k_proj", d, kv, config.qkv_bias),
            **linear("v_proj", d, kv, config.qkv_bias),
            **linear("o_proj", q, d, config.out_bias),
            **{k: s for n in ("gate_proj", "up_proj") for k, s in linear(n, d, f, config.mlp_bias).items()},
            **linear("down_proj", f, d, config.mlp_bias),
        }
        if config.qk_norm:
            block.update({("q_norm", "weight"): (config.head_dim,), ("k_norm", "weight"): (config.head_dim,)})
        if config.gemma:
            block.update({(n, "weight"): (d,) for n in ("pre_feedforward_layernorm", "post_feedforward_layernorm")})
    if not config.tie_embeddings:
        top[("lm_head", "kernel")] = (d, v)
    prefix = "h" if config.family == "gpt2" else "layers"
    layers = {(f"{prefix}_{i}", *path): shape for i in range(config.num_layers) for path, shape in block.items()}
    return dict(sorted({**top, **layers}.items()))


def weight_table(config: LMConfig) -> dict[tuple[str, ...], tuple[str, bool, tuple[int, ...]]]:
    """flax path -> (HF name, transposed, flax shape) for every parameter of ``config``."""
    return {path: (*hf_name(config, path), shape) for path, shape in param_shapes(config).items()}


def check_tensors(config: LMConfig, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """CheckpointError naming the first tensor ``config`` needs that ``shapes`` (HF name -> shape, as stored)
    lacks or holds in another shape, or a tensor it does not describe (buffers and a tied lm_head aside)."""
    by_name = {n.removeprefix("transformer."): tuple(s) for n, s in shapes.items()}
    used = set()
    for name, transposed, shape in weight_table(config).values():
        key = name.removeprefix("transformer.")
        if key not in by_name:
            raise CheckpointError(f"{where}: tensor {name!r} is missing")
        stored = shape[::-1] if transposed else shape
        if by_name[key] != stored:
            raise CheckpointError(f"{where}: tensor {name!r} has shape {by_name[key]}, the config asks for {stored}")
        used.add(key)
    unknown = sorted(
        k
        for k in by_name
        if k not in used and not BUFFERS.search(k) and not (config.tie_embeddings and k == "lm_head.weight")
    )
    if unknown:
        raise CheckpointError(f"{where}: tensors this {config.model_type} config does not describe: {unknown[:3]}")


def read_safetensors(path: Path, header: tuple[dict, dict] | None = None) -> dict[str, np.ndarray]:
    """All tensors of one checked safetensors file (``header``: its ``check_header``, if done already), in
    the dtypes they are stored in (floating point, or integer and bool for the buffers some checkpoints carry)."""
    entries, metadata = check_header(path, "model file") if header is None else header
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


def regular_file(path: Path, where: str) -> Path:
    """``path``, checked to be a regular file (opening a FIFO or a device would block or never end)."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise CheckpointError(f"{where}: {path.name}: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{where}: {path.name} is not a regular file")
    return path


def model_files(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """(the safetensors files of a model folder, the index's tensor -> file map: empty for model.safetensors)."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.exists() or single.is_symlink():
        return [regular_file(single, str(folder))], {}
    if not index.exists():
        raise CheckpointError(
            f"{folder}: no model.safetensors or model.safetensors.index.json (ppox reads "
            "safetensors only; convert .bin checkpoints first)"
        )
    data = read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not (isinstance(weight_map, dict) and all(isinstance(v, str) for v in weight_map.values())):
        raise CheckpointError(f"{index}: expected an object with a weight_map of tensor names to file names")
    for shard in set(weight_map.values()):
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(f"{index}: shard {shown(shard)} is not a file name in the folder")
    return [regular_file(folder / shard, str(index)) for shard in sorted(set(weight_map.values()))], weight_map


def read_folder_tensors(folder: Path, config: LMConfig | None = None) -> dict[str, np.ndarray]:
    """Every tensor of a model folder: model.safetensors, or the shards its index names. Every header is
    checked first, and with ``config`` every tensor it needs (``check_tensors``), before any data is read."""
    files, weight_map = model_files(Path(folder))
    headers = {path: check_header(path, "model file") for path in files}
    shapes = {name: tuple(entry["shape"]) for entries, _ in headers.values() for name, entry in entries.items()}
    missing = sorted(set(weight_map) - set(shapes))
    if missing:
        raise CheckpointError(
            f"{folder}/model.safetensors.index.json: tensors listed but not found in the shards: {missing[:3]}"
        )
    if config is not None:
        check_tensors(config, shapes, str(folder))
    arrays = {}
    for path, header in headers.items():
        arrays.update(read_safetensors(path, header))
    return arrays


def params_from_tensors(config: LMConfig, tensors: dict[str, np.ndarray], dtype: str, where: str) -> dict:
    """The flax parameters of ``config`` from HF-named tensors, cast to ``dtype`` ("float32"/"bfloat16")."""
    check_tensors(config, {n: a.shape for n, a in tensors.items()}, where)
    by_name = {n.removeprefix("transformer."): a for n, a in tensors.items()}
    params: dict = {}
    for path, (name, transposed, _) in weight_table(config).items():
        array = by_name[name.removeprefix("transformer.")]
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.asarray(array.T if transposed else array, DTYPE_NAMES[dtype])
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
