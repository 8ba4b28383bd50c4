"""Which config fields a compiled program depends on: the traced fields (declared with ``traced``), and the
keys under which runs share one compilation (``program_config``, ``static_config``).

It reads a config through its dataclass fields only, so ``ppox.config.config`` builds on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol, Self, TypeVar

TRACED = "traced"  # the field metadata key that marks a traced field; its value is the field's fixed value


class _Config(Protocol):
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def replace(self, **changes: Any) -> Self: ...


C = TypeVar("C", bound=_Config)


def traced(default: float | None, fixed: float | None = None) -> Any:
    """A config field that shapes no array and no loop: the fused program takes it as a traced argument
    (a ``Hyper``), so that one compilation serves every value; None (off) stays static, it removes code.

    Args:
        default: the field's default.
        fixed: its value in a compile key (``static_config``); default: ``default`` (give one where that is
            None, so that an explicit value compiles like any other).

    Returns:
        A ``dataclasses.field`` marked in its metadata.

    Raises:
        ValueError: if both ``default`` and ``fixed`` are None.
    """
    if default is None and fixed is None:
        raise ValueError("a traced field whose default is None (off) needs a fixed value for its compile key")
    return dataclasses.field(default=default, metadata={TRACED: default if fixed is None else fixed})


def traced_fields(config: _Config | type[_Config]) -> tuple[str, ...]:
    """The names of the fields declared with ``traced``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(config) if TRACED in f.metadata)


def program_config(config: C) -> C:
    """The config with the fields that do not change the compiled program set to fixed values: runs that
    differ only in those (seed, output, cadence) share one compilation. ``distributed`` stays: it changes
    how the program is laid out."""
    return config.replace(
        seed=0,
        run_dir="runs",
        run_name=None,
        save=False,
        tensorboard=False,
        track=(),
        stop_at_return=None,
        init_from=None,
        progress=False,
        checkpoint_every=0,
        keep_checkpoints=1,
        eval_episodes=0,
        ray=None,
        workers=1,
    )


def static_config(config: C) -> C:
    """``program_config`` with the traced fields also set to fixed values (None, where a field is off, stays
    None: that changes the program): the key of a program that takes its hyperparameters as an argument."""
    fixed = {
        f.name: None if getattr(config, f.name) is None else f.metadata[TRACED]
        for f in dataclasses.fields(config)
        if TRACED in f.metadata
    }
    return program_config(config).replace(**fixed)
