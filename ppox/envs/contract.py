"""What a Gymnasium env must return, checked where ppox first meets it, with a one-line error.

reset() -> (observation, info); step(action) -> (observation, reward, terminated, truncated, info); the
observation fits the env's observation_space (shape, and a number where a number is due). The checks
run at reset and on each env's first step; after that only the tuple's length is checked (free: it is
the unpacking).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

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


def check_observation(env, obs, call: str) -> None:
    problem = _observation_problem(env.observation_space, obs)
    if problem:
        raise EnvContractError(
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
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
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
