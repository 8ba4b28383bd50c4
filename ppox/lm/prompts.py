"""Prompts given from Python (``ppox.lm.train(prompts=...)``, ``ppox.lm.resume``): checked before the model
loads, so that one string, an empty list or a prompt of the wrong kind is a one-line error, not a string
iterated by character or ``max() arg is an empty sequence`` from deep inside."""

from __future__ import annotations

import os

import numpy as np

from ppox.errors import ConfigError
from ppox.language.config import shown

KINDS = "texts (str) or lists of token ids (int), all of one kind"


def given_prompts(prompts) -> list:
    """``prompts`` as a list of texts, or of token-id lists; ConfigError for one string (or path), no prompts,
    or a prompt of neither kind or of the other kind than the first."""
    if isinstance(prompts, (str, bytes, os.PathLike)):
        raise ConfigError(
            f"prompts={shown(prompts)} is a single string; prompts= takes a list: prompts=[text] for one "
            "prompt, or prompts=ppox.lm.read_prompts('FILE.jsonl') to read a JSONL file"
        )
    try:
        given = list(prompts)
    except TypeError:
        raise ConfigError(f"prompts= takes a list of {KINDS}; got {type(prompts).__name__}") from None
    if not given:
        raise ConfigError("prompts= is empty: give at least one prompt")
    texts = isinstance(given[0], str)
    for i, prompt in enumerate(given):
        if not (isinstance(prompt, str) if texts else is_token_ids(prompt)):
            raise ConfigError(f"prompts[{i}] is {shown(prompt)}: the prompts must be {KINDS}")
    return given


def is_token_ids(prompt) -> bool:
    """Whether ``prompt`` is a flat sequence of integers (a list, tuple or 1-D integer array)."""
    if isinstance(prompt, np.ndarray):
        return prompt.ndim == 1 and (prompt.size == 0 or np.issubdtype(prompt.dtype, np.integer))
    return isinstance(prompt, (list, tuple)) and all(
        isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in prompt
    )
