"""What is declared on a Config field: tracing (``traced``), and a Literal's choices (validation reads them)."""

import dataclasses
import typing

import pytest

from ppox.config import TRACED_FIELDS, Config, ConfigError, static_config
from ppox.config.compile_keys import traced, traced_fields
from ppox.core import ADVANTAGE_ESTIMATORS

HINTS = typing.get_type_hints(Config)


def test_traced_fields_are_the_fields_declared_traced():
    declared = [f.name for f in dataclasses.fields(Config) if "traced" in f.metadata]
    assert TRACED_FIELDS == tuple(declared) == traced_fields(Config)
    assert TRACED_FIELDS == ("learning_rate", "gamma", "gae_lambda", "clip_coef", "vf_clip_coef", "ent_coef",
                             "vf_coef", "max_grad_norm", "target_kl")
    assert all(float in typing.get_args(HINTS[name]) or HINTS[name] is float for name in TRACED_FIELDS)


def test_static_config_fixes_traced_values_and_keeps_off_as_none():
    far = Config(learning_rate=1e-3, gamma=0.9, target_kl=0.05, clip_coef=0.1, seed=3, run_name="x")
    key = static_config(far)
    assert key == static_config(Config()).replace(target_kl=0.01)  # a value for target_kl: its fixed one
    assert (key.learning_rate, key.gamma, key.clip_coef, key.target_kl, key.seed) == (2.5e-4, 0.99, 0.2, 0.01, 0)
    assert static_config(far.replace(clip_coef=None)).clip_coef is None


def test_a_traced_field_that_may_be_off_needs_a_fixed_value():
    with pytest.raises(ValueError, match="needs a fixed value"):
        traced(None)
    assert traced(None, fixed=0.5).metadata["traced"] == 0.5


def test_advantage_choices_are_the_registry():
    assert typing.get_args(HINTS["advantage"]) == tuple(ADVANTAGE_ESTIMATORS)
    for name in ADVANTAGE_ESTIMATORS:
        assert Config(advantage=name).advantage == name
    *others, last = ADVANTAGE_ESTIMATORS
    with pytest.raises(ConfigError, match=f"--advantage must be {', '.join(others)} or {last}, got 'lambda'"):
        Config(advantage="lambda")


@pytest.mark.parametrize("name", [n for n, hint in HINTS.items() if typing.get_origin(hint) is typing.Literal])
def test_every_literal_field_refuses_a_value_outside_its_choices(name):
    choices = typing.get_args(HINTS[name])
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} must be .*{choices[-1]}, got 'nope'"):
        Config(**{name: "nope"})
