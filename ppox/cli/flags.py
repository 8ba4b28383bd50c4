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
from typing import Any, get_args, get_origin, get_type_hints, overload


class FlagError(Exception):
    """Flags that do not parse; the message is one line."""


def fail(command: str, message: str) -> int:
    """Print ``ppox COMMAND: error: MESSAGE`` on stderr; the exit status of bad input, 2."""
    print(f"ppox {command}: error: {message}", file=sys.stderr)
    return 2


COUNT_LIMIT = 10**18  # (more than any count of runs, seeds or trials)
SCIENTIFIC_INTEGER = re.compile(r"^\+?\d+(\.\d+)?[eE]\+?\d+$")


def parse_flags(cls: Any, args: list[str], prog: str, **kwargs: Any) -> Any:
    """tyro.cli, with its errors as one line (FlagError) instead of a box; ``--help`` prints as tyro does.
    Whole numbers may be written like 1e6 (tyro's int parser takes digits only); an integer flag given inf,
    nan, a fraction or a number of 1e40 or more is a FlagError naming the flag (the config says how large a
    number each field takes)."""
    import tyro

    args = [_integer_text(a) if SCIENTIFIC_INTEGER.match(a) else a for a in args]
    _check_integers(args, _integer_flags(cls))
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=args, prog=prog, **kwargs)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        raise FlagError(_first_message(captured.getvalue(), prog)) from None


def _integer_text(text: str) -> str:
    """1e6 as 1000000 where it is a whole number below 1e40; otherwise the text as it is."""
    try:
        value = decimal.Decimal(text)
        return str(int(value)) if value < 10**40 and value == value.to_integral_value() else text
    except ArithmeticError:  # (decimal's InvalidOperation: an exponent past what decimal holds)
        return text


def _integer_flags(cls: Any) -> dict[str, bool]:
    """``--flag`` -> whether it takes several values, for each integer field of the dataclass ``cls``."""
    if not dataclasses.is_dataclass(cls):
        return {}
    hints = get_type_hints(cls)
    return {
        f"--{field.name.replace('_', '-')}": get_origin(hints[field.name]) is tuple
        for field in dataclasses.fields(cls)
        if hints[field.name] is int or int in get_args(hints[field.name])  # int, int | None, tuple[int, ...]
    }


def _check_integers(args: Sequence[str], flags: Mapping[str, bool]) -> None:
    """FlagError where a value of an integer flag is a number but not a whole one below 1e40 (inf, nan, 2.5,
    1e99, thousands of digits); what is no number at all is left to tyro's message."""
    flag, left = "", 0  # the integer flag whose values come next, and how many (-1: any number)
    for arg in args:
        if arg.startswith("--"):
            flag, has_value, value = arg.partition("=")
            left = (-1 if flags[flag] else 1) if flag in flags else 0
            if has_value and left:
                _check_whole(flag, value)
            left = 0 if has_value else left
        elif left:
            _check_whole(flag, arg)
            left -= 1


def _check_whole(flag: str, text: str) -> None:
    digits = text.strip().lstrip("+-")
    if len(digits) > 40:  # (Python reads at most 4300 digits; no count of ppox's has 40)
        if digits.isdigit():
            raise FlagError(f"{flag} must be below 1e40, got a number of {len(digits)} digits")
        return
    try:
        value = decimal.Decimal(text)
        whole = value.is_finite() and value == value.to_integral_value()
    except ArithmeticError:  # not a number (tyro says so), or one past decimal's range
        if not SCIENTIFIC_INTEGER.match(digits):
            return
        whole, value = True, decimal.Decimal(10**40)
    if not whole:
        raise FlagError(f"{flag} must be a whole number (such as 4 or 1e6), got {text!r}")
    if abs(value) >= 10**40:
        raise FlagError(f"{flag} must be below 1e40, got {text!r}")


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
    """--name N (written 4 or 4e3) as an integer >= least; ``default`` when it is not given. ConfigError (one
    line) otherwise: a fraction, inf, nan, 1e18 or more, or not a number."""
    from ppox.errors import ConfigError

    if name not in found:
        return default
    written = str(found[name]).strip()
    shown = repr(written) if len(written) <= 40 else f"{written[:20]!r}... ({len(written)} characters)"
    try:
        value = decimal.Decimal(written) if len(written) <= 40 else decimal.Decimal("nan")
        if not value.is_finite() or value != value.to_integral_value() or value < least:
            raise ValueError
    except (ValueError, ArithmeticError):  # (decimal's InvalidOperation is an ArithmeticError)
        raise ConfigError(f"--{name} must be an integer >= {least}, got {shown}") from None
    if value >= COUNT_LIMIT:
        raise ConfigError(f"--{name} must be an integer below 1e18, got {shown}")
    return int(value)


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
