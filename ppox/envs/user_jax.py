"""Your own JAX env on the fused driver (docs/jax-envs.md): an env object given from Python, or an entry point
('package.module:attribute') naming one, a class of one, or a function returning one (or gymnax.make's
``(env, params)``). Each is kept by the name the run gives it (``families.USER_JAX_ENVS``), which the
"user-jax" family claims; its fused maker ``make`` adapts it (``ppox.envs.jax_protocol``).

An entry point is imported only where a run starts (``resolve_entry_point``), never where a config is
checked: a config read from a file names code that runs only when the user confirms it.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym

from ppox.envs.families import USER_JAX_ENVS, is_entry_point
from ppox.envs.gym_make import is_vector_env
from ppox.envs.jax_protocol import as_gymnax, looks_like_jax_env
from ppox.errors import ConfigError
from ppox.utils.imports import import_user_module


def make(env_id: str):
    """(env, env_params) of a JAX env this process was given under ``env_id``: the family's fused maker."""
    if env_id not in USER_JAX_ENVS and is_entry_point(env_id):
        resolve_entry_point(env_id)
    obj = USER_JAX_ENVS.get(env_id)
    if obj is None:
        raise ConfigError(f"--env {env_id}: not a JAX env (it makes a Gymnasium env: use --driver host)")
    return as_gymnax(obj, f"--env {env_id}" if is_entry_point(env_id) else "env")


def is_jax_object(env: Any) -> bool:
    """An env given from Python that means to be a JAX env: not a Gymnasium env, vector env or factory."""
    if isinstance(env, str) or isinstance(env, gym.Env) or is_vector_env(env):
        return False
    return looks_like_jax_env(env) and (isinstance(env, tuple) or not callable(env) or hasattr(env, "reset_env"))


def object_label(env: Any) -> str:
    """How a run names a JAX env object: 'module:Class' where it imports again (not from a script), else Class."""
    kind = type(env[0] if isinstance(env, tuple) else env)
    name = kind.__qualname__
    return f"{kind.__module__}:{name}" if kind.__module__ != "__main__" and "<" not in name else name


def register_object(env: Any, label: str | None = None) -> str:
    """Keep the JAX env object ``env`` for the fused driver, checked (ConfigError naming what it lacks);
    returns its name: ``label``, else its class's (with a number after it where another object has that name)."""
    as_gymnax(env)  # (its form checked now, in one line)
    if label is None:
        base = label = object_label(env)
        count = 1
        while USER_JAX_ENVS.get(label) is not None and USER_JAX_ENVS[label] is not env:
            count += 1
            label = f"{base}-{count}"
    USER_JAX_ENVS[label] = env
    return label


def resolve_entry_point(spec: str) -> bool:
    """Import the entry point ``spec`` and remember whether it makes a JAX env (True: the fused driver's);
    a class or function is called once to see what it makes. False where it is a Gymnasium env or a name
    that Gymnasium resolves ('module:RegisteredId'); ConfigError for a JAX env that lacks a part."""
    if spec in USER_JAX_ENVS:
        return USER_JAX_ENVS[spec] is not None
    module_name, _, attr = spec.partition(":")
    module = import_user_module(module_name, "--env", spec)
    target = getattr(module, attr, None)
    made = made_by(target, spec)
    jax_env = not isinstance(made, (str, gym.Env)) and not is_vector_env(made) and looks_like_jax_env(made)
    if made is not None and jax_env:
        as_gymnax(made, f"--env {spec}")
        USER_JAX_ENVS[spec] = made
        return True
    if isinstance(made, gym.Env) and made is not target:
        made.close()  # (a Gymnasium factory's env, made only to see its kind: the host driver makes its own)
    USER_JAX_ENVS[spec] = None
    return False


def made_by(target: Any, spec: str) -> Any:
    """What an entry point's attribute gives: itself (an object), an instance of a class written as a JAX env,
    or a Python function's result; None for any other class, and for a function that raises (the host driver
    calls it again and says what went wrong, as for any Gymnasium factory)."""
    if inspect.isclass(target):
        if not looks_like_jax_env(target) or issubclass(target, gym.Env):
            return None
        try:
            return target()
        except Exception as err:  # noqa: BLE001  (the user's code may raise anything)
            reason = (str(err).splitlines() or [""])[0][:200]
            raise ConfigError(f"--env {spec}: {target.__name__}() raised {type(err).__name__}: {reason}") from err
    if inspect.isfunction(target):
        try:
            return target()
        except Exception:  # noqa: BLE001
            return None
    return target
