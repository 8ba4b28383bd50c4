"""One Gymnasium env from what a user names: a registered id, 'package.module:Class', an env instance or a
factory; and the name a run gives an env passed as an object."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from ppox.envs.families import is_entry_point
from ppox.errors import ConfigError


def env_factory(env: Any) -> Callable[[], Any]:
    """A zero-argument function making one env, from an id, 'module:Class', an env instance or a factory."""
    if isinstance(env, gym.Env):
        return lambda: env
    if callable(env) and not isinstance(env, str):
        return env
    if is_entry_point(env):
        module_name, _, attr = env.partition(":")
        if os.getcwd() not in sys.path and "" not in sys.path:  # a module in the current folder, as python -m finds
            sys.path.append(os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ConfigError(f"--env {env}: cannot import module {module_name!r} ({err})") from None
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
