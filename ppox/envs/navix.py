"""navix's MiniGrid worlds in JAX (pip install "ppox[navix]"), on the fused driver: the pure JAX env protocol of
``ppox.envs.jax_protocol`` over navix's ``reset(key)`` / ``step(timestep, action)``. Observations are navix's
default symbolic grid (as float32); a step of navix's own time limit is truncated, reaching the goal terminates.
"""

from __future__ import annotations

import jax.numpy as jnp
import navix

from ppox.envs.jax_protocol import as_gymnax
from ppox.errors import ConfigError


class NavixWorld:
    """One navix env in the pure protocol; the state is navix's Timestep."""

    def __init__(self, env):
        self.env = env
        self.num_actions = int(env.action_space.maximum) + 1
        self.max_episode_steps = int(env.max_steps)

    def reset(self, key):
        timestep = self.env.reset(key)
        return self.observe(timestep), timestep

    def step(self, key, timestep, action):
        timestep = self.env.step(timestep, action)
        return (
            self.observe(timestep),
            timestep,
            timestep.reward,
            timestep.is_termination(),
            timestep.is_truncation(),
        )

    def observe(self, timestep):
        return jnp.asarray(timestep.observation, jnp.float32)


def make(env_id: str):
    """(env, params) of a navix id, gymnax-style: the family's fused maker."""
    if env_id not in navix.registry():
        raise ConfigError(f"--env {env_id}: not a navix id; `ppox envs` lists them")
    return as_gymnax(NavixWorld(navix.make(env_id)), f"--env {env_id}")
