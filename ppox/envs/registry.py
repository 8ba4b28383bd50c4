"""Which environment ids exist, and which driver runs each.

gymnax ids are JAX-native (the fused driver); Gymnasium ids and ``package.module:Class`` entry points
run on the host driver. This module only names and checks ids; the adapters make the envs.
"""

from __future__ import annotations

import functools

import gymnasium as gym

from ppox.errors import ConfigError, closest

# gymnax ids that ppox trains on and tests (the others are registered but not presets).
JAX_ENV_IDS = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
    "Seaquest-MinAtar",
)


@functools.lru_cache(maxsize=1)
def gymnax_ids() -> tuple[str, ...]:
    import gymnax  # (imported here: importing gymnax starts JAX's backend, which --distributed must precede)

    return tuple(gymnax.registered_envs)


def gymnasium_ids() -> list[str]:
    return sorted(gym.registry)


def is_entry_point(env_id: str) -> bool:
    return ":" in env_id


def is_jax_env(env_id: str) -> bool:
    return env_id in gymnax_ids()


def known_env_ids() -> list[str]:
    """gymnax ids first, then the Gymnasium registry's."""
    jax_ids = list(gymnax_ids())
    return jax_ids + [i for i in gymnasium_ids() if i not in jax_ids]


def check_env_id(env_id: str) -> None:
    """Raise ConfigError, naming the closest known ids, if ``env_id`` is neither known nor an entry point."""
    if is_entry_point(env_id):
        return
    ids = known_env_ids()
    if env_id in ids:
        return
    hint = closest(env_id, ids)
    suggestion = f"; did you mean {' or '.join(hint)}?" if hint else f"; known ids: {', '.join(ids)}"
    raise ConfigError(f"--env: unknown environment {env_id!r}{suggestion}")


def driver_for(env_id: str, driver: str = "auto", ray: str | None = None, env_object: bool = False) -> str:
    """The driver that runs a run: "fused" for a JAX-native env id, "host" for everything else.

    ``driver`` forces one ("auto" decides); Ray rollouts and an env object or factory given from Python
    always run on the host driver."""
    if env_object:
        if driver == "fused":
            raise ConfigError("an env object or factory runs on the host driver; drop driver='fused'")
        return "host"
    if driver == "host" or ray is not None or not is_jax_env(env_id):
        return "host"
    return "fused"
