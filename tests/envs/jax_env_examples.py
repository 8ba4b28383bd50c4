"""Two tiny JAX envs written as a user would (docs/jax-envs.md): 'say what you see' in the pure protocol and in
gymnax's API. Each step shows one of two symbols; the action that names it earns 1. Ten steps an episode: a
random policy returns 5 on average, a perfect one 10."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

EPISODE = 10


class SayWhatYouSee:
    """The pure protocol: reset(key), step(key, state, action), num_actions."""

    num_actions = 2

    def reset(self, key):
        symbol = jax.random.randint(key, (), 0, 2)
        return {"symbol": jax.nn.one_hot(symbol, 2), "time": jnp.zeros(1)}, (symbol, jnp.int32(0))

    def step(self, key, state, action):
        symbol, time = state
        reward = (action == symbol).astype(jnp.float32)
        symbol, time = jax.random.randint(key, (), 0, 2), time + 1
        obs = {"symbol": jax.nn.one_hot(symbol, 2), "time": jnp.full(1, time / EPISODE)}
        return obs, (symbol, time), reward, time >= EPISODE, jnp.bool_(False)


def make():
    """An entry point's maker: --env tests.envs.jax_env_examples:make."""
    return SayWhatYouSee()


@struct.dataclass
class State:
    symbol: jax.Array
    time: jax.Array


@struct.dataclass
class Params:
    max_steps_in_episode: int = EPISODE


class GymnaxSayWhatYouSee:
    """The same task in gymnax's API; its time limit is params.max_steps_in_episode (no is_truncated of its own)."""

    @property
    def default_params(self):
        return Params()

    def reset_env(self, key, params):
        state = State(jax.random.randint(key, (), 0, 2), jnp.int32(0))
        return jax.nn.one_hot(state.symbol, 2), state

    def step_env(self, key, state, action, params):
        reward = (action == state.symbol).astype(jnp.float32)
        state = State(jax.random.randint(key, (), 0, 2), state.time + 1)
        return jax.nn.one_hot(state.symbol, 2), state, reward, jnp.bool_(False), {}

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


class NoStep:
    """A pure env without its step."""

    num_actions = 2

    def reset(self, key):
        return jnp.zeros(2), 0
