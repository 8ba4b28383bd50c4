"""Config: validation messages, presets, JSON round trip, and every field being used."""

import dataclasses
import re
from pathlib import Path

import pytest

from ppox.config.config import PRESETS, Config, ConfigError
from tests.helpers import ROOT

PPOX = ROOT / "ppox"


def test_defaults_are_valid_and_cleanrl_cartpole():
    c = Config()
    assert (c.num_envs, c.num_steps, c.update_epochs, c.num_minibatches) == (4, 128, 4, 4)
    assert c.learning_rate == 2.5e-4 and c.anneal_lr and c.adam_eps == 1e-5
    assert (c.batch_size, c.minibatch_size, c.num_updates) == (512, 128, 976)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"num_minibatches": 3}, "does not divide into --num-minibatches 3"),
        ({"learning_rate": 0.0}, "--learning-rate must be a positive number"),
        ({"learning_rate": -1e-3}, "--learning-rate must be a positive number"),
        ({"learning_rate": float("nan")}, "--learning-rate must be a positive number"),
        ({"gamma": 1.5}, "--gamma must lie in [0, 1]"),
        ({"gae_lambda": -0.1}, "--gae-lambda must lie in [0, 1]"),
        ({"num_envs": 0}, "--num-envs must be a positive integer"),
        ({"seeds": -2}, "--seeds must be a positive integer"),
        ({"total_timesteps": 100}, "is less than one rollout"),
        ({"clip_coef": 0.0}, "--clip-coef must be a positive number or None"),
        ({"max_grad_norm": -1.0}, "--max-grad-norm must be a positive number or None"),
        ({"ent_coef": -0.01}, "--ent-coef must be a number >= 0"),
        ({"hidden_sizes": ()}, "--hidden-sizes must be one or more positive integers"),
        ({"hidden_sizes": (64, 0)}, "--hidden-sizes must be one or more positive integers"),
        ({"activation": "gelu"}, "--activation must be tanh or relu"),
        ({"run_name": "a/b"}, "--run-name must be a plain folder name"),
        ({"env": "Cartpole-v0"}, "did you mean CartPole-v0 or CartPole-v1"),
        ({"env": "acrobot"}, "did you mean Acrobot-v1"),
    ],
)
def test_invalid_values_say_what_to_change(changes, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Config(**changes)


def test_divisibility_error_suggests_a_divisor():
    with pytest.raises(ConfigError, match=r"e\.g\. (2|4)\)"):
        Config(num_minibatches=3)


def test_none_switches_are_valid():
    c = Config(clip_coef=None, vf_clip_coef=None, max_grad_norm=None, target_kl=None)
    assert c.clip_coef is None


def test_presets_are_valid_and_overridable():
    for env in PRESETS:
        c = Config.preset(env)
        assert c.env == env
    c = Config.preset("Pendulum-v1", learning_rate=1e-4)
    assert c.learning_rate == 1e-4 and c.gamma == PRESETS["Pendulum-v1"]["gamma"]


def test_json_round_trip():
    c = Config.preset("Pendulum-v1", hidden_sizes=(32, 16), clip_coef=None)
    import json

    assert Config.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ConfigError, match="unknown config field"):
        Config.from_dict({"nonsense": 1})


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().gamma = 0.5


def test_every_field_is_used():
    """Each config field is read as config.FIELD (or self.FIELD in a derived size, or hyper.FIELD for the traced
    hyperparameters, which reach the program as a Hyper) somewhere in the package: no field is parsed and then
    ignored. Validation reads fields as c.FIELD, which does not count."""
    sources = "\n".join(p.read_text() for p in PPOX.rglob("*.py"))
    unused = [f.name for f in dataclasses.fields(Config)
              if not re.search(rf"(config|self|hyper)\.{f.name}\b", sources)]
    assert unused == []


def test_divisor_suggestion_is_instant_for_huge_batches():
    """Found by the CLI fuzz test: the suggestion used to enumerate every divisor of the batch size."""
    import time

    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"does not divide into --num-minibatches 7; .* \(e\.g\. \d+\)"):
        Config(num_envs=10**12, num_steps=10**12 + 1, num_minibatches=7, total_timesteps=10**25)
    assert time.perf_counter() - start < 2.0
