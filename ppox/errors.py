"""The errors ppox raises on bad input, and the helpers that word them.

``ConfigError``: a setting that cannot work. ``CheckpointError``: a file that cannot be loaded.
Both carry a one-line message that says what to change. A non-finite number during training is a
``FloatingPointError`` (see ``check_finite``).
"""

from __future__ import annotations

import difflib
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path

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


class UserCodeError(Exception):
    """An exception the user's code raised during a run: the env, the reward or a callback (``__cause__``, also
    ``error``), shown as theirs, not ppox's. The run loop checkpoints the last completed update first; then
    ``saved`` is that update and ``resume`` the command that continues the run (None where nothing was saved).

    A driver whose ``run`` fails part-way sets ``completed`` to (state, pending, n): the state after the n updates
    of the chunk that completed, and their pending metrics, which the loop saves."""

    def __init__(self, where: str, error: BaseException):
        super().__init__(f"{where} raised {type(error).__name__}: {error}")
        self.where, self.error = where, error
        self.__cause__, self.__suppress_context__ = error, True
        self.completed: tuple | None = None
        self.saved: int | None = None
        self.resume: str | None = None

    def user_frames(self) -> str:
        """The traceback of the user's exception, only the frames in the user's files (not ppox's, the standard
        library's or installed packages'; where none is the user's, every frame past ppox's), then its last line."""
        frames = [f for f in traceback.extract_tb(self.error.__traceback__) if not _in(f.filename, (PPOX_DIR,))]
        own = [f for f in frames if not (f.filename.startswith("<") or _in(f.filename, LIBRARY_DIRS))]
        return "".join(traceback.format_list(own or frames[-1:])) + traceback.format_exception_only(self.error)[-1]


PPOX_DIR = str(Path(__file__).resolve().parent)
LIBRARY_DIRS = tuple(
    {str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def _in(filename: str, folders: tuple[str, ...]) -> bool:
    """Whether the file ``filename`` lies in one of ``folders`` (a name like '<string>' lies in none)."""
    path = str(Path(filename).resolve())
    return not filename.startswith("<") and any(path.startswith(folder + "/") for folder in folders)


def as_users(error: Exception, where: str) -> Exception:
    """``error`` as a UserCodeError of ``where`` (e.g. "the env CartPole-v1"), unless it is ppox's own: one of
    ppox's errors, or raised in ppox's files."""
    if isinstance(error, (ConfigError, CheckpointError, RunWriteError, UserCodeError)):
        return error
    innermost = traceback.extract_tb(error.__traceback__)[-1:]
    if innermost and _in(innermost[0].filename, (PPOX_DIR,)):
        return error
    return UserCodeError(where, error)


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
