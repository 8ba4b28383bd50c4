"""Which environment ids exist, and which driver runs each.

gymnax ids are JAX-native (the fused driver); Gymnasium ids and ``package.module:Class`` entry points
run on the host driver. This module only names and checks ids; the adapters make the envs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util

import gymnasium as gym

from ppox.envs.gymnax_import import import_gymnax
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

# ppox's own JAX-native tasks (ppox.envs.jax_tasks): memory tasks and pgx games (pip install "ppox[pgx]")
TASK_IDS = ("CartPoleNoVel-v1", "PendulumNoVel-v1", "RepeatPrevious-v0", "TicTacToe-pgx", "ConnectFour-pgx")


@functools.lru_cache(maxsize=1)
def gymnax_ids() -> tuple[str, ...]:
    """gymnax's registered ids, then ppox's own JAX-native tasks."""
    gymnax = import_gymnax()  # (imported here: it starts JAX's backend, which --distributed must precede)
    return tuple(gymnax.registered_envs) + TASK_IDS


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


# Packages that register Gymnasium envs when imported (Gymnasium 1.x no longer imports them itself),
# by the id prefixes they register.
PLUGINS = {
    "ALE/": "ale_py",
    "MiniGrid-": "minigrid",
    "BabyAI-": "minigrid",
    "highway-": "highway_env",
    "merge-": "highway_env",
    "roundabout-": "highway_env",
    "parking-": "highway_env",
    "intersection-": "highway_env",
    "racetrack-": "highway_env",
    "exit-": "highway_env",
    "MinAtar/": "minatar",
    "Fetch": "gymnasium_robotics",
    "Hand": "gymnasium_robotics",
    "AntMaze": "gymnasium_robotics",
    "PointMaze": "gymnasium_robotics",
    "popgym-": "popgym",
}


def is_atari_id(env_id: str) -> bool:
    """An Atari game of ale-py (ALE/Name-v5, NameNoFrameskip-v4): trained with the standard preprocessing."""
    return isinstance(env_id, str) and (env_id.startswith("ALE/") or env_id.endswith("NoFrameskip-v4"))


def import_plugins(env_id: str) -> None:
    """Import the packages that would register ``env_id``: those PLUGINS names for its prefix, and those
    that declare a 'gymnasium.envs' entry point (the plugin convention). Missing packages are skipped."""
    names = [module for prefix, module in PLUGINS.items() if env_id.startswith(prefix)]
    names += ["ale_py"] if is_atari_id(env_id) else []
    names += [ep.value.split(":")[0] for ep in importlib.metadata.entry_points(group="gymnasium.envs")]
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (not installed, or broken: the id stays unknown)
            continue


def check_env_id(env_id: str, strict: bool = True) -> None:
    """Raise ConfigError, naming at most three close ids, if ``env_id`` is neither known (after importing
    the packages that would register it) nor an entry point. ``strict=False`` lets a name pass that is
    close to no known id: the label of an env given as an object from Python."""
    if is_entry_point(env_id) or env_id in gymnasium_ids() or is_jax_env(env_id):
        return
    import_plugins(env_id)
    ids = known_env_ids()
    if env_id in ids:
        return
    hint = closest(env_id, ids, cutoff=0.5 if strict else 0.75)  # (a label need only be unlike every id)
    if not strict and not hint:
        return
    package = next((module for prefix, module in PLUGINS.items() if env_id.startswith(prefix)), None)
    missing = package is not None and importlib.util.find_spec(package) is None
    if is_atari_id(env_id) and importlib.util.find_spec("ale_py") is None:
        package, missing = '"ppox[atari]"', True
    suggestion = (
        f"; pip install {package.replace('_', '-')} to register it"
        if missing
        else f"; did you mean {' or '.join(hint)}?"
        if hint
        else "; `ppox envs` lists the ids, and 'package.module:Class' names any env class"
    )
    raise ConfigError(f"--env: unknown environment {env_id!r}{suggestion}")


def driver_for(env_id: str, driver: str = "auto", ray: str | None = None, env_object: bool = False) -> str:
    """The driver that runs a run: "fused" for a JAX-native env id, "host" for everything else.

    ``driver`` forces one ("auto" decides); Ray rollouts and an env object or factory given from Python
    always run on the host driver."""
    if env_object:
        if driver == "fused":
            raise ConfigError("an env object or factory runs on the host driver; drop driver='fused'")
        return "host"
    if driver == "host" or ray is not None:
        return "host"
    if is_jax_env(env_id) or (driver == "fused" and is_atari_id(env_id)):  # (Atari: EnvPool's XLA steps)
        return "fused"
    return "host"


def uses_envpool(config) -> bool:
    """A fused run of EnvPool's Atari (``--vec envpool --driver fused``)."""
    return config.vec == "envpool" and config.driver == "fused" and is_atari_id(config.env)
