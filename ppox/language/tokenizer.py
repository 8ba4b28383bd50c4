"""Text to left-padded token ids and back, through the ``tokenizers`` package and a folder's tokenizer.json.

Prompts are padded on the left so that every row's last prompt token sits in the same slot and
generation writes all rows in step; the mask, not the pad id, says which slots hold text.

tokenizer.json is read by Rust code: a file it cannot parse, or a regular expression that its regex engine
gives up on for some text (a panic, after the engine's backtracking limit), is a one-line CheckpointError.
The file's own padding and truncation settings are turned off (ppox pads and cuts itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ppox.errors import CheckpointError, ConfigError
from ppox.language.config import MAX_JSON_BYTES, read_json, shown

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with the pad and end-of-sequence ids of its model."""

    tokenizer: Any  # tokenizers.Tokenizer (an optional dependency)
    pad_id: int
    eos_ids: tuple[int, ...]
    where: str = "tokenizer.json"

    def encode(
        self, texts: list[str], length: int | None = None, add_special_tokens: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids [B, L] int32, mask [B, L] bool), left-padded with ``pad_id`` to ``length`` (default: the
        longest); a longer text keeps its last ``length`` tokens. ``add_special_tokens=False`` for text a chat
        template wrote (it holds its special tokens already)."""
        encoded = rust_call(
            lambda: self.tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens),
            f"{self.where}: encoding text",
        )
        rows = [e.ids for e in encoded]
        length = max((len(r) for r in rows), default=0) if length is None else length
        ids = np.full((len(rows), length), self.pad_id, np.int32)
        mask = np.zeros((len(rows), length), bool)
        for i, row in enumerate(rows):
            row = row[max(len(row) - length, 0) :]
            if row:
                ids[i, length - len(row) :] = row
                mask[i, length - len(row) :] = True
        return ids, mask

    def decode(self, ids: np.ndarray, mask: np.ndarray) -> list[str]:
        """The text of each row's masked-in tokens, special tokens left out."""
        ids, mask = np.asarray(ids), np.asarray(mask, bool)
        rows = [row[keep].tolist() for row, keep in zip(ids, mask)]
        return rust_call(
            lambda: self.tokenizer.decode_batch(rows, skip_special_tokens=True), f"{self.where}: decoding tokens"
        )


@contextlib.contextmanager
def held_stderr() -> Iterator[list[bool]]:
    """File descriptor 2 sent to a temporary file for the block (Rust prints a panic's backtrace there);
    what was written is passed on to stderr afterwards unless the block sets ``dropped[0]``. In the main
    thread only: a call from another thread (a reward that may be abandoned while it runs) leaves fd 2 alone."""
    dropped = [False]
    if threading.current_thread() is not threading.main_thread():
        yield dropped
        return
    with _fd2_to_temporary_file(dropped):
        yield dropped


@contextlib.contextmanager
def _fd2_to_temporary_file(dropped: list[bool]) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not dropped[0]:
                held.seek(0)
                os.write(2, held.read())


def rust_call(call: Callable[[], T], what: str) -> T:
    """``call()`` into the tokenizers package; its errors and panics as one-line CheckpointErrors."""
    with held_stderr() as dropped:
        try:
            return call()
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as err:  # (a Rust panic is a pyo3 PanicException, a BaseException)
            dropped[0] = True
            message = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise CheckpointError(
                f"{what} failed ({message}): fix or replace the tokenizer (its regular expressions, or its JSON)"
            ) from None


def _special_id(tok, folder: Path, name: str) -> Any:
    """The id of the ``{name}_token`` that tokenizer_config.json names, else config.json's ``{name}_token_id``."""
    for file, key in (("tokenizer_config.json", f"{name}_token"), ("config.json", f"{name}_token_id")):
        path = folder / file
        data = read_json(path) if path.exists() else {}
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: not a JSON object")
        value = data.get(key)
        if isinstance(value, dict):  # {"content": "<eos>", ...}
            value = value.get("content")
        if isinstance(value, str):
            value = tok.token_to_id(value)
        ids = value if isinstance(value, list) and name == "eos" else [value]
        if value is not None and not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise CheckpointError(f"{path}: {key} is {shown(data.get(key))}: name a token (its text or id)")
        if value is not None:
            return value
    return None


def load_tokenizer(folder: Path, pad_id: int | None = None) -> TextTokenizer:
    """The tokenizer of a model folder (tokenizer.json). ``pad_id`` overrides the folder's pad token;
    one is needed (GPT-2's has none: name any id, the mask keeps it out of every computation)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("text needs the tokenizers package: pip install 'ppox[lm]'") from None
    folder = Path(folder)
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no tokenizer.json")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes, more than a tokenizer holds")
    tok = rust_call(lambda: Tokenizer.from_file(str(path)), f"{path}: reading it")
    tok.no_padding()
    tok.no_truncation()
    eos = _special_id(tok, folder, "eos")
    eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))
    pad = pad_id if pad_id is not None else _special_id(tok, folder, "pad")
    if pad is None:
        raise ConfigError(f"{folder}: the tokenizer names no pad token; pass pad_id (any id: masks keep it out)")
    return TextTokenizer(tok, int(pad), eos_ids, str(path))
