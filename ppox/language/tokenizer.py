"""Text to left-padded token ids and back, through the ``tokenizers`` package and a folder's tokenizer.json.

Prompts are padded on the left so that every row's last prompt token sits in the same slot and
generation writes all rows in step; the mask, not the pad id, says which slots hold text.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from ppox.errors import CheckpointError, ConfigError


@dataclasses.dataclass(frozen=True)
class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with the pad and end-of-sequence ids of its model."""

    tokenizer: Any  # tokenizers.Tokenizer (an optional dependency)
    pad_id: int
    eos_ids: tuple[int, ...]

    def encode(self, texts: list[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids [B, L] int32, mask [B, L] bool), left-padded with ``pad_id`` to ``length`` (default: the
        longest); a longer text keeps its last ``length`` tokens."""
        rows = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
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
        return self.tokenizer.decode_batch(
            [row[keep].tolist() for row, keep in zip(ids, mask)], skip_special_tokens=True
        )


def _special_id(tok, folder: Path, name: str):
    """The id of the ``{name}_token`` that tokenizer_config.json names, else config.json's ``{name}_token_id``."""
    for file, key in (("tokenizer_config.json", f"{name}_token"), ("config.json", f"{name}_token_id")):
        path = folder / file
        value = json.loads(path.read_text()).get(key) if path.is_file() else None
        if isinstance(value, dict):  # {"content": "<eos>", ...}
            value = value.get("content")
        if isinstance(value, str):
            value = tok.token_to_id(value)
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
    if not (folder / "tokenizer.json").is_file():
        raise CheckpointError(f"{folder}: no tokenizer.json")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    eos = _special_id(tok, folder, "eos")
    eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))
    pad = pad_id if pad_id is not None else _special_id(tok, folder, "pad")
    if pad is None:
        raise ConfigError(f"{folder}: the tokenizer names no pad token; pass pad_id (any id: masks keep it out)")
    return TextTokenizer(tok, int(pad), eos_ids)
