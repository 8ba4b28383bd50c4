"""What a sweep or a study searches: Config fields given a comma list of values or a range, the rest fixed.

On the command line each ``--field-name`` takes one value (fixed), a comma list ``a,b,c`` (swept), or a
range ``low:high`` (sampled: log-uniform when 0 < low, else uniform; integers rounded). ``--grid`` runs
the full product of the lists; ``--random N`` draws N combinations. Tuples (``--hidden-sizes``) are
written ``64x64``; None (an option off) ``none``; booleans ``true``/``false``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import types
import typing
from typing import Any

import numpy as np

from ppox.config.config import Config
from ppox.errors import ConfigError, closest

FIELDS = {f.name: f for f in dataclasses.fields(Config)}
HINTS = typing.get_type_hints(Config)
NOT_SWEPT = (
    "seeds",
    "seed",
    "run_dir",
    "run_name",
    "save",
    "progress",
    "tensorboard",
    "track",
    "stop_at_return",
    "init_from",
    "distributed",
)


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept field: a list of values, or a range [low, high] to sample from."""

    name: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def log(self) -> bool:
        return self.low is not None and self.low > 0

    def to_json(self) -> dict:
        return {"name": self.name, "values": list(self.values), "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: Any) -> Axis:
        """The Axis of ``to_json``'s object; ConfigError (one line) if it is not one that a sweep or tune writes."""
        if not (isinstance(data, dict) and {"name", "values", "low", "high"} <= set(data)):
            raise ConfigError("its axes are no objects with name, values, low and high")
        name, values, low, high = data["name"], data["values"], data["low"], data["high"]
        if not (isinstance(name, str) and name in FIELDS and name not in NOT_SWEPT + ("env", "driver")):
            raise ConfigError(f"the axis {str(name)[:40]!r} is no field a sweep varies")
        listed = isinstance(values, list) and bool(values) and all(map(is_json_value, values)) and low is None is high
        if not (listed or (values == [] and is_number(low) and is_number(high) and low < high)):
            raise ConfigError(f"the axis {name!r} has neither a list of values nor a range low < high")
        return cls(name, tuple(tuple(v) if isinstance(v, list) else v for v in values), low, high)


@dataclasses.dataclass(frozen=True)
class Space:
    """The base config (the env's preset with the fixed flags) and the swept axes."""

    base: Config
    axes: tuple[Axis, ...]

    def config(self, overrides: dict) -> Config:
        return self.base.replace(**overrides)


def is_number(x: Any) -> bool:
    """A finite number that a float holds, not a boolean (as JSON read back holds them)."""
    try:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    except OverflowError:  # (an integer of hundreds of digits)
        return False


def is_number_or_none(x: Any) -> bool:
    return x is None or is_number(x)


def is_json_value(x: Any) -> bool:
    """A Config field's value as JSON: none, a boolean, a number, a short string or a list of integers."""
    if isinstance(x, list):
        return all(isinstance(v, int) and is_number(v) for v in x)
    return x is None or isinstance(x, bool) or is_number(x) or (isinstance(x, str) and len(x) < 1000)


def suggest(trial, axis: Axis):
    """An Optuna trial's value for ``axis`` (``ppox tune``): a float or int range (log when 0 < low), or a
    categorical list."""
    if not axis.is_range:
        return from_choice(axis, trial.suggest_categorical(axis.name, choices(axis)))
    if isinstance(axis.low, int):
        return trial.suggest_int(axis.name, axis.low, axis.high, log=axis.log)
    return trial.suggest_float(axis.name, axis.low, axis.high, log=axis.log)


def choices(axis: Axis) -> list:
    """The values of a list axis as Optuna's categorical choices (sizes written 64x64)."""
    return ["x".join(map(str, v)) if isinstance(v, tuple) else v for v in axis.values]


def from_choice(axis: Axis, value):
    """The value of a list axis from its Optuna choice."""
    return tuple(int(x) for x in value.split("x")) if isinstance(axis.values[0], tuple) else value


def distribution(optuna, axis: Axis):
    """The Optuna distribution that ``suggest`` draws ``axis`` from."""
    if not axis.is_range:
        return optuna.distributions.CategoricalDistribution(choices(axis))
    if isinstance(axis.low, int):
        return optuna.distributions.IntDistribution(axis.low, axis.high, log=axis.log)
    return optuna.distributions.FloatDistribution(axis.low, axis.high, log=axis.log)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def convert(name: str, text: str) -> Any:
    """One value of field ``name`` from its text (ConfigError naming the flag if it is not one)."""
    hint = HINTS[name]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if text.lower() == "none" and type(None) in options:
        return None
    kind = next(o for o in options if o is not type(None))
    try:
        if kind is bool:
            return {"true": True, "false": False}[text.lower()]
        if kind is int:
            value = float(text)
            if value != int(value):
                raise ValueError
            return int(value)
        if kind is float:
            return float(text)
        if typing.get_origin(kind) is tuple:
            return tuple(int(x) for x in text.split("x"))
        return text
    except (ValueError, KeyError):
        raise ConfigError(f"{flag_name(name)}: {text!r} is not {_kind(kind)}") from None


def _kind(kind) -> str:
    if typing.get_origin(kind) is tuple:
        return "a size list such as 64x64"
    return {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "a value")


def parse_space(flags: dict[str, str], env: str | None = None) -> Space:
    """``flags``: field name -> its text. The base is the preset of the env (``env``/``flags['env']``)."""
    fixed, axes = {}, []
    for name, text in flags.items():
        if name not in FIELDS:
            hint = closest(name, FIELDS)
            raise ConfigError(
                f"{flag_name(name)} is no Config field"
                + (f"; did you mean {flag_name(hint[0])}?" if hint else " (see ppox train --help)")
            )
        swept = "," in text or _is_range(name, text)
        if swept and name in NOT_SWEPT + ("env", "driver"):
            raise ConfigError(f"{flag_name(name)} cannot be swept (give one value); sweeps set seeds with --seeds")
        if "," in text:
            axes.append(Axis(name, tuple(convert(name, t.strip()) for t in text.split(","))))
        elif _is_range(name, text):
            low, high = (convert(name, t) for t in text.split(":"))
            if not low < high:
                raise ConfigError(f"{flag_name(name)} {text}: a range low:high needs low < high")
            axes.append(Axis(name, low=low, high=high))
        else:
            fixed[name] = convert(name, text)
    env = fixed.pop("env", env) or "CartPole-v1"
    base = Config.preset(env, **fixed)
    return Space(base, tuple(axes))


def _is_range(name: str, text: str) -> bool:
    return ":" in text and name not in ("env", "ray") and all(_number(t) for t in text.split(":", 1))


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def combinations(space: Space, grid: bool, samples: int | None, seed: int = 0) -> list[dict]:
    """The overrides of every configuration: the full product (``grid``) or ``samples`` random draws. Each is
    checked (ConfigError) before any work starts."""
    if grid and samples:
        raise ConfigError("--grid and --random N exclude each other; give one")
    combos: list[dict]
    if not space.axes:
        combos = [{}]
    elif samples:
        rng = np.random.default_rng(seed)
        combos = [{axis.name: draw(axis, rng) for axis in space.axes} for _ in range(samples)]
    else:
        ranges = [flag_name(a.name) for a in space.axes if a.is_range]
        if ranges:
            raise ConfigError(
                f"{', '.join(ranges)}: a range low:high is sampled; add --random N, or give a comma "
                "list of values for --grid"
            )
        combos = [
            dict(zip([a.name for a in space.axes], values))
            for values in itertools.product(*(a.values for a in space.axes))
        ]
    for combo in combos:
        try:
            space.config(combo)
        except ConfigError as err:
            raise ConfigError(f"the configuration {describe(combo)} is invalid: {err}") from None
    return combos


def draw(axis: Axis, rng: np.random.Generator):
    """A value of ``axis``: uniform over a list; log-uniform over a positive range, else uniform."""
    if axis.low is None or axis.high is None:
        return axis.values[int(rng.integers(len(axis.values)))]
    low, high, u = axis.low, axis.high, rng.uniform()
    value = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if axis.log else low + u * (high - low)
    return int(round(value)) if isinstance(low, int) else float(f"{value:.4g}")


def describe(combo: dict) -> str:
    return " ".join(f"{flag_name(k)} {_text(v)}" for k, v in combo.items()) or "(the base configuration)"


def _text(value) -> str:
    if isinstance(value, (tuple, list)):  # (a size list; read back from JSON it is a list)
        return "x".join(map(str, value))
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
