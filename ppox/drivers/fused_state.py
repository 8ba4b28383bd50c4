"""What a fused run carries: the ``Runner`` from one update to the next, and a rollout's ``Transition`` per step."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
from flax import struct

from ppox.core.normalize import RewardScaler, RunningMeanStd


@struct.dataclass
class Runner:
    """Everything a fused run carries from one update to the next (per seed)."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # raw observation of each env, [num_envs, ...]
    obs_stats: RunningMeanStd
    reward_scaler: RewardScaler
    episode_return: jax.Array  # raw return so far of each env's current episode
    episode_length: jax.Array
    key: jax.Array  # the uint32 words of a key of config.prng_impl (threefry2x32: 2 words, rbg: 4)
    update_index: jax.Array
    carry: Any = None  # recurrent policy: each env's carry before its next step
    starts: jax.Array | None = None  # recurrent policy: obs begins an episode (the carry is zeroed first)
    pool: Any = None  # self-play: the agent's past selves and its record against them (ppox.drivers.selfplay.Pool)

    def replace(self, **changes: Any) -> Runner:
        """A copy with ``changes`` (flax.struct's replace, declared for the type checker)."""
        return dataclasses.replace(self, **changes)


class Transition(NamedTuple):
    """One vector step of a rollout (time-major after the scan: [T, num_envs, ...])."""

    obs: jax.Array  # what the policy saw (normalised if norm_obs)
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array  # the training reward (scaled if norm_reward)
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array  # the true next observation (the final one when the episode ended), prepared
    finished_return: jax.Array  # raw episode return where an episode ended here, else 0
    finished_length: jax.Array
    start: jax.Array | None = None  # recurrent: obs begins an episode
    carry: Any = None  # recurrent: the carry after this step (V of the next observation is one step on)
    mask: jax.Array | None = None  # legal actions where the env has action_mask(state) (e.g. pgx games)
    episode_values: Any = None  # the env's per-episode values (ppox.envs.episode_metrics; {} for most envs)
