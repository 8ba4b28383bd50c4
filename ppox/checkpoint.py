"""Saving and loading trained parameters safely: safetensors arrays plus JSON metadata, no pickle.

A policy file holds flat arrays named like ``params/actor_trunk/Dense_0/kernel`` (with a
leading seed axis) and ``obs_stats/mean`` etc., and a metadata header with the config, the
environment spec and the format version. Files are written atomically: a temporary file in
the same folder, fsync, then rename, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from flax import traverse_util

FORMAT = "ppox-policy"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that cannot be loaded as a ppox policy; the message says why."""


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    flat = traverse_util.flatten_dict(tree, sep="/")
    return {f"{prefix}/{k}": np.ascontiguousarray(np.asarray(v)) for k, v in flat.items()}


def unflatten(arrays: dict[str, np.ndarray], prefix: str):
    start = prefix + "/"
    return traverse_util.unflatten_dict({k[len(start):]: v for k, v in arrays.items() if k.startswith(start)}, sep="/")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_policy(path, params, obs_stats, config_dict: dict, spec_dict: dict, extra: dict | None = None) -> Path:
    """Write params (seed-stacked pytree) and observation statistics to ``path`` atomically."""
    from safetensors.numpy import save

    from ppox import __version__

    arrays = {**flatten(params, "params"), **flatten(obs_stats, "obs_stats")}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "ppox_version": __version__,
        "config": json.dumps(config_dict),
        "env_spec": json.dumps(spec_dict),
        "extra": json.dumps(extra or {}),
    }
    atomic_write_bytes(Path(path), save(arrays, metadata=metadata))
    return Path(path)


def load_policy_file(path) -> tuple[dict, dict, dict, dict, dict]:
    """(params, obs_stats, config_dict, spec_dict, extra) from a policy file, or CheckpointError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{path}: not a readable ppox policy file ({type(err).__name__}: {err})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ppox policy file (format {metadata.get('format')!r})")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path}: policy format version {metadata.get('format_version')} is not supported by this ppox "
            f"(it reads version {FORMAT_VERSION})"
        )
    try:
        config = json.loads(metadata["config"])
        spec = json.loads(metadata["env_spec"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: damaged metadata ({err})") from None
    return unflatten(arrays, "params"), unflatten(arrays, "obs_stats"), config, spec, extra
