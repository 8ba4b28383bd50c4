"""What a policy needs to know about an environment: observation shape and action space.

``spec_from_action_space`` reads the action space of either library (gymnax and Gymnasium name their
spaces alike); ``to_env_action`` turns the policy's actions into what the env's ``step`` takes.
"""

from __future__ import annotations

import dataclasses
import functools

import gymnasium as gym
import numpy as np

from ppox.errors import ConfigError

ATARI_FRAME_SKIP = 4  # frames per step of ppox's Atari games, whatever the id registers (ppox.envs.atari.FRAME_SKIP)

MASK_SOURCES = ("method", "info", "obs", "state")  # where an env offers its action masks (EnvSpec.action_mask)


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Observation shape and action space of an environment, as plain JSON-able values.

    action_kind: "discrete" (action_dims = (n,)), "continuous" (action_dims = (dim,), with
    bounds action_low/action_high) or "multi_discrete" (action_dims = sizes). The policy acts in
    a flat form: an index, a vector of indices, or a vector of floats; ``action_shape`` is the
    env's own action shape and ``action_start`` the first index of Discrete(n, start) or of each
    MultiDiscrete dimension (None: 0).
    """

    obs_shape: tuple[int, ...]
    action_kind: str
    action_dims: tuple[int, ...]
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    action_shape: tuple[int, ...] | None = None  # None: the flat shape (() or (dim,)), as in older files
    action_start: tuple[int, ...] | None = None
    obs_space: str | None = None  # JSON description of a Gymnasium observation space that is encoded (one-hot,
    # flattened, uint8 scaled) into obs_shape; None: observations are used as they are
    action_mask: str | None = None  # where the env offered legal-action masks in training (ppox.envs.masks):
    # "method", "info", "obs", or "state" (a JAX env's action_mask(state)); None: nowhere, or not recorded
    actor_obs: int = 0  # > 0: the actor reads the first actor_obs features, the critic the rest (MAPPO's
    # centralised critic on a world state); 0: both read the whole observation
    agents: tuple[str, ...] = ()  # a multi-agent env's agents, stacked on the batch axis in this order

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @functools.cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of continuous actions as float32 arrays, made once (the host steps with them)."""
        return np.asarray(self.action_low, np.float32), np.asarray(self.action_high, np.float32)

    @classmethod
    def from_dict(cls, data: dict) -> EnvSpec:
        """An EnvSpec from JSON-like data (a file's metadata); ValueError naming what is malformed."""

        def ints(x, least=0):
            return isinstance(x, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= least for n in x)

        def tup(x):
            return None if x is None else tuple(x)

        if not (
            isinstance(data, dict)
            and ints(data.get("obs_shape"))
            and ints(data.get("action_dims"), 1)
            and data.get("action_kind") in ("discrete", "continuous", "multi_discrete")
        ):
            raise ValueError(f"not an env spec: {str(data)[:200]}")
        for key in ("action_low", "action_high"):
            if data.get(key) is not None and not (
                isinstance(data[key], list) and all(isinstance(x, (int, float)) for x in data[key])
            ):
                raise ValueError(f"env spec {key} must be a list of numbers")
        for key in ("action_shape", "action_start"):
            if data.get(key) is not None and not ints(data[key], -(2**31)):
                raise ValueError(f"env spec {key} must be a list of integers")
        return cls(
            obs_shape=tuple(data["obs_shape"]),
            action_kind=data["action_kind"],
            action_dims=tuple(data["action_dims"]),
            action_low=tup(data.get("action_low")),
            action_high=tup(data.get("action_high")),
            action_shape=tup(data.get("action_shape")),
            action_start=tup(data.get("action_start")),
            obs_space=data.get("obs_space") if isinstance(data.get("obs_space"), str) else None,
            action_mask=data.get("action_mask") if data.get("action_mask") in MASK_SOURCES else None,
            actor_obs=data["actor_obs"] if isinstance(data.get("actor_obs"), int) else 0,
            agents=tuple(str(a) for a in data["agents"]) if isinstance(data.get("agents"), list) else (),
        )


def spec_from_action_space(obs_shape: tuple[int, ...], action_space) -> EnvSpec:
    """The EnvSpec of an env with (encoded) observations of ``obs_shape`` and this action space.

    Discrete, Box (float), MultiDiscrete and MultiBinary, from gymnax or Gymnasium; anything else
    is a ConfigError naming the space."""
    kind, shape = type(action_space).__name__, tuple(getattr(action_space, "shape", None) or ())
    obs_shape = tuple(int(n) for n in obs_shape)
    if kind == "Discrete":
        start = int(getattr(action_space, "start", 0))
        return EnvSpec(
            obs_shape, "discrete", (int(action_space.n),), action_shape=(), action_start=(start,) if start else None
        )
    if kind == "Box" and np.issubdtype(np.dtype(getattr(action_space, "dtype", np.float32)), np.floating):
        flat = shape or (1,)
        low = np.broadcast_to(np.asarray(action_space.low, np.float32), flat).ravel()
        high = np.broadcast_to(np.asarray(action_space.high, np.float32), flat).ravel()
        return EnvSpec(
            obs_shape,
            "continuous",
            (int(np.prod(flat)),),
            tuple(float(x) for x in low),
            tuple(float(x) for x in high),
            action_shape=shape,
        )
    if kind == "MultiDiscrete":
        starts = np.ravel(getattr(action_space, "start", 0) * np.ones_like(action_space.nvec))
        return EnvSpec(
            obs_shape,
            "multi_discrete",
            tuple(int(n) for n in np.ravel(action_space.nvec)),
            action_shape=shape,
            action_start=tuple(int(s) for s in starts) if starts.any() else None,
        )
    if kind == "MultiBinary":
        return EnvSpec(obs_shape, "multi_discrete", (2,) * int(np.prod(shape)), action_shape=shape)
    raise ConfigError(
        f"unsupported action space {action_space!r}; ppox supports Discrete, Box (float), MultiDiscrete, MultiBinary"
    )


def to_env_action(spec: EnvSpec, actions, xp=np):
    """The policy's actions [batch, ...] as the env takes them: continuous ones clipped to the bounds
    and shaped like the action space, indices shifted by the space's start. ``xp`` is numpy or jax.numpy.

    Only the env gets these: the rollout keeps the unclipped action the policy sampled."""
    batch = actions.shape[:1]
    if spec.action_kind == "continuous":
        clipped = xp.clip(actions, *spec.bounds)
        shape = spec.action_shape if spec.action_shape is not None else spec.action_dims
        return clipped.reshape(batch + tuple(shape))
    if spec.action_start is not None:
        actions = actions + np.asarray(
            spec.action_start if spec.action_kind == "multi_discrete" else spec.action_start[0]
        )
    if spec.action_kind == "multi_discrete" and spec.action_shape is not None:
        actions = actions.reshape(batch + tuple(spec.action_shape))
    return actions


def episode_step_limit(env_id: str, max_episode_steps: int | None = None) -> int | None:
    """The most steps an episode of ``env_id`` lasts: ``max_episode_steps`` where given, else the time limit
    Gymnasium registers for the id (an Atari game's: its frame cap over ppox's frame skip); None where unknown
    (an entry point, an env object's label, an id that Gymnasium does not know, or one without a limit)."""
    if max_episode_steps is not None or ":" in env_id:
        return max_episode_steps
    try:
        registered = gym.spec(env_id)
    except gym.error.Error:
        return None
    frames = registered.kwargs.get("max_num_frames_per_episode")
    return frames // ATARI_FRAME_SKIP if isinstance(frames, int) and frames > 0 else registered.max_episode_steps
