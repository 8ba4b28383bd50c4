"""Action repeat (``--action-repeat K``): each action of the policy held for K steps of a gymnax-style JAX env.

One step of the wrapped env is up to K steps of the env: r = sum of the K rewards, stopping early where an
episode terminates or reaches its time limit (the later steps are not taken, and add nothing). The env's own
step counter still counts its steps, so a time limit stays in env steps (Brax's EpisodeWrapper: 1000 steps
with action_repeat 4 are 250 of the policy's).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


class ActionRepeat:
    """A gymnax-style env whose ``step_env`` repeats the action ``repeat`` times (see the module docstring)."""

    def __init__(self, env, repeat: int):
        self.env, self.repeat = env, int(repeat)

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset_env(self, key, params):
        return self.env.reset_env(key, params)

    def reset(self, key, params=None):
        return self.env.reset_env(key, self.env.default_params if params is None else params)

    def step_env(self, key, state, action, params):
        """(obs, state, reward summed over the repeats, terminated, info) of up to ``repeat`` env steps."""
        keys = jax.random.split(key, self.repeat)
        obs, state, reward, terminated, info = self.env.step_env(keys[0], state, action, params)
        terminated = jnp.asarray(terminated, bool)
        stopped = terminated | jnp.asarray(self.env.is_truncated(state, params), bool)

        def body(carry, step_key):
            obs, state, total, terminated, stopped, info = carry
            new = self.env.step_env(step_key, state, action, params)
            keep = jnp.logical_not(stopped)
            obs, state, info = jax.tree_util.tree_map(
                lambda n, o: jnp.where(keep, n, o), (new[0], new[1], new[4]), (obs, state, info)
            )
            ended = keep & jnp.asarray(new[3], bool)
            total = total + jnp.where(keep, new[2], 0.0)
            stopped = stopped | ended | jnp.asarray(self.env.is_truncated(state, params), bool)
            return (obs, state, total, terminated | ended, stopped, info), None

        carry = (obs, state, jnp.asarray(reward, jnp.float32), terminated, stopped, info)
        (obs, state, reward, terminated, _, info), _ = jax.lax.scan(body, carry, keys[1:])
        return obs, state, reward, terminated, info


def with_action_repeat(env, repeat: int):
    """``env`` with each action held ``repeat`` env steps (itself where ``repeat`` is 1)."""
    return env if repeat == 1 else ActionRepeat(env, repeat)
