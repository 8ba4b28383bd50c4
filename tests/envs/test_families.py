"""The env families: known ids resolve to the right family, and a family registered at test time (a tiny
JAX env defined here, a Gymnasium one from tests.toy_envs) is trained, evaluated, checked and listed with
no other edit."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import spaces

import ppox
from ppox.drivers.fused_program import build
from ppox.envs import families
from ppox.envs.families import Family, Section, family_for, is_atari_id, listing, load_maker, make_host_envs
from ppox.envs.gym_envs import make_vector_env
from ppox.envs.jax_envs import make_jax_env
from ppox.envs.registry import check_env_id, driver_for, is_jax_env
from ppox.envs.spec import spec_from_action_space
from ppox.errors import ConfigError
from tests import toy_envs
from tests.helpers import QUICK


@struct.dataclass
class CoinState:
    side: jax.Array
    time: jax.Array


@struct.dataclass
class CoinParams:
    max_steps_in_episode: int = 8


class CoinGuess:
    """Shows a coin's side (one-hot); naming it earns 1. Each episode lasts max_steps_in_episode steps."""

    default_params = CoinParams()

    def reset_env(self, key, params):
        state = CoinState(side=jax.random.bernoulli(key).astype(jnp.int32), time=jnp.zeros((), jnp.int32))
        return jax.nn.one_hot(state.side, 2), state

    def reset(self, key, params=None):
        return self.reset_env(key, params or self.default_params)

    def step_env(self, key, state, action, params):
        reward = (action == state.side).astype(jnp.float32)
        state = CoinState(side=jax.random.bernoulli(key).astype(jnp.int32), time=state.time + 1)
        return jax.nn.one_hot(state.side, 2), state, reward, jnp.zeros((), bool), {}

    def is_truncated(self, state, params):
        return state.time >= params.max_steps_in_episode

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


def make_coin(env_id):
    """The coin family's fused maker."""
    return CoinGuess(), CoinParams()


def make_toys(env, num_envs, vec, max_episode_steps=None, hide_obs=()):
    """The toy family's host maker: Countdown envs, whatever the id."""
    return make_vector_env(toy_envs.countdown, num_envs, vec, max_episode_steps, hide_obs)


def make_toy(env, video_folder=None):
    return toy_envs.countdown()


class FakePool:
    """A pool family's fused maker (as EnvPoolXla): one batch of envs, stepped from the compiled program."""

    def __init__(self, env_id, num_envs, max_episode_steps, seed):
        self.made_with = (env_id, num_envs, max_episode_steps, seed)
        self.spec = spec_from_action_space((84, 84, 4), gym.spaces.Discrete(6))


COIN = Family("coin", lambda env_id: env_id.startswith("Coin-"), __name__, fused="make_coin",
              sections=(Section("coin guessing (fused driver)", ("Coin-v0",)),))
TOYS = Family("toys", lambda env_id: env_id.startswith("Toy-"), __name__, host="make_toys", single="make_toy",
              sections=(Section("toys (host driver)", ("Toy-v0",)),))


@pytest.fixture
def registered(monkeypatch):
    """COIN and TOYS first in FAMILIES, for one test."""
    monkeypatch.setattr(families, "FAMILIES", (COIN, TOYS) + families.FAMILIES)


@pytest.mark.parametrize("env_id, maker, name", [
    ("CartPole-v1", "auto", "gymnax"),
    ("CartPole-v1", "host", "gymnasium"),  # also a Gymnasium id: --driver host runs Gymnasium's
    ("Breakout-MinAtar", "auto", "gymnax"),
    ("MemoryChain-bsuite", "auto", "gymnax"),
    ("TicTacToe-pgx", "auto", "tasks"),
    ("CartPoleNoVel-v1", "fused", "tasks"),
    ("ALE/Breakout-v5", "auto", "atari"),
    ("ALE/Breakout-v5", "fused", "envpool"),  # --driver fused --vec envpool
    ("BreakoutNoFrameskip-v4", "single", "atari"),
    ("HalfCheetah-v5", "auto", "gymnasium"),
    ("tests.toy_envs:Countdown", "auto", "gymnasium"),
    ("tests.toy_envs:Countdown", "fused", None),
    ("Breakout-MinAtar", "single", None),  # JAX-only: evaluated in the jitted loop
])
def test_the_first_family_that_claims_an_id_makes_it(env_id, maker, name):
    assert getattr(family_for(env_id, maker), "name", None) == name


def test_driver_choice_follows_the_families():
    assert driver_for("CartPole-v1") == "fused" and driver_for("CartPole-v1", "host") == "host"
    assert driver_for("ALE/Pong-v5") == "host" and driver_for("ALE/Pong-v5", "fused") == "fused"
    assert driver_for("mod:Class") == "host" and driver_for("HalfCheetah-v5", "fused") == "host"
    assert is_jax_env("TicTacToe-pgx") and not is_jax_env("ALE/Pong-v5")


def test_env_objects_and_unclaimed_ids_go_to_the_last_family():
    venv = make_host_envs(toy_envs.countdown, 2, "sync")
    assert venv.num_envs == 2
    venv.close()
    assert family_for(toy_envs.countdown) is None and families.FAMILIES[-1].name == "gymnasium"


def test_the_listing_has_the_sections_of_ppox_envs():
    sections = {section.title.split(" (")[0]: section for section in listing()}
    titles = list(sections)  # curated sections in family order (families added later fall in between), catalogues last
    curated = ["JAX-native", "memory tasks", "navix gridworlds", "Jumanji", "XLand-MiniGrid", "Atari", "PettingZoo"]
    assert [t for t in titles if t in curated] == curated and titles[-2:] == ["other gymnax ids", "Gymnasium ids"]
    assert "CartPole-v1" in sections["JAX-native"].ids and "ALE/Pong-v5" in sections["Atari"].ids
    assert "MemoryChain-bsuite" in sections["memory tasks"].ids
    assert "MemoryChain-bsuite" not in sections["other gymnax ids"].ids
    assert sections["Atari"].extra == "atari" and not sections["Gymnasium ids"].curated


def test_a_missing_module_names_the_extra(monkeypatch):
    family = Family("future", lambda env_id: True, "json", fused="loads", extra="future", needs=("no_such_module",))
    with pytest.raises(ConfigError, match=r'pip install "ppox\[future\]"'):
        load_maker(family, "fused")
    assert load_maker(Family("json", lambda env_id: True, "json", fused="loads"), "fused")("1") == 1


def test_a_jax_family_added_at_run_time_is_checked_listed_trained_and_evaluated(registered):
    assert driver_for("Coin-v0") == "fused" and is_jax_env("Coin-v0")
    check_env_id("Coin-v0")
    assert ("coin guessing (fused driver)", ("Coin-v0",)) in [(s.title, s.ids) for s in listing()]
    assert make_jax_env("Coin-v0", max_episode_steps=4)[1].max_steps_in_episode == 4
    result = ppox.train(ppox.Config(env="Coin-v0", **QUICK, seeds=2, save=False))  # two seeds: fused only
    assert result.spec.obs_shape == (2,) and result.metrics["policy_loss"].shape[0] == 2
    returns = ppox.evaluate(result.policy(), episodes=3)  # (the jitted loop: the family makes no single env)
    assert returns.shape == (3,) and np.all((returns >= 0) & (returns <= 8))


def test_a_host_family_added_at_run_time_is_checked_trained_and_evaluated(registered):
    assert driver_for("Toy-v0") == "host" and not is_jax_env("Toy-v0")
    check_env_id("Toy-v0")
    result = ppox.train(ppox.Config(env="Toy-v0", **QUICK, save=False))
    assert result.spec.obs_shape == (1,) and result.config.env == "Toy-v0"
    assert ppox.evaluate(result.policy(), episodes=2).shape == (2,)


def test_a_pool_family_gives_the_fused_program_its_batch_of_envs(monkeypatch):
    pool_family = Family("fakepool", is_atari_id, __name__, fused="FakePool", pool=True, on_request=True)
    monkeypatch.setattr(families, "FAMILIES", (pool_family,) + families.FAMILIES)
    config = ppox.Config(env="ALE/Pong-v5", driver="fused", vec="envpool", num_envs=2, num_steps=8,
                         total_timesteps=16, save=False, progress=False)
    fused = build(config, pool_seed=7)
    assert fused.env is None and fused.pool.made_with == ("ALE/Pong-v5", 2, None, 7)
    assert driver_for("ALE/Pong-v5") == "host" and not is_jax_env("ALE/Pong-v5")  # only --driver fused asks


def test_a_fused_run_of_an_id_no_jax_family_claims_says_so():
    with pytest.raises(ConfigError, match="not a JAX-native env"):
        make_jax_env("HalfCheetah-v5")
