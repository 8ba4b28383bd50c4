"""LoRA adapters (Hu et al. 2021) on the linear layers of a frozen model, in PEFT's adapter format.

A targeted layer y = x W + b becomes y = x W + b + s (drop(x) A) B with A [in, r], B [r, out] and s = alpha / r.
A starts as PEFT's kaiming-uniform (U(-1/sqrt(in), 1/sqrt(in))), B at zero, so the first forward pass equals
the base model's. The adapters are a pytree of their own ({module path: {lora_a, lora_b, lora_scale,
lora_dropout}}); ``with_adapters`` lays them over the base parameters without copying them (the frozen
reference is the base itself, adapters off), and ``ppox.language.layers.Dense`` adds the term.

On disk: PEFT's folder, adapter_config.json and adapter_model.safetensors with the tensors
``base_model.model.<module>.lora_A.weight`` [r, in] (A^T) and ``.lora_B.weight`` [out, r] (B^T), the module
named as in the Hugging Face model (GPT-2's Conv1D layers too, with fan_in_fan_out). ``merged`` folds them in:
W' = W + s A B.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ppox.errors import CheckpointError, ConfigError
from ppox.language.config import LMConfig, read_json
from ppox.language.weights import read_safetensors, weight_table
from ppox.utils.files import atomic_write_text
from ppox.utils.tensorfile import check_header, write

ADAPTER_CONFIG, ADAPTER_FILE = "adapter_config.json", "adapter_model.safetensors"
PREFIX = "base_model.model."


@dataclasses.dataclass(frozen=True)
class LoRASpec:
    """rank r, alpha (s = alpha / r), dropout on the adapter's input (training only), and the target modules
    (names as PEFT matches them: a module is targeted when its Hugging Face name is a target or ends in
    "." + a target; empty: PEFT's default for the family)."""

    rank: int
    alpha: float = 8.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ()

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def default_targets(config: LMConfig) -> tuple[str, ...]:
    """PEFT's default target modules: GPT-2's fused c_attn; q_proj and v_proj for the Llama family."""
    return ("c_attn",) if config.family == "gpt2" else ("q_proj", "v_proj")


def targeted(config: LMConfig, targets: tuple[str, ...]) -> dict[tuple[str, ...], str]:
    """flax module path -> Hugging Face module name of every linear layer of a block that ``targets`` names
    (the family default when empty); ConfigError for a target that names no such layer."""
    targets = targets or default_targets(config)
    modules = {
        path[:-1]: name.removesuffix(".weight")
        for path, (name, _, _) in weight_table(config).items()
        if path[-1] == "kernel" and len(path) == 3
    }
    chosen = {p: n for p, n in modules.items() if any(n == t or n.endswith("." + t) for t in targets)}
    names = sorted({n.rsplit(".", 1)[1] for n in modules.values()})
    for target in targets:
        if not any(n == target or n.endswith("." + target) for n in modules.values()):
            raise ConfigError(f"--lora-targets {target}: no such linear layer in this model; choose from {names}")
    return dict(sorted(chosen.items()))


def init_adapters(config: LMConfig, params: dict, spec: LoRASpec, key: jax.Array) -> dict:
    """Adapters for ``spec.targets`` of ``params``: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming-uniform with
    a = sqrt(5)), B = 0, float32."""
    adapters: dict = {}
    for i, path in enumerate(targeted(config, spec.targets)):
        n_in, n_out = _node(params, path)["kernel"].shape
        bound = 1.0 / math.sqrt(n_in)
        a = jax.random.uniform(jax.random.fold_in(key, i), (n_in, spec.rank), jnp.float32, -bound, bound)
        _put(adapters, path, _leaves(a, jnp.zeros((spec.rank, n_out), jnp.float32), spec))
    return adapters


def _leaves(a, b, spec: LoRASpec) -> dict:
    return {"lora_a": a, "lora_b": b, "lora_scale": jnp.float32(spec.scale), "lora_dropout": jnp.float32(spec.dropout)}


def _node(tree: dict, path: tuple[str, ...]) -> dict:
    for part in path:
        tree = tree[part]
    return tree


def _put(tree: dict, path: tuple[str, ...], leaves: dict) -> None:
    for part in path:
        tree = tree.setdefault(part, {})
    tree.update(leaves)


def adapter_paths(adapters: dict) -> list[tuple[str, ...]]:
    """The module paths of the adapters' layers."""
    paths = []
    for path, _ in jax.tree_util.tree_flatten_with_path(adapters)[0]:
        keys = tuple(k.key for k in path)
        if keys[-1] == "lora_a":
            paths.append(keys[:-1])
    return paths


def with_adapters(base: dict, adapters: dict) -> dict:
    """The base parameters with the adapters' leaves beside each targeted layer's kernel: new dicts along the
    adapters' paths only, every base array shared (no copy)."""
    if not isinstance(adapters, dict) or not adapters:
        return base
    out = dict(base)
    for key, sub in adapters.items():
        out[key] = with_adapters(base[key], sub) if isinstance(sub, dict) and key in base else sub
    return out


def merged(base: dict, adapters: dict) -> dict:
    """The base parameters with W' = W + s A B in each targeted kernel (computed in float32, stored in W's
    dtype); the adapters gone."""
    out = jax.tree.map(lambda x: x, base)
    for path in adapter_paths(adapters):
        leaf, node = _node(adapters, path), _node(out, path)
        a, b = jnp.asarray(leaf["lora_a"], jnp.float32), jnp.asarray(leaf["lora_b"], jnp.float32)
        delta = leaf["lora_scale"] * (a @ b)
        node["kernel"] = (jnp.asarray(node["kernel"], jnp.float32) + delta).astype(node["kernel"].dtype)
    return out


def adapter_config(config: LMConfig, spec: LoRASpec, base_model: str) -> dict:
    """adapter_config.json as PEFT writes it for these settings."""
    modules = sorted({n.rsplit(".", 1)[1] for n in targeted(config, spec.targets).values()})
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": spec.rank,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": list(spec.targets) or modules,
        "bias": "none",
        "fan_in_fan_out": config.family == "gpt2",
        "inference_mode": True,
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
    }


def save_adapter(folder, config: LMConfig, adapters: dict, spec: LoRASpec, base_model: str) -> None:
    """A PEFT adapter folder: adapter_config.json and adapter_model.safetensors (float32)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = targeted(config, spec.targets)
    tensors = {}
    for path in adapter_paths(adapters):
        leaf, module = _node(adapters, path), PREFIX + names[path]
        tensors[f"{module}.lora_A.weight"] = np.asarray(leaf["lora_a"], np.float32).T
        tensors[f"{module}.lora_B.weight"] = np.asarray(leaf["lora_b"], np.float32).T
    write(folder / ADAPTER_FILE, tensors, {"format": "pt"})
    text = json.dumps(adapter_config(config, spec, base_model), indent=2, sort_keys=True)
    atomic_write_text(folder / ADAPTER_CONFIG, text)


def read_spec(folder) -> LoRASpec:
    """The LoRASpec of a PEFT adapter folder; CheckpointError for what ppox does not apply (another peft_type,
    trained biases, rsLoRA, DoRA, per-module ranks, modules to save)."""
    path = Path(folder) / ADAPTER_CONFIG
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    unsupported = [
        (data.get("peft_type") != "LORA", f"peft_type {data.get('peft_type')!r} (ppox reads LORA)"),
        (data.get("bias", "none") != "none", f"bias {data.get('bias')!r} (ppox reads 'none')"),
        (bool(data.get("use_rslora")) or bool(data.get("use_dora")), "rsLoRA or DoRA"),
        (bool(data.get("rank_pattern")) or bool(data.get("alpha_pattern")), "per-module ranks"),
        (bool(data.get("modules_to_save")), "modules_to_save"),
        (not isinstance(data.get("r"), int) or data["r"] < 1, f"r {data.get('r')!r}"),
    ]
    for bad, what in unsupported:
        if bad:
            raise CheckpointError(f"{path}: {what} is not supported")
    targets = data.get("target_modules") or ()
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    return LoRASpec(data["r"], float(data.get("lora_alpha", 8)), float(data.get("lora_dropout", 0.0)), targets)


def load_adapter(folder, config: LMConfig) -> tuple[dict, LoRASpec]:
    """(adapters, spec) of a PEFT adapter folder for a model of ``config``; CheckpointError naming a tensor
    that is missing, unexpected or of the wrong shape."""
    folder, spec = Path(folder), read_spec(folder)
    where = str(folder / ADAPTER_FILE)
    header = check_header(folder / ADAPTER_FILE, "adapter file")
    entries = header[0]
    try:
        names = targeted(config, spec.targets)
    except ConfigError as err:
        raise CheckpointError(f"{folder}: {err}") from None
    wanted = {f"{PREFIX}{n}.lora_{x}.weight": (p, x) for p, n in names.items() for x in "AB"}
    stray = sorted(set(entries) - set(wanted))
    if stray:
        raise CheckpointError(f"{where}: tensors this model has no layer for: {stray[:3]}")
    tensors = read_safetensors(folder / ADAPTER_FILE, header)
    adapters: dict = {}
    for path, name in names.items():
        a, b = (tensors.get(f"{PREFIX}{name}.lora_{x}.weight") for x in "AB")
        n_in, n_out = weight_table(config)[(*path, "kernel")][2]
        if a is None or b is None or a.shape != (spec.rank, n_in) or b.shape != (n_out, spec.rank):
            shapes = f"[{spec.rank}, {n_in}] and [{n_out}, {spec.rank}]"
            raise CheckpointError(f"{where}: {name}'s lora_A and lora_B are missing or not {shapes}")
        _put(adapters, path, _leaves(jnp.asarray(a.T, jnp.float32), jnp.asarray(b.T, jnp.float32), spec))
    return adapters, spec
