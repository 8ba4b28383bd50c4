"""One Gymnasium env from what a user names: a registered id, 'package.module:Class', an env instance or a
factory; the name a run gives an env passed as an object; and a vector env the user made, borrowed."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from ppox.envs.contract import EnvContractError, env_name
from ppox.envs.families import is_entry_point
from ppox.envs.masks import mask_source
from ppox.errors import ConfigError
from ppox.utils.imports import import_user_module


def env_factory(env: Any) -> Callable[[], Any]:
    """A zero-argument function making one env, from an id, 'module:Class', an env instance or a factory."""
    if isinstance(env, gym.Env):
        return lambda: env
    if callable(env) and not isinstance(env, str):
        return env
    if not isinstance(env, str):
        raise ConfigError(
            f"env: got a {type(env).__name__!r} object, not an env id, a gymnasium.Env, a Gymnasium vector env or a "
            "function returning an env"
        )
    if is_entry_point(env):
        module_name, _, attr = env.partition(":")
        module = import_user_module(module_name, "--env", env)  # (from the current folder too)
        if hasattr(module, attr):
            target = getattr(module, attr)
            if (inspect.isclass(target) and issubclass(target, gym.Env)) or inspect.isfunction(target):
                return target
            raise ConfigError(
                f"--env {env}: {attr!r} in {module_name!r} is not a Gymnasium environment class or "
                "factory (a gymnasium.Env subclass, or a Python function returning an env)"
            )
    # 'module:RegisteredId' (gymnasium's own form) or a registered id; a partial pickles for subprocesses
    return functools.partial(gym.make, env, disable_env_checker=True)


def env_label(env: Any, made=None) -> str:
    """How a run names an env given from Python (an instance or a factory): its registered id, else
    'module:Name' when that imports again (not from a script's __main__), else the class or function name.
    ``made``: an env the factory made, whose id or class names a lambda."""
    instance = env if isinstance(env, gym.Env) else made
    spec = getattr(instance, "spec", None)
    if spec is not None and spec.id in gym.registry:
        return spec.id
    target = type(env.unwrapped) if isinstance(env, gym.Env) else env
    module, name = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    if module and module != "__main__" and name and "<" not in name:
        return f"{module}:{name}"
    if "<" in name and instance is not None:
        return env_label(instance)
    return name if name and "<" not in name else type(target).__name__


def is_vector_env(env: Any) -> bool:
    """A vector env the user made: a ``gymnasium.vector.VectorEnv`` (SyncVectorEnv, AsyncVectorEnv, ale-py's
    AtariVectorEnv, ...), or any object that steps ``num_envs`` envs at once (EnvPool's)."""
    if isinstance(env, gym.vector.VectorEnv):
        return True
    return not isinstance(env, str) and isinstance(getattr(env, "num_envs", None), int) and hasattr(env, "step")


def vector_env_label(venv: Any) -> str:
    """How a run names a vector env given from Python: its envs' registered id, else its class's name."""
    for source in (venv, *getattr(venv, "envs", [])[:1]):
        spec = getattr(source, "spec", None)
        if spec is not None and getattr(spec, "id", None) in gym.registry:
            return spec.id
    return type(venv).__name__


def vector_eval_factory(venv: Any) -> Callable[[], Any] | None:
    """A function making one fresh env like the vector env's (its own first env function), else None."""
    functions = getattr(venv, "env_fns", None)
    return functions[0] if functions and callable(functions[0]) else None


def borrowed_num_envs(venv: Any, config: Any, preset_num_envs: int) -> int:
    """The run's num_envs for a vector env the user made: the env's, unless the config (a ``Config``) chose
    another number than its preset's (ConfigError saying which); ConfigError for the options that wrap the
    envs ppox makes itself, and for evaluation where the env gives no way to make a fresh one."""
    if config.ray is not None:
        raise ConfigError("ray: Ray workers make their own envs: pass an env id or a factory, not a vector env")
    if config.max_episode_steps is not None or config.hide_obs:
        raise ConfigError(
            "max_episode_steps and hide_obs wrap the envs ppox makes: wrap your envs (gymnasium.wrappers."
            "TimeLimit, ...) before making the vector env, or pass a factory of one env instead"
        )
    if config.eval_episodes and vector_eval_factory(venv) is None:
        raise ConfigError(
            f"eval_episodes needs a fresh env to evaluate on, and a {type(venv).__name__} cannot make one (it "
            "has no env_fns): set eval_episodes=0 and evaluate afterwards with ppox.evaluate(policy, env=...)"
        )
    if config.num_envs != venv.num_envs and config.num_envs != preset_num_envs:  # chosen: say which
        raise ConfigError(
            f"num_envs={config.num_envs}, but the vector env steps {venv.num_envs} envs (env.num_envs): pass "
            f"num_envs={venv.num_envs}, or leave num_envs out to take the env's"
        )
    return int(venv.num_envs)


def autoreset_mode(venv: Any) -> str | None:
    """The vector env's autoreset mode by name ("SAME_STEP", "NEXT_STEP", "DISABLED"), from its metadata."""
    mode = (getattr(venv, "metadata", None) or {}).get("autoreset_mode")
    try:
        return gym.vector.AutoresetMode(getattr(mode, "value", mode)).name
    except ValueError:
        return None if mode is None else str(mode)


class BorrowedVectorEnv:
    """A vector env the user made, stepped as the host driver steps its own: Gymnasium's SAME_STEP autoreset
    (checked here), with action masks where its envs offer them (``ppox.envs.masks``). It stays the user's:
    ``close`` leaves it open, for the user to train on again, resume with, or close."""

    def __init__(self, venv: Any):
        name, mode = type(venv).__name__, autoreset_mode(venv)
        if mode != "SAME_STEP":
            said = f"autoresets {mode}" if mode else "does not say how it autoresets (metadata['autoreset_mode'])"
            raise ConfigError(
                f"env: the {name} {said}; ppox steps vector envs with SAME_STEP autoreset (the ended episode's "
                "last observation in info['final_obs']): make it with autoreset_mode=gymnasium.vector.AutoresetMode"
                ".SAME_STEP, e.g. gymnasium.vector.SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)"
            )
        for part in ("single_observation_space", "single_action_space"):
            if not isinstance(getattr(venv, part, None), gym.spaces.Space):
                raise ConfigError(f"env: the {name} has no {part} (a gymnasium.spaces.Space), which ppox reads")
        self.venv, self.num_envs = venv, int(venv.num_envs)
        self.single_observation_space = venv.single_observation_space
        self.single_action_space = venv.single_action_space
        self.envs = list(getattr(venv, "envs", [venv]))  # (the first names the env in mask errors)
        self.mask_source: str | None = None  # where its envs offer action masks, judged at reset
        self.info: dict = {}  # the latest step's (or reset's) info

    def reset(self, *, seed: int | None = None):
        obs, self.info = self.venv.reset(seed=seed)
        first = getattr(self.venv, "envs", [None])[0]  # (methods are read only where the envs are at hand)
        self.mask_source = mask_source(first, obs, self.info)
        return obs, self.info

    def step(self, actions):
        obs, reward, terminated, truncated, self.info = self.venv.step(actions)
        return obs, reward, terminated, truncated, self.info

    def action_masks(self, raw_obs, size: int) -> np.ndarray:
        """Every env's current action mask, bool [num_envs, size] (needs a mask source)."""
        if self.mask_source == "method":
            offered: Any = [np.asarray(mask).reshape(-1) for mask in self.venv.call("action_masks")]
        else:
            offered = raw_obs.get("action_mask") if self.mask_source == "obs" else self.info.get("action_mask")
        masks = np.asarray(offered).astype(bool)
        if masks.shape != (self.num_envs, size):
            raise EnvContractError(
                f"env {env_name(self.envs[0])}: its action masks ({self.mask_source}) should be "
                f"[{self.num_envs}, {size}] booleans, got {list(masks.shape)}"
            )
        return masks

    def close(self) -> None:
        """Nothing: the vector env is the user's, who closes it."""
