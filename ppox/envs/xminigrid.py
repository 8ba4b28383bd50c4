"""XLand-MiniGrid's gridworlds in JAX (pip install "ppox[xminigrid]"), on the fused driver: the pure JAX env
protocol of ``ppox.envs.jax_protocol`` over xminigrid's ``reset(params, key)`` / ``step(params, timestep,
action)``. ids are "XLand-" + an xminigrid id (XLand-MiniGrid-Empty-6x6). Its XLand ids (XLand-MiniGrid-R1-9x9)
are refused in one line: their tasks are rulesets of xminigrid's benchmarks, downloaded, which ppox does not load.

The observation is the agent's view (tile and colour per cell) as float32; reaching the goal terminates with
xminigrid's reward, 1 - 0.9 * steps / max_steps; its time limit truncates.
"""

from __future__ import annotations

import jax.numpy as jnp
import xminigrid

from ppox.envs.jax_protocol import as_gymnax
from ppox.errors import ConfigError

PREFIX = "XLand-"


class XMiniGridTask:
    """One xminigrid env and its parameters in the pure protocol; the state is xminigrid's TimeStep."""

    def __init__(self, env, params):
        self.env, self.params = env, params
        self.num_actions = int(env.num_actions(params))
        self.max_episode_steps = int(params.max_steps)

    def reset(self, key):
        timestep = self.env.reset(self.params, key)
        return jnp.asarray(timestep.observation, jnp.float32), timestep

    def step(self, key, timestep, action):
        timestep = self.env.step(self.params, timestep, action)
        last = timestep.last()
        ended = timestep.discount == 0
        return jnp.asarray(timestep.observation, jnp.float32), timestep, timestep.reward, last & ended, last & ~ended


def make(env_id: str):
    """(env, params) of "XLand-" + an xminigrid id, gymnax-style: the family's fused maker."""
    ids = xminigrid.registered_environments()
    name = env_id if env_id in ids else env_id.removeprefix(PREFIX)
    if name not in ids:
        raise ConfigError(f"--env {env_id}: not an xminigrid id (XLand- + one of xminigrid.registered_environments())")
    env, params = xminigrid.make(name)
    ruleset = getattr(params, "ruleset", None)
    if ruleset is not None and not ruleset.goal.any():
        raise ConfigError(
            f"--env {env_id}: an XLand task needs a ruleset of xminigrid's benchmarks (xminigrid.load_benchmark "
            "downloads them), which ppox does not load: its default has no goal to reach"
        )
    return as_gymnax(XMiniGridTask(env, params), f"--env {env_id}")
