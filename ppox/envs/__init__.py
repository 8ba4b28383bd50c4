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
    return gymnax_ids()


def check_env_id(env_id: str) -> None:
    """Raise ConfigError, naming the closest known ids, if ``env_id`` is not known."""
    from ppox.config import ConfigError, closest

    ids = known_env_ids()
    if env_id in ids:
        return
    hint = closest(env_id, ids)
    suggestion = f"; did you mean {' or '.join(hint)}?" if hint else f"; known ids: {', '.join(ids)}"
    raise ConfigError(f"--env: unknown environment {env_id!r}{suggestion}")


__all__ = ["EnvSpec", "JAX_ENV_IDS", "check_env_id", "known_env_ids", "make_autoreset_step", "make_gymnax"]
