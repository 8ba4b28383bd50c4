"""The one flag parser of the command line: tyro for the dataclass commands, ``scan`` for a command's own
options (``--name VALUE``, ``--name=VALUE`` or a switch), each declared once as an ``Option``, from which
the usage texts are built too.

Nothing heavy is imported here (tyro, ppox's modules: inside the functions), so that ``import ppox.cli``
stays light.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import io
import itertools
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload


class FlagError(Exception):
    """Flags that do not parse; the message is one line."""


def fail(command: str, message: str) -> int:
    """Print ``ppox COMMAND: error: MESSAGE`` on stderr; the exit status of bad input, 2."""
    print(f"ppox {command}: error: {message}", file=sys.stderr)
    return 2


SCIENTIFIC_INTEGER = re.compile(r"^\+?\d+(\.\d+)?[eE]\+?\d+$")


def parse_flags(cls: Any, args: list[str], prog: str, **kwargs: Any) -> Any:
    """tyro.cli, with its errors as one line (FlagError) instead of a box; ``--help`` prints as tyro does.
    Whole numbers may be written like 1e6 (tyro's int parser takes digits only)."""
    import tyro

    args = [_integer_text(a) if SCIENTIFIC_INTEGER.match(a) else a for a in args]
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=args, prog=prog, **kwargs)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        raise FlagError(_first_message(captured.getvalue(), prog)) from None


def _integer_text(text: str) -> str:
    value = decimal.Decimal(text)
    return str(int(value)) if value == value.to_integral_value() and value < 10**30 else text


def _first_message(box: str, prog: str) -> str:
    """The first message block of tyro's error box (after its title, up to its first rule), as one line."""

    def is_rule(line: str) -> bool:
        return bool(line) and set(line) <= set("-─")

    lines = [line.strip().strip("│").strip() for line in box.splitlines()]
    lines = [line for line in lines if line]
    if lines and lines[0].startswith("╭"):  # the title in the box's top border
        lines = lines[1:]
    elif len(lines) > 1 and is_rule(lines[1]):  # the title on a line of its own, then a rule
        lines = lines[2:]
    body = list(itertools.takewhile(lambda line: not is_rule(line), lines))
    return f"{' '.join(body) or 'the flags do not parse'} (see {prog} --help)"


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a command: a switch, or ``--name VALUE`` when ``value`` names its value in the usage."""

    help: str = ""
    value: str = ""  # "": a switch, which takes no value
    needs: str = "a value"  # what the error says when the value is missing
    alone: str | None = None  # the value of ``--name`` given without one (Config booleans: "true")


Lookup = Callable[[str], Option | None]
Found = dict[str, str | bool]


def scan(args: Sequence[str], lookup: Lookup) -> tuple[Found, list[str]]:
    """(the options that ``lookup`` knows: name -> value, True for a switch; the other args, in order).

    A value is ``--name=VALUE`` or the next arg when that is no ``--flag``; a missing one is a FlagError.
    ``--switch=VALUE`` is not the switch (it stays with the other args). The last of a repeated option wins.
    """
    found: Found = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg, i = args[i], i + 1
        flag, has_value, value = arg.partition("=")
        option = lookup(flag[2:]) if flag.startswith("--") else None
        if option is None or (has_value and not option.value):
            rest.append(arg)
        elif not option.value:
            found[flag[2:]] = True
        elif has_value:
            found[flag[2:]] = value
        elif i < len(args) and not args[i].startswith("--"):
            found[flag[2:]], i = args[i], i + 1
        elif option.alone is not None:
            found[flag[2:]] = option.alone
        else:
            raise FlagError(f"{flag} needs {option.needs}")
    return found, rest


def value_of(args: Sequence[str], name: str) -> str | None:
    """The value of ``--name`` in ``args`` (its first), None where it has none; the args stay as they are."""
    for i, arg in enumerate(args):
        flag, has_value, value = arg.partition("=")
        if flag == "--" + name:
            return value if has_value else (args[i + 1] if i + 1 < len(args) else None)
    return None


def given(args: Sequence[str], name: str) -> int:
    """How many times ``--name`` (or ``--name=VALUE``) is among ``args``."""
    return sum(arg == "--" + name or arg.startswith(f"--{name}=") for arg in args)


@overload
def text(found: Found, name: str, default: str) -> str: ...
@overload
def text(found: Found, name: str, default: None = None) -> str | None: ...
def text(found: Found, name: str, default: str | None = None) -> str | None:
    """The value of the option ``name`` in ``found``, ``default`` where it is not given."""
    value = found.get(name, default)
    return None if value is None else str(value)


@overload
def count(found: Found, name: str, default: int, least: int = 1) -> int: ...
@overload
def count(found: Found, name: str, default: None, least: int = 1) -> int | None: ...
def count(found: Found, name: str, default: int | None, least: int = 1) -> int | None:
    """--name N as an integer >= least (ConfigError otherwise); ``default`` when it is not given."""
    from ppox.errors import ConfigError

    if name not in found:
        return default
    try:
        value = int(float(found[name]))
        if value < least or value != float(found[name]):
            raise ValueError
    except ValueError:
        raise ConfigError(f"--{name} must be an integer >= {least}, got {found[name]!r}") from None
    return value


def options_usage(options: Mapping[str, Option], width: int = 110) -> str:
    """The ``options:`` lines of a usage text: ``--name VALUE`` and the help, wrapped at ``width``."""
    return "\n".join(
        textwrap.fill(
            option.help,
            width,
            initial_indent=f"  {f'--{name} {option.value}'.strip():<20}",
            subsequent_indent=" " * 22,
        )
        for name, option in options.items()
    )


def split_flags(args: Sequence[str], own: Mapping[str, Option | bool]) -> tuple[dict[str, str], Found]:
    """(Config flags as field -> text, the command's own options) of ppox sweep's or tune's args. ``own``:
    the command's options (or whether each takes a value). A Config boolean alone is true, ``--no-name`` false.
    """
    from ppox.experiments.sweep_space import HINTS

    ours = {name: _option(spec) for name, spec in own.items()}

    def lookup(name: str) -> Option:
        field = name.replace("-", "_")
        if name in ours:
            return ours[name]
        if field.startswith("no_") and HINTS.get(field[3:]) is bool:
            return Option()  # a switch: the boolean false
        return Option(value="VALUE", alone="true" if HINTS.get(field) is bool else None)

    found, rest = scan(args, lookup)
    if rest:
        raise FlagError(f"unexpected {rest[0]!r}: options are --name value (e.g. --learning-rate 1e-4,3e-4)")
    fields = dict(_field_text(name, value) for name, value in found.items() if name not in ours)
    return fields, {name: value for name, value in found.items() if name in ours}


def _option(spec: Option | bool) -> Option:
    return spec if isinstance(spec, Option) else Option(value="VALUE" if spec else "")


def _field_text(name: str, value: str | bool) -> tuple[str, str]:
    """(field, text) of a Config flag; ``--no-name`` (a switch, True) is the field ``name``, false."""
    field = name.replace("-", "_")
    return (field[3:], "false") if value is True else (field, str(value))
