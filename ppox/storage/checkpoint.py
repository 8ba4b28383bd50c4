"""Saving and loading trained parameters safely: safetensors arrays plus JSON metadata, no pickle.

A policy file holds flat arrays named like ``params/actor_trunk/Dense_0/kernel`` (with a
leading seed axis) and ``obs_stats/mean`` etc., and a metadata header with the config, the
environment spec and the format version. Files are written atomically: a temporary file in
the same folder, fsync, then rename, so a crash never leaves a half-written file behind.

Format versions (policies and checkpoints alike): version 2 files carry a checksum of their metadata as well
as of their tensors (``tensorfile.HEADER_CHECKSUM``), and must; version 1 files, written before, are still
read, with only the checksum of their tensors.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ppox._version import __version__
from ppox.config.config import Config
from ppox.errors import CheckpointError, ConfigError, check_finite
from ppox.language.run_config import LMRunConfig
from ppox.utils import tensorfile
from ppox.utils.files import atomic_write_bytes

FORMAT = "ppox-policy"
FORMAT_VERSION = 2  # what is written
READ_VERSIONS = ("1", "2")  # what is read: 1 without the metadata's checksum, 2 with it (required)


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    flat = traverse_util.flatten_dict(tree, sep="/")
    return {f"{prefix}/{k}": np.ascontiguousarray(np.asarray(v)) for k, v in flat.items()}


def unflatten(arrays: dict[str, np.ndarray], prefix: str):
    start = prefix + "/"
    return traverse_util.unflatten_dict({k[len(start) :]: v for k, v in arrays.items() if k.startswith(start)}, sep="/")


def save_policy(path, params, obs_stats, config_dict: dict, spec_dict: dict, extra: dict | None = None) -> Path:
    """Write params (seed-stacked pytree) and observation statistics to ``path`` atomically."""
    arrays = {**flatten(params, "params"), **flatten(obs_stats, "obs_stats")}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "ppox_version": __version__,
        "config": json.dumps(config_dict),
        "env_spec": json.dumps(spec_dict),
        "extra": json.dumps(extra or {}),
    }
    tensorfile.write(Path(path), arrays, metadata)
    return Path(path)


def _read_safetensors(path: Path, fmt: str, what: str, short: str, expect=None) -> tuple[dict, dict]:
    """(arrays, metadata) of a safetensors file of format ``fmt`` and a version this ppox reads, or
    CheckpointError; the metadata's checksum, the format, and ``expect(metadata, shapes)`` if given, are
    checked before any tensor is read.

    safetensors reads a JSON header and raw arrays only: nothing in the file is ever executed."""

    def checked(metadata: dict, shapes: dict) -> None:
        if metadata.get("format") != fmt:
            raise CheckpointError(f"{path}: not a ppox {what} (format {metadata.get('format')!r})")
        if metadata.get("format_version") not in READ_VERSIONS:
            raise CheckpointError(
                f"{path}: {short} format version {metadata.get('format_version')} is not "
                f"supported by this ppox (it reads versions {' and '.join(READ_VERSIONS)})"
            )
        if metadata["format_version"] != "1" and not {tensorfile.CHECKSUM, tensorfile.HEADER_CHECKSUM} <= set(metadata):
            raise CheckpointError(f"{path}: not a readable ppox {what} (damaged: its checksums are missing)")
        if expect is not None:
            expect(metadata, shapes)

    return tensorfile.read(path, what, checked)


def load_policy_file(path, expect=None) -> tuple[dict, dict, dict, dict, dict]:
    """(params, obs_stats, config_dict, spec_dict, extra) from a policy file, or CheckpointError.
    ``expect(metadata, shapes)``: the caller's check of the file's metadata and tensor shapes, before reading."""
    path = Path(path)
    arrays, metadata = _read_safetensors(path, FORMAT, "policy file", "policy", expect)
    try:
        config = json.loads(metadata["config"])
        spec = json.loads(metadata["env_spec"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: damaged metadata ({err})") from None
    return unflatten(arrays, "params"), unflatten(arrays, "obs_stats"), config, spec, extra


# ---------------------------------------------------------------------------------------------------
# Training checkpoints: the whole training state, to resume a run exactly where it stopped.

CHECKPOINT_FORMAT = "ppox-checkpoint"
CHECKPOINT_VERSION = 2  # what is written; READ_VERSIONS are read
POLICY_PREFIX = "policy"  # a checkpoint's copy of the policy: policy/params/..., policy/obs_stats/...
CHECKPOINT_DIR = "checkpoints"
T = TypeVar("T")


class Checkpoint(NamedTuple):
    """A training checkpoint as read back: its file, its arrays (state and metrics), the number of
    updates done when it was written, and its JSON metadata (config, driver, wall time, ...)."""

    path: Path
    arrays: dict[str, np.ndarray]
    update: int
    meta: dict


def _leaf_names(tree) -> list[str]:
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return ["state" + jax.tree_util.keystr(path) for path, _ in paths]


def save_checkpoint(
    run_path, update: int, state, metrics: dict[str, np.ndarray], meta: dict, keep: int, policy=None
) -> Path:
    """Write RUN/checkpoints/update_UUUUUUUU.safetensors atomically, then keep only the newest ``keep``.

    ``state`` is any pytree of arrays (the driver's whole training state: parameters, optimiser
    state, PRNG keys, normalisation statistics, env state); its leaves are stored under their
    pytree paths, and loading puts them back into a template of the same structure, so nothing
    but arrays and JSON is ever read. ``metrics`` are the per-update metrics so far [seeds, update].
    ``policy``: (params, obs_stats as a dict), seed-stacked, as the policy file holds them: stored too, so
    that the policy can be read back without a driver (``checkpoint_policy``) should the policy file be lost.
    """
    folder = Path(run_path) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    leaves = jax.device_get(jax.tree_util.tree_leaves(state))
    arrays = {name: np.ascontiguousarray(np.asarray(leaf)) for name, leaf in zip(_leaf_names(state), leaves)}
    check_finite({f"values in {name}": leaf for name, leaf in arrays.items()}, lambda _: f"after update {update}")
    arrays.update({f"metrics/{k}": np.ascontiguousarray(v) for k, v in metrics.items()})
    if policy is not None:
        arrays.update(
            {**flatten(policy[0], f"{POLICY_PREFIX}/params"), **flatten(policy[1], f"{POLICY_PREFIX}/obs_stats")}
        )
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_VERSION),
        "ppox_version": __version__,
        "update": str(update),
        "meta": json.dumps(meta),
    }
    path = folder / f"update_{update:08d}.safetensors"
    tensorfile.write(path, arrays, metadata)
    for old in list_checkpoints(run_path)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_path) -> list[Path]:
    """The run's checkpoint files, oldest first (temporary files of an interrupted write are not listed)."""
    folder = Path(run_path) / CHECKPOINT_DIR
    return sorted(folder.glob("update_*.safetensors")) if folder.is_dir() else []


def read_checkpoint(path) -> Checkpoint:
    """The checkpoint in a file, or CheckpointError saying what is wrong with it."""
    path = Path(path)
    arrays, metadata = _read_safetensors(path, CHECKPOINT_FORMAT, "checkpoint", "checkpoint")
    try:
        update, meta = int(metadata["update"]), json.loads(metadata["meta"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({err})") from None
    problem = _meta_problem(update, meta, arrays)
    if problem:
        raise CheckpointError(f"{path}: damaged checkpoint metadata: {problem}")
    return Checkpoint(path, arrays, update, meta)


def _meta_problem(update: int, meta, arrays: dict[str, np.ndarray]) -> str | None:
    """What is wrong with a checkpoint's metadata (None: nothing): the driver, the config, the update
    count within the run, the wall time, and every metric shaped [seeds, update]."""
    if not isinstance(meta, dict) or meta.get("driver") not in ("fused", "host", "lm"):
        return "'driver' must be fused, host or lm"
    try:
        kind = LMRunConfig if meta["driver"] == "lm" else Config
        config = kind.from_dict(meta.get("config"))  # type: ignore[arg-type]  # (from_dict checks it)
    except ConfigError as err:
        return f"config: {err}"
    if not 1 <= update <= config.num_updates:
        return f"update {update} is outside the run's 1..{config.num_updates}"
    wall = meta.get("wall_time", 0.0)
    if not (isinstance(wall, (int, float)) and not isinstance(wall, bool) and np.isfinite(wall) and wall >= 0):
        return f"wall_time must be a number of seconds >= 0, got {wall!r}"
    for name, values in arrays.items():
        if name.startswith("metrics/") and values.shape != (config.seeds, update):
            return f"{name} is shaped {list(values.shape)}, not [seeds {config.seeds}, updates {update}]"
    return None


def read_newest_checkpoint(run_path) -> Checkpoint:
    """The run's newest loadable checkpoint; a damaged one falls back to the one before (said on stderr)."""
    return newest_usable(run_path, lambda checkpoint: checkpoint)


def newest_usable(run_path, use: Callable[[Checkpoint], T]) -> T:
    """``use`` of the run's newest checkpoint that loads and that ``use`` accepts: a damaged checkpoint, or
    one for which ``use`` raises CheckpointError (arrays that do not fit its own config), falls back to the
    one before, and each one skipped is said on stderr. CheckpointError if none is left."""
    run_path = Path(run_path)
    if not run_path.is_dir():
        raise CheckpointError(f"{run_path}: no such run folder")
    files = list_checkpoints(run_path)
    if not files:
        raise CheckpointError(
            f"{run_path}: the run has no checkpoints to resume from (it stopped before its first one); start it "
            "again: a new run with the same --run-name reuses the folder"
        )
    problems = []
    for path in reversed(files):  # newest first
        try:
            used = use(read_checkpoint(path))
            break
        except CheckpointError as err:
            problems.append(str(err))
    else:
        raise CheckpointError("no loadable checkpoint: " + "; ".join(problems))
    for problem in problems:
        print(f"ppox: skipped a damaged checkpoint: {problem}", file=sys.stderr)
    return used


def checkpoint_policy(checkpoint: Checkpoint) -> tuple[dict, dict] | None:
    """(params, obs_stats) as a policy file holds them (seed-stacked), from a checkpoint that stored them
    (``save_checkpoint(..., policy=...)``); None for one that did not."""
    params = unflatten(checkpoint.arrays, f"{POLICY_PREFIX}/params")
    obs_stats = unflatten(checkpoint.arrays, f"{POLICY_PREFIX}/obs_stats")
    return (params, obs_stats) if params and obs_stats else None


def restore_state(checkpoint: Checkpoint, template) -> Any:
    """Put a checkpoint's arrays into ``template``'s structure, checking every name, shape and dtype."""
    arrays, path = checkpoint.arrays, checkpoint.path
    names = _leaf_names(template)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    restored = []
    for name, leaf in zip(names, leaves):
        if name not in arrays:
            raise CheckpointError(f"{path}: checkpoint lacks {name}; it was written for a different configuration")
        value, want = arrays[name], np.asarray(jax.device_get(leaf))
        if want.ndim == 0 and value.shape == (1,):  # safetensors reads a 0-d array back as [1]
            value = value.reshape(())
        if value.shape != want.shape or value.dtype != want.dtype:
            raise CheckpointError(
                f"{path}: {name} is {value.dtype}{list(value.shape)}, this run needs {want.dtype}{list(want.shape)}"
            )
        # (as the template's array where it is one: its weak type kept, a program compiled for it takes the result)
        restored.append(leaf.at[...].set(value) if isinstance(leaf, jax.Array) else jnp.asarray(value))
    extra = sorted(set(k for k in arrays if k.startswith("state")) - set(names))
    if extra:
        raise CheckpointError(f"{path}: checkpoint holds arrays this run does not have ({extra[:3]}...)")
    return jax.tree_util.tree_unflatten(treedef, restored)


def checkpoint_metrics(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """The per-update metrics saved with a checkpoint, name -> [seeds, update]."""
    return {k[len("metrics/") :]: v for k, v in checkpoint.arrays.items() if k.startswith("metrics/")}


def keep_if_best(run_path, checkpoint_file: Path, update: int, eval_return: float) -> bool:
    """Copy ``checkpoint_file`` to checkpoints/best.safetensors if its evaluation beats the best so far
    (recorded in checkpoints/best.json); True if it did."""
    best = Path(run_path) / CHECKPOINT_DIR / "best.json"
    previous = json.loads(best.read_text())["eval_return"] if best.exists() else -float("inf")
    if eval_return <= previous:
        return False
    atomic_write_bytes(best.with_suffix(".safetensors"), Path(checkpoint_file).read_bytes())
    atomic_write_bytes(best, json.dumps({"update": update, "eval_return": eval_return}).encode())
    return True
