"""What a Gymnasium env must return, checked where ppox first meets it, with a one-line error.

reset() -> (observation, info); step(action) -> (observation, reward, terminated, truncated, info); the
observation fits the env's observation_space (shape, and a number where a number is due), the reward is one
number, terminated and truncated one bool each. Every element is checked at reset, on each env's first step
and at each episode's end; on the other steps the vector env checks the arrays it stacks, by their shape and
dtype only, and ``step_problem`` finds the env and the element only where they do not fit (in subprocesses,
``CheckedAsyncEnvs``: Gymnasium's own errors, made one line).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv

from ppox.errors import ConfigError


class EnvContractError(ConfigError):
    """An env that breaks the Gymnasium API; the message names the env, the call and what was expected."""


def env_name(env) -> str:
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None) or type(getattr(env, "unwrapped", env)).__name__


def check_spaces(env) -> None:
    for name in ("observation_space", "action_space"):
        if not isinstance(getattr(env, name, None), spaces.Space):
            raise EnvContractError(
                f"env {env_name(env)}: it has no {name} (a Gymnasium env defines "
                "observation_space and action_space as gymnasium.spaces)"
            )


def check_reset(env, result):
    """(obs, info) of a reset, checked."""
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        raise EnvContractError(
            f"env {env_name(env)}: reset() returned {_describe(result)}; a Gymnasium env's "
            "reset returns (observation, info)"
        )
    check_observation(env, result[0], "reset()")
    return result


def step_error(env, result) -> EnvContractError:
    old = " (the old Gym API: obs, reward, done, info)" if isinstance(result, tuple) and len(result) == 4 else ""
    return EnvContractError(
        f"env {env_name(env)}: step() returned {_describe(result)}{old}; a Gymnasium env's "
        "step returns (observation, reward, terminated, truncated, info)"
    )


def step_problem(env, result) -> EnvContractError | None:
    """The error of the first part of a step's result that breaks the contract; None where all is as promised."""
    if not (isinstance(result, tuple) and len(result) == 5):
        return step_error(env, result)
    obs, *flags, info = result
    problem = _observation_problem(env.observation_space, obs)
    if problem:
        return _observation_error(env, "step()", problem)
    for name, value in zip(("reward", "terminated", "truncated"), flags):
        array = np.asarray(value)
        if array.ndim or array.dtype.kind not in "biuf":
            return EnvContractError(
                f"env {env_name(env)}: step() returned {name} {_describe(value)}; a Gymnasium env's step returns "
                "one number as the reward and one bool each as terminated and truncated"
            )
    if not isinstance(info, dict):
        return EnvContractError(f"env {env_name(env)}: step() returned info {_describe(info)}; expected a dict")
    return None


def batch_check(space, n: int) -> Callable[[Any], bool]:
    """The per-step check of a vector env of ``n`` envs, made once: whether its stacked observations have the
    space's shapes and hold numbers (shapes and dtypes only: a few comparisons per step)."""
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return functools.partial(_fits, space, n=n)
    shape = (n, *(space.shape or ()))
    return lambda batch: batch.shape == shape and batch.dtype.kind in "biuf"


def _fits(space, batch, n: int) -> bool:
    if isinstance(space, spaces.Dict):
        return isinstance(batch, dict) and all(_fits(s, batch[k], n) for k, s in space.spaces.items())
    if isinstance(space, spaces.Tuple):
        return all(_fits(s, b, n) for s, b in zip(space.spaces, batch))
    return batch.shape == (n, *(space.shape or ())) and batch.dtype.kind in "biuf"


def batch_error(envs, observations, rewards, terminated, truncated) -> EnvContractError:
    """The error of the env whose step did not fit the batch, found element by element (after ``batch_check``)."""
    for i, env in enumerate(envs):
        problem = step_problem(env, (observations[i], rewards[i], terminated[i], truncated[i], {}))
        if problem:
            return problem
    return EnvContractError(f"env {env_name(envs[0])}: step() returned observations that do not stack")


class CheckedAsyncEnvs(AsyncVectorEnv):
    """Gymnasium's AsyncVectorEnv (an env per subprocess) for the env named ``name``, whose workers' contract
    errors (an observation of another shape does not fit the shared memory) and rewards that are not one number
    per env are one EnvContractError, not Gymnasium's warnings and a traceback. Per step: one shape comparison."""

    def __init__(self, name: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = name

    def step(self, actions):
        with warnings.catch_warnings():  # (Gymnasium reports a worker's error as warnings, then raises it)
            warnings.simplefilter("ignore")
            try:
                result = super().step(actions)
            except (ValueError, TypeError) as err:
                raise EnvContractError(
                    f"env {self.name}: step() in its subprocess failed: {err} (as an observation that does not fit "
                    "the observation_space does)"
                ) from None
        if np.shape(result[1]) != (self.num_envs,):
            raise EnvContractError(
                f"env {self.name}: step() returned rewards shaped {np.shape(result[1])[1:]}; a Gymnasium env's "
                "step returns one number as the reward"
            )
        return result


def check_observation(env, obs, call: str) -> None:
    problem = _observation_problem(env.observation_space, obs)
    if problem:
        raise _observation_error(env, call, problem)


def _observation_error(env, call: str, problem: str) -> EnvContractError:
    return EnvContractError(
        f"env {env_name(env)}: {call} returned an observation that does not fit its "
        f"observation_space {env.observation_space}: {problem}"
    )


def _observation_problem(space, obs) -> str | None:
    if obs is None:
        return "got None"
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, dict) or set(obs) != set(space.spaces):
            return f"expected a dict with keys {sorted(space.spaces)}, got {_describe(obs)}"
        return next((p for k, s in space.spaces.items() if (p := _observation_problem(s, obs[k]))), None)
    if isinstance(space, spaces.Tuple):
        if not isinstance(obs, tuple) or len(obs) != len(space.spaces):
            return f"expected a tuple of {len(space.spaces)}, got {_describe(obs)}"
        return next((p for s, o in zip(space.spaces, obs) if (p := _observation_problem(s, o))), None)
    array = np.asarray(obs)
    if array.dtype.kind not in "biufc":  # (bool and numbers; not objects or text)
        return f"expected numbers, got {_describe(obs)}"
    shape = () if isinstance(space, spaces.Discrete) else tuple(space.shape or ())
    if array.shape != shape:
        return f"expected shape {shape}, got shape {array.shape}"
    return None


def _describe(value) -> str:
    if isinstance(value, tuple):
        return f"a {len(value)}-tuple"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
