"""A config's fields read from JSON: the file, and the checks of its object before the dataclass is built.

It reads a config class through its dataclass fields only, so ``ppox.config.config`` builds on it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
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


MAX_JSON_BYTES = 16 * 2**20  # a config file is a few KB; a larger one is refused before it is read whole


def read_json(path: Path) -> Any:
    """The JSON value in the file at ``path``.

    Raises:
        ConfigError: the file cannot be read, is over ``MAX_JSON_BYTES``, is not UTF-8 or not valid JSON, nests
            deeper than Python's recursion limit, or holds an integer of more digits than Python converts.
    """
    fix = "fix the file or write it with ppox.Config.to_json()"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as err:
        raise ConfigError(
            f"cannot read the config file {path}: {err.strerror or err}; give the path of a JSON "
            "file such as a run folder's config.json"
        ) from None
    if len(data) > MAX_JSON_BYTES:
        raise ConfigError(f"{path} is larger than a config file can be ({MAX_JSON_BYTES // 2**20} MiB); {fix}")
    try:
        return json.loads(data.decode("utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); {fix}"
        ) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); {fix}"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path} nests its JSON too deeply to be a config; {fix}") from None
    except ValueError:  # (what json.loads raises besides: an integer over Python's int_max_str_digits)
        raise ConfigError(
            f"{path} holds an integer of more than {sys.get_int_max_str_digits()} digits; {fix}"
        ) from None


def config_from_file(cls: Any, path) -> Any:
    """``cls.from_dict`` of the JSON file at ``path``, or of a run folder's config.json; ConfigError naming the file."""
    path = Path(path) / "config.json" if Path(path).is_dir() else Path(path)
    data = read_json(path)
    try:
        return cls.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
