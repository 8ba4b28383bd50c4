"""The errors ppox raises on bad input, and the helpers that word them.

``ConfigError``: a setting that cannot work. ``CheckpointError``: a file that cannot be loaded.
Both carry a one-line message that says what to change. A non-finite number during training is a
``FloatingPointError`` (see ``check_finite``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import numpy as np


class ConfigError(Exception):
    """A configuration value that cannot work; the message says what to change."""


class CheckpointError(ValueError):
    """A file that cannot be loaded as a ppox policy or checkpoint; the message says why."""


class RunWriteError(OSError):
    """A file of the run could not be written (a full disk, a folder that went away); the message names
    the file and the cause. The run stops; its checkpoints up to the last good one stay."""

    @classmethod
    def of(cls, path, err: OSError) -> RunWriteError:
        error = cls(f"could not write {path}: {err.strerror or err}")
        error.errno = err.errno
        return error


def closest(name: str, choices, cutoff: float = 0.5) -> list[str]:
    """Up to three names from ``choices`` closest to ``name`` (for 'did you mean' messages)."""
    by_lower = {c.lower(): c for c in choices}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=cutoff)]


def check_finite(arrays: dict, where: Callable[[tuple], str], source: str = "") -> None:
    """Raise FloatingPointError at the first NaN or infinity in ``arrays`` (name -> array).

    The message reads '{source}non-finite {name} {where(index)}; training stopped, the last good
    checkpoint is kept', where ``index`` is the position of the first bad element. Integer and
    boolean arrays are always finite and are skipped.
    """
    for name, value in arrays.items():
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            continue
        bad = ~np.isfinite(value)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise FloatingPointError(
                f"{source}non-finite {name} {where(index)}; training stopped, the last good checkpoint is kept"
            )
