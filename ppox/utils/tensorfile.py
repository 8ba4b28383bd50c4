"""safetensors files that are checked before they are trusted.

Before a tensor is read, the header is checked against the file: its length, every tensor's dtype, shape
and byte range, and that the data is really on disk (a sparse file full of holes cannot make the reader
allocate gigabytes). Two SHA-256 sums are stored in the metadata when the file is written: one of the
tensors (``sha256``), checked after they are read, and one of every other metadata entry
(``sha256_metadata``), checked before anything in the metadata is used, so that a flipped bit anywhere
in the file is damage, not data. Files written before the metadata sum existed carry only the first; the
formats above say whether a file must carry both (``HEADER_CHECKSUM``). Nothing in a file is executed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from ppox.errors import CheckpointError
from ppox.utils.files import atomic_write_bytes

DTYPES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}
MAX_HEADER = 100 * 2**20
CHECKSUM = "sha256"  # of the tensors
HEADER_CHECKSUM = "sha256_metadata"  # of every metadata entry but itself (the tensor sum included)


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def header_checksum(metadata: dict) -> str:
    """SHA-256 over every metadata entry but ``HEADER_CHECKSUM`` itself (sorted JSON of the entries)."""
    entries = {k: v for k, v in metadata.items() if k != HEADER_CHECKSUM}
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def sealed(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> dict[str, str]:
    """``metadata`` with the checksum of ``arrays`` and then the checksum of the whole metadata added."""
    metadata = {**metadata, CHECKSUM: checksum(arrays)}
    return {**metadata, HEADER_CHECKSUM: header_checksum(metadata)}


def write(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write ``arrays`` with ``metadata`` (and both checksums) atomically."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write_bytes(Path(path), save(arrays, metadata=sealed(arrays, metadata)))


def read(
    path: Path, what: str, expect: Callable[[dict, dict], None] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a checked file, or CheckpointError saying what is wrong with it.

    ``expect(metadata, shapes)`` (shapes: tensor name -> shape, from the header) may refuse the file by
    raising, before any tensor is read: a file whose tensors are not what its metadata describes. The
    metadata's checksum, where the file carries one, is checked before ``expect`` sees the metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    entries, metadata = check_header(path, what)
    check_header_checksum(path, what, metadata)
    if expect is not None:
        expect(metadata if isinstance(metadata, dict) else {}, {k: tuple(e["shape"]) for k, e in entries.items()})
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{path}: not a readable ppox {what} ({type(err).__name__}: {err})") from None
    check_header_checksum(path, what, metadata)  # (what was read now, should the file have changed since)
    if CHECKSUM in metadata and metadata[CHECKSUM] != checksum(arrays):
        raise CheckpointError(
            f"{path}: not a readable ppox {what} (damaged: its tensors do not match the checksum written with them)"
        )
    return arrays, metadata


def check_header_checksum(path: Path, what: str, metadata) -> None:
    """CheckpointError if ``metadata`` carries a checksum of itself that it does not match."""
    if isinstance(metadata, dict) and HEADER_CHECKSUM in metadata:
        if metadata[HEADER_CHECKSUM] != header_checksum(metadata):
            raise CheckpointError(
                f"{path}: not a readable ppox {what} (damaged: its metadata does not match the checksum written "
                "with it)"
            )


def check_header(path: Path, what: str) -> tuple[dict, dict]:
    """(the header's tensor entries, its metadata), checked against the file's size and the bytes on disk."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= length <= min(size - 8, MAX_HEADER):
            raise CheckpointError(f"{path}: not a readable ppox {what} (no valid safetensors header)")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: not a readable ppox {what} (header: {err})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a readable ppox {what} (header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - length
    for name, entry in header.items():
        _check_entry(path, what, name, entry, data_size)
    on_disk = os.stat(path).st_blocks * 512
    if data_size > 64 * 2**20 and on_disk * 4 < size:
        raise CheckpointError(
            f"{path}: not a readable ppox {what} (damaged: it claims {size:,} bytes but only {on_disk:,} are on disk)"
        )
    return header, metadata


def _check_entry(path: Path, what: str, name: str, entry, data_size: int) -> None:
    problem = None
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        problem = "an unknown dtype"
    elif not (isinstance(entry.get("shape"), list) and all(isinstance(n, int) and n >= 0 for n in entry["shape"])):
        problem = "a malformed shape"
    else:
        offsets = entry.get("data_offsets")
        nbytes = math.prod(entry["shape"]) * DTYPES[entry["dtype"]]
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
            and offsets[1] - offsets[0] == nbytes
        ):
            problem = f"a byte range that does not fit its shape {entry['shape']} or the file's {data_size:,} bytes"
    if problem:
        raise CheckpointError(f"{path}: not a readable ppox {what} (damaged: tensor {name!r} has {problem})")
