"""InstaDeep's Jumanji puzzles and games in JAX (pip install "ppox[jumanji]"), on the fused driver: the pure JAX
env protocol of ``ppox.envs.jax_protocol`` over Jumanji's ``reset(key)`` / ``step(state, action)``.

ids are "Jumanji-" + a jumanji id (Jumanji-Game2048-v1). The observation (a NamedTuple of arrays) is flattened,
its ``action_mask`` left out: that is the legal-action mask, which ppox's masked PPO applies (``action_mask``).
A grid of actions (Minesweeper's row and column) is one Discrete action over the cells, its mask flattened.
A last step with discount 0 terminates; one with a discount (a time limit) is truncated.
"""

from __future__ import annotations

import jax.numpy as jnp
import jumanji
import numpy as np

from ppox.envs.jax_protocol import as_gymnax
from ppox.errors import ConfigError

PREFIX = "Jumanji-"


class JumanjiTask:
    """One Jumanji env in the pure protocol; the state is (Jumanji's state, its latest timestep)."""

    def __init__(self, env):
        self.env = env
        spec = env.action_spec
        self.sizes = tuple(int(n) for n in np.ravel(getattr(spec, "num_values", 0)))
        if not self.sizes or min(self.sizes) < 1:
            raise ConfigError(f"{type(env).__name__}: ppox trains Jumanji's discrete actions, not {spec!r}")
        self.num_actions = int(np.prod(self.sizes))
        limit = getattr(env, "time_limit", None)
        self.max_episode_steps = int(limit) if limit else None

    def reset(self, key):
        state, timestep = self.env.reset(key)
        return self.observe(timestep), (state, timestep)

    def step(self, key, state, action):
        index = jnp.stack(jnp.unravel_index(action, self.sizes)) if len(self.sizes) > 1 else action
        state, timestep = self.env.step(state[0], index)
        last = timestep.last()
        ended = jnp.asarray(timestep.discount) == 0
        return self.observe(timestep), (state, timestep), timestep.reward, last & ended, last & ~ended

    def observe(self, timestep):
        fields = timestep.observation._asdict()
        return {name: value for name, value in fields.items() if name != "action_mask"}

    def action_mask(self, state):
        return jnp.ravel(state[1].observation.action_mask)


def make(env_id: str):
    """(env, params) of "Jumanji-" + a jumanji id, gymnax-style: the family's fused maker."""
    name = env_id.removeprefix(PREFIX)
    if name not in jumanji.registered_environments():
        raise ConfigError(f"--env {env_id}: not a Jumanji id (Jumanji- + one of jumanji.registered_environments())")
    return as_gymnax(JumanjiTask(jumanji.make(name)), f"--env {env_id}")
