"""Environment adapters: which ids exist, and how to make them."""

from __future__ import annotations

from ppox.envs.jax_envs import gymnax_ids, make_autoreset_step, make_gymnax
from ppox.envs.spec import EnvSpec

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


def known_env_ids() -> list[str]:
    """gymnax ids first, then the Gymnasium registry's."""
    from ppox.envs.gym_envs import gymnasium_ids

    jax_ids = gymnax_ids()
    return jax_ids + [i for i in gymnasium_ids() if i not in jax_ids]


def is_jax_env(env_id: str) -> bool:
    return env_id in gymnax_ids()


def check_env_id(env_id: str) -> None:
    """Raise ConfigError, naming the closest known ids, if ``env_id`` is neither known nor an entry point."""
    from ppox.config import ConfigError, closest
    from ppox.envs.gym_envs import is_entry_point

    if is_entry_point(env_id):
        return
    ids = known_env_ids()
    if env_id in ids:
        return
    hint = closest(env_id, ids)
    suggestion = f"; did you mean {' or '.join(hint)}?" if hint else f"; known ids: {', '.join(ids)}"
    raise ConfigError(f"--env: unknown environment {env_id!r}{suggestion}")


__all__ = ["EnvSpec", "JAX_ENV_IDS", "check_env_id", "gymnax_ids", "is_jax_env", "known_env_ids", "make_autoreset_step", "make_gymnax"]
