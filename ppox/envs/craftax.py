"""Craftax and Craftax-Classic (pip install "ppox[craftax]"), on the fused driver: the craftax package's
gymnax-style envs without their own auto-reset (ppox's fused program resets, as it does for gymnax).

Ids are craftax's: Craftax-Classic-Symbolic-v1, Craftax-Symbolic-v1 (flat symbolic observations, an MLP
torso) and Craftax-Classic-Pixels-v1, Craftax-Pixels-v1 (HxWx3 images, the CNN torso). Dying (and, in
Craftax, beating the final boss) terminates an episode; craftax's time limit (``max_timesteps``: 10,000
steps in Classic, 100,000 in Craftax) is a truncation, which ``--max-episode-steps`` replaces. New episodes come
from optimistic resets (``ppox.envs.optimistic_reset``): one new world per 16 envs and step, as in Craftax's
baselines, since generating a world costs far more than a step.

Each run logs, over the episodes that ended in an update (``ppox.envs.episode_metrics``):

- ``achievement/NAME``: the success rate s_i of each achievement, in percent of those episodes;
- ``score``: the Crafter score of those rates, ``S = exp(mean_i ln(1 + s_i)) - 1`` (s_i in percent, the
  geometric mean with an offset of 1%; Hafner, "Benchmarking the Spectrum of Agent Capabilities", ICLR
  2022, section 3). Craftax-Classic's own step info (``craftax_classic.envs.common.compute_score``) applies
  the formula to each episode's 0/100 values, a different figure; ppox applies it to the rates, as Crafter does;
- ``return_percent``: the mean episode return as a percentage of the largest return an episode can have
  (every achievement's reward, with no health lost), the figure the Craftax paper reports (Matthews et al.,
  "Craftax: A Lightning-Fast Benchmark for Open-Ended Reinforcement Learning", ICML 2024).
"""

from __future__ import annotations

from typing import Any

import craftax.craftax.constants as full_constants
import craftax.craftax_classic.constants as classic_constants
import jax
import jax.numpy as jnp
import numpy as np
from craftax.craftax_env import make_craftax_env_from_name
from flax import struct

from ppox.envs.families import CRAFTAX_IDS
from ppox.envs.jax_protocol import is_typed_key
from ppox.errors import ConfigError

# one new world per 16 envs and step (ppox.envs.optimistic_reset; the Craftax baselines' default ratio): making a
# world costs far more than a step, and the fused program would otherwise make one per env at every step
RESET_RATIO = 16
NEVER = np.iinfo(np.int32).max  # a time limit that never ends an episode (ppox's own limit truncates)


def crafter_score(rates):
    """The Crafter score of success rates in percent (last axis): exp(mean_i ln(1 + s_i)) - 1, in percent."""
    return jnp.exp(jnp.mean(jnp.log1p(rates), axis=-1)) - 1.0


def stored(state):
    """The state with its key (``state_rng``, split from the key it was stepped with) as the key's uint32 data:
    arrays that a checkpoint holds."""
    return state.replace(state_rng=jax.random.key_data(state.state_rng)) if is_typed_key(state.state_rng) else state


def restored(state, key):
    """The state with its key made again, of the kind of ``key`` (a typed key of ppox's --prng-impl, or raw)."""
    if not is_typed_key(key):
        return state
    return state.replace(state_rng=jax.random.wrap_key_data(state.state_rng, impl=jax.random.key_impl(key)))


@struct.dataclass
class CraftaxParams:
    inner: Any  # craftax's EnvParams
    max_steps_in_episode: int


class CraftaxWorld:
    """One craftax env, gymnax-style, with its achievements as per-episode metrics."""

    def __init__(self, env_id: str):
        self.env = make_craftax_env_from_name(env_id, False)
        self.classic = "Classic" in env_id
        achievements = classic_constants.Achievement if self.classic else full_constants.Achievement
        rewards = np.ones(len(achievements)) if self.classic else np.asarray(full_constants.ACHIEVEMENT_REWARD_MAP)
        self.achievements = tuple(a.name.lower() for a in sorted(achievements, key=lambda a: a.value))
        self.max_return = float(rewards.sum())  # (22 in Classic, 226 in Craftax)
        inner = self.env.default_params
        self.default_params = CraftaxParams(inner, int(inner.max_timesteps))
        self.episode_metric_names = tuple(f"achievement/{name}" for name in self.achievements)
        self.summary_metric_names = ("score", "return_percent")
        self.reset_ratio = RESET_RATIO

    def reset_env(self, key, params: CraftaxParams):
        obs, state = self.env.reset_env(key, params.inner)
        return obs, stored(state)

    def reset(self, key, params: CraftaxParams | None = None):
        return self.reset_env(key, self.default_params if params is None else params)

    def step_env(self, key, state, action, params: CraftaxParams):
        obs, state, reward, _, info = self.env.step_env(key, restored(state, key), action, params.inner)
        state = stored(state)
        terminated = self.env.is_terminal(state, params.inner.replace(max_timesteps=NEVER))  # dead (or won)
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, info

    def is_truncated(self, state, params: CraftaxParams):
        return state.timestep >= params.max_steps_in_episode

    def observation_space(self, params):
        return self.env.observation_space(params.inner)

    def action_space(self, params):
        return self.env.action_space(params.inner)

    def episode_metrics(self, state, info):
        """Each achievement of the episode that ended here: 100 if unlocked, else 0 (percent, averaged)."""
        unlocked = 100.0 * jnp.asarray(state.achievements, jnp.float32)
        return {name: unlocked[i] for i, name in enumerate(self.episode_metric_names)}

    def summary_metrics(self, means):
        """The Crafter score of the success rates, and the mean return in percent of the largest."""
        rates = jnp.stack([means[name] for name in self.episode_metric_names])
        return {"score": crafter_score(rates), "return_percent": 100.0 * means["episode_return"] / self.max_return}


def make(env_id: str):
    """(env, params) of a Craftax id, gymnax-style: the family's fused maker."""
    if env_id not in CRAFTAX_IDS:
        raise ConfigError(f"--env {env_id}: not a Craftax id; they are {', '.join(CRAFTAX_IDS)}")
    world = CraftaxWorld(env_id)
    return world, world.default_params
