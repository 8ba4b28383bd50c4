"""A config's fields read from JSON: the file, and the checks of its object before the dataclass is built.

It reads a config class through its dataclass fields only, so ``ppox.config.config`` builds on it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from ppox.errors import ConfigError, closest


def fields_from_json(cls: Any, data: Any) -> dict[str, Any]:
    """The keyword arguments of ``cls`` (a dataclass) that JSON-like ``data`` gives.

    Args:
        cls: the config dataclass.
        data: field name -> value; a list stands for a tuple field's tuple.

    Returns:
        field name -> value, for ``cls(**...)`` (which validates them).

    Raises:
        ConfigError: ``data`` is not a dict, or names a field ``cls`` does not have (with the closest name).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a JSON object of fields, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        hint = closest(unknown[0], names)
        raise ConfigError(
            f"unknown config field(s) {unknown}"
            + (f"; did you mean {hint[0]!r}?" if hint else f"; known fields: {sorted(names)}")
        )
    hints = typing.get_type_hints(cls)
    tuples = {name for name in names if typing.get_origin(hints[name]) is tuple}
    return {name: tuple(value) if name in tuples and isinstance(value, list) else value for name, value in data.items()}


def read_json(path: Path) -> Any:
    """The JSON value in the file at ``path``.

    Raises:
        ConfigError: the file cannot be read or is not valid JSON (saying where).
    """
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(
            f"cannot read the config file {path}: {err.strerror or err}; give the path of a JSON "
            "file such as a run folder's config.json"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            "fix the file or write it with ppox.Config.to_json()"
        ) from None
