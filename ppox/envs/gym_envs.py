"""Gymnasium environments for the host driver: making vector envs, reading their spaces.

Vector envs run with Gymnasium's SAME_STEP autoreset semantics: when an episode ends, ``step``
returns the first observation of the next episode and puts the episode's final observation
in ``info["final_obs"]``, so no reset step ever enters a training batch and a truncated
episode can bootstrap from the value of its true final observation.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from ppox.envs.contract import (
    CheckedAsyncEnvs,
    batch_check,
    batch_error,
    check_observation,
    check_reset,
    check_spaces,
    step_error,
    step_problem,
)
from ppox.envs.gym_make import env_factory, env_label
from ppox.envs.gym_wrappers import hidden
from ppox.envs.masks import mask_source, read_mask
from ppox.envs.spec import EnvSpec, spec_from_action_space
from ppox.errors import ConfigError


class SyncEnvs:
    """Several envs stepped one after another in this process, with SAME_STEP autoreset semantics.

    The contract of Gymnasium's SyncVectorEnv in SAME_STEP mode (batched obs, rewards,
    terminated, truncated; ``info["final_obs"]`` and ``info["_final_obs"]`` for the envs that
    ended), without merging every env's info dict each step: on HalfCheetah-v5 that merging
    and copying cost about as much as the physics. Async stepping uses Gymnasium's AsyncVectorEnv.
    """

    def __init__(self, factories):
        self.envs = [make() for make in factories]
        for env in self.envs:
            check_spaces(env)
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        # Discrete actions go to the envs as Python ints: a space's contains() checks those fastest.
        self._int_actions = isinstance(self.single_action_space, spaces.Discrete)
        self._checked = [False] * self.num_envs  # each env's first step is checked in full
        self._fits, self._one = batch_check(self.single_observation_space, self.num_envs), (self.num_envs,)
        self.infos: list[dict] = [{}] * self.num_envs  # each env's latest info (its reset's, after an autoreset)
        self.mask_source: str | None = None  # where the envs offer action masks (ppox.envs.masks), from reset

    def reset(self, *, seed: int | None = None):
        results = [
            check_reset(env, env.reset(seed=None if seed is None else seed + i)) for i, env in enumerate(self.envs)
        ]
        self.infos = [info for _, info in results]
        self.mask_source = mask_source(self.envs[0], *results[0])
        return _stack(self.single_observation_space, [obs for obs, _ in results]), {}

    def action_masks(self, raw_obs, size: int) -> np.ndarray:
        """Every env's current action mask, bool [num_envs, size] (needs a mask source)."""
        if self.mask_source == "obs":
            return np.asarray(raw_obs["action_mask"]).astype(bool).reshape(self.num_envs, size)
        return np.stack(
            [read_mask(env, self.mask_source, None, info, size) for env, info in zip(self.envs, self.infos)]
        )

    def step(self, actions):
        if self._int_actions:
            actions = np.asarray(actions).tolist()
        observations, rewards, terminated, truncated = [], [], [], []
        info = {}
        for i, env in enumerate(self.envs):
            result = env.step(actions[i])
            try:
                obs, reward, term, trunc, self.infos[i] = result
                ended = bool(term or trunc)
            except (TypeError, ValueError):  # (not a 5-tuple, or terminated an array)
                raise step_problem(env, result) or step_error(env, result) from None
            if not self._checked[i]:  # each env's first step in full
                if problem := step_problem(env, result):
                    raise problem
                self._checked[i] = True
            if ended:
                check_observation(env, obs, "step()")  # the final observation, in full
                if not info:
                    info = {
                        "final_obs": np.full(self.num_envs, None, object),
                        "_final_obs": np.zeros(self.num_envs, bool),
                    }
                info["final_obs"][i], info["_final_obs"][i] = obs, True
                obs, self.infos[i] = check_reset(env, env.reset())
            observations.append(obs)
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
        try:  # the per-step check: the stacked arrays' shapes and dtypes only (None rewards: NaN, found per update)
            batch = _stack(self.single_observation_space, observations)
            arrays = np.array(rewards, np.float64), np.array(terminated, bool), np.array(truncated, bool)
            fits = arrays[0].shape == arrays[1].shape == arrays[2].shape == self._one and self._fits(batch)
        except (TypeError, ValueError, KeyError, IndexError):  # (observations of different shapes do not stack)
            fits = False
        if not fits:
            raise batch_error(self.envs, observations, rewards, terminated, truncated)  # (which env, which part)
        return (batch, *arrays, info)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _stack(space, items):
    if isinstance(space, spaces.Dict):
        return {k: _stack(s, [x[k] for x in items]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_stack(s, [x[i] for x in items]) for i, s in enumerate(space.spaces))
    return np.array(items)  # one array [n, ...] from same-shaped observations


def time_limited(factory: Callable[[], Any], max_episode_steps: int):
    """An env from ``factory`` that truncates its episodes after ``max_episode_steps`` steps."""
    return gym.wrappers.TimeLimit(factory(), max_episode_steps=max_episode_steps)


def make_vector_env(
    env: Any, num_envs: int, vec: str, max_episode_steps: int | None = None, hide_obs: tuple[int, ...] = ()
):
    """``num_envs`` copies of the env with SAME_STEP autoreset: SyncEnvs, or Gymnasium's AsyncVectorEnv;
    with ``max_episode_steps``, each behind a TimeLimit; with ``hide_obs``, behind HideObservation."""
    if isinstance(env, gym.Env) and num_envs > 1:
        raise ConfigError(
            "an env instance can only be used with --num-envs 1; pass a factory (a function "
            "returning a new env) or an id to run several"
        )
    factory = env_factory(env)
    if max_episode_steps is not None:
        factory = functools.partial(time_limited, factory, max_episode_steps)  # (a partial pickles for spawn)
    if hide_obs:
        factory = functools.partial(hidden, factory, tuple(hide_obs))
    try:
        if vec == "async":  # spawned, not forked: forking a process that runs JAX can deadlock
            return CheckedAsyncEnvs(
                env if isinstance(env, str) else env_label(env),
                [factory] * num_envs,
                autoreset_mode=AutoresetMode.SAME_STEP,
                context="spawn",
            )
        return SyncEnvs([factory] * num_envs)
    except gym.error.DependencyNotInstalled as err:
        text = str(err).lower()
        hint = (
            ' (MuJoCo envs: pip install "ppox[mujoco]")'
            if "mujoco" in text
            else ' (Box2D envs: pip install "ppox[box2d]")'
            if "box2d" in text or "pygame" in text
            else ""
        )
        raise ConfigError(f"--env {env}: {err}{hint}") from None


def make_one_env(env: Any, video_folder=None):
    """One env, for evaluation; with ``video_folder``, rendered and every episode recorded there as mp4."""
    if video_folder is None:
        return env_factory(env)()
    single = gym.make(env, render_mode="rgb_array") if isinstance(env, str) else env_factory(env)()
    return gym.wrappers.RecordVideo(single, str(video_folder), episode_trigger=lambda _: True, disable_logger=True)


class ObsEncoder:
    """Turns a vector env's batched observations into one array [num_envs, features...].

    Box: float32, uint8 images kept as uint8 (the network scales them to [0, 1]); Discrete: one-hot; Dict and
    Tuple: each part encoded and flattened, concatenated in the space's order.
    """

    def __init__(self, space):
        self.space = space
        self.shape = _encoded_shape(space)

    def __call__(self, obs) -> np.ndarray:
        return _encode(self.space, obs)


def _encoded_shape(space) -> tuple[int, ...]:
    if isinstance(space, spaces.Box):
        return tuple(space.shape)
    if isinstance(space, spaces.Discrete):
        return (int(space.n),)
    if isinstance(space, spaces.MultiBinary):
        return (int(np.prod(space.shape)),)
    if isinstance(space, spaces.MultiDiscrete):
        return (int(np.sum(space.nvec)),)
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        parts = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
        return (int(sum(np.prod(_encoded_shape(p)) for p in parts)),)
    _unsupported("observation", space)


def _encode(space, obs) -> np.ndarray:
    if isinstance(space, spaces.Box):
        obs = np.asarray(obs)
        return obs if obs.dtype == np.uint8 else obs.astype(np.float32, copy=False)
    if isinstance(space, spaces.Discrete):
        return np.eye(int(space.n), dtype=np.float32)[np.asarray(obs) - int(space.start)]
    if isinstance(space, spaces.MultiBinary):
        obs = np.asarray(obs, np.float32)
        return obs.reshape(obs.shape[0], -1)
    if isinstance(space, spaces.MultiDiscrete):
        obs = np.asarray(obs)
        return np.concatenate([np.eye(int(n), dtype=np.float32)[obs[:, i]] for i, n in enumerate(space.nvec)], axis=1)
    if isinstance(space, spaces.Dict):
        parts = [_encode(sub, obs[key]) for key, sub in space.spaces.items()]
    else:
        parts = [_encode(sub, obs[i]) for i, sub in enumerate(space.spaces)]
    return np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1)


def spec_from_spaces(obs_space, action_space) -> EnvSpec:
    """The EnvSpec of a single env's spaces (observations as ObsEncoder encodes them, the space itself
    described so that a saved policy encodes them the same way); a ConfigError naming an unsupported space."""
    spec = spec_from_action_space(_encoded_shape(obs_space), action_space)
    return dataclasses.replace(spec, obs_space=json.dumps(describe_space(obs_space)))


def describe_space(space) -> dict:
    """A JSON-able description of an observation space, enough to encode its observations again."""
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: describe_space(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [describe_space(s) for s in space.spaces]}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "shape": list(space.shape)}
    return {"type": "Box", "shape": list(space.shape), "dtype": np.dtype(space.dtype).name}


def space_from_description(data: dict):
    """The observation space a ``describe_space`` description stands for (bounds are not kept)."""
    kind = data["type"]
    if kind == "Dict":
        return spaces.Dict({k: space_from_description(s) for k, s in data["spaces"].items()})
    if kind == "Tuple":
        return spaces.Tuple([space_from_description(s) for s in data["spaces"]])
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data.get("start", 0))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(data["nvec"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["shape"])
    dtype = np.dtype(data["dtype"])
    high = 255 if dtype == np.uint8 else np.inf
    return spaces.Box(0 if dtype == np.uint8 else -np.inf, high, tuple(data["shape"]), dtype)


def is_single_observation(space, obs) -> bool:
    """Whether ``obs`` is one observation of ``space`` (rather than a batch of them)."""
    if isinstance(space, spaces.Dict):
        key = next(iter(space.spaces))
        return is_single_observation(space.spaces[key], obs[key])
    if isinstance(space, spaces.Tuple):
        return is_single_observation(space.spaces[0], obs[0])
    if isinstance(space, spaces.Discrete):
        return np.ndim(obs) == 0
    return np.shape(obs) == tuple(space.shape)


def _unsupported(what: str, space) -> NoReturn:
    raise ConfigError(
        f"unsupported {what} space {space!r}; ppox supports Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
    )


def batch_of_one(space, x):
    """A single env's observation with a batch axis of one, as a vector env would return it."""
    if isinstance(space, spaces.Dict):
        return {k: batch_of_one(s, x[k]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(batch_of_one(s, x[i]) for i, s in enumerate(space.spaces))
    return np.asarray(x)[None]
