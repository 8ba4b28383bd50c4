"""Which environment ids exist, and which driver runs each.

The families (``ppox.envs.families``) say which ids each kind of env claims and what makes them; this
module checks ids (importing the packages that register them) and picks the driver. It makes no env.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import reprlib

from ppox.envs.families import (
    JAX_ENV_IDS,
    TASK_IDS,
    family_for,
    gymnasium_ids,
    gymnax_ids,
    is_atari_id,
    is_entry_point,
    listing,
    missing_module,
)
from ppox.errors import ConfigError, closest

# (the ids and predicates that live in ppox.envs.families are also named here, where their callers look)
__all__ = [
    "JAX_ENV_IDS",
    "TASK_IDS",
    "check_env_id",
    "driver_for",
    "gymnasium_ids",
    "gymnax_ids",
    "import_plugins",
    "is_atari_id",
    "is_entry_point",
    "is_jax_env",
    "known_env_ids",
    "uses_envpool",
]


def is_jax_env(env_id: str) -> bool:
    """An id that a JAX-native family makes (the fused driver vmaps it)."""
    family = family_for(env_id, "fused")
    return family is not None and not family.pool


def is_open_id(env_id: str) -> bool:
    """An id of a family that takes any id it claims (PettingZoo's modules), whose package is installed."""
    family = family_for(env_id)
    return family is not None and family.open_ids and missing_module(family) is None


def known_env_ids() -> list[str]:
    """The ids ``ppox envs`` lists (the JAX-native ones first), then the Gymnasium registry's."""
    return list(dict.fromkeys([i for section in listing() for i in section.ids] + gymnasium_ids()))


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


def import_plugins(env_id: str) -> None:
    """Import the packages that would register ``env_id``: those PLUGINS names for its prefix, and those
    that declare a 'gymnasium.envs' entry point (the plugin convention). Missing packages are skipped."""
    names = [module for prefix, module in PLUGINS.items() if env_id.startswith(prefix)]
    host = family_for(env_id, "host")  # (not "auto": a host-driver process need not import gymnax)
    names += list(host.needs) if host is not None else []
    names += [ep.value.split(":")[0] for ep in importlib.metadata.entry_points(group="gymnasium.envs")]
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (not installed, or broken: the id stays unknown)
            continue


def missing_package(env_id: str) -> str | None:
    """What to pip install for ``env_id`` where a module that makes or registers it is missing: its
    family's extra, else the plugin package of its prefix."""
    family = family_for(env_id)
    if family is not None and family.extra is not None and missing_module(family) is not None:
        return f'"ppox[{family.extra}]"'
    package = next((module for prefix, module in PLUGINS.items() if env_id.startswith(prefix)), None)
    return package.replace("_", "-") if package is not None and importlib.util.find_spec(package) is None else None


def check_env_id(env_id: str, strict: bool = True) -> None:
    """Raise ConfigError, naming at most three close ids, if ``env_id`` is neither known (after importing
    the packages that would register it) nor an entry point. ``strict=False`` lets a name pass that is
    close to no known id: the label of an env given as an object from Python."""
    if is_entry_point(env_id) or env_id in gymnasium_ids() or is_jax_env(env_id) or is_open_id(env_id):
        return
    if len(env_id) > 200:  # (no id is that long: said at once, not after comparing it with every id)
        if strict:
            raise ConfigError(f"--env: unknown environment {reprlib.repr(env_id)} ({len(env_id):,} characters)")
        return
    import_plugins(env_id)
    ids = known_env_ids()
    package = missing_package(env_id)
    if env_id in ids and package is None:
        return
    hint = closest(env_id, ids, cutoff=0.5 if strict else 0.75)  # (a label need only be unlike every id)
    if not strict and not hint:
        return
    suggestion = (
        f"; pip install {package} to register it"
        if package is not None
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
    family = family_for(env_id, "fused" if driver == "fused" else "auto")  # (fused Atari: EnvPool's XLA steps)
    return "fused" if family is not None and family.fused is not None else "host"


def uses_envpool(config) -> bool:
    """A fused run of EnvPool's Atari (``--vec envpool --driver fused``)."""
    return config.vec == "envpool" and config.driver == "fused" and is_atari_id(config.env)
