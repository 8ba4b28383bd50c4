"""The env families: which ids each one claims, the module that makes them, and what ``ppox envs`` lists.

FAMILIES is in priority order: an env belongs to the first family that claims it and has the maker asked
for (the last, Gymnasium, also takes env objects and ids no family claims). Makers are found by module
path when first used, so that ``ppox --help`` and config checks import no adapter or optional dependency.

To add a family, write ppox/envs/NAME.py with ``make(env_id) -> (env, env_params)`` (a gymnax-style JAX env) and
add ``Family("NAME", claims, "ppox.envs.NAME", fused="make", sections=..., extra=...)`` to FAMILIES before Gymnasium,
and the extra to pyproject.toml: driver choice, config checks, the fused driver, evaluation and ppox envs read it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym

from ppox.envs.gymnax_import import import_gymnax
from ppox.envs.ids import (
    ATARI_IDS,
    BRAX_IDS,
    CRAFTAX_IDS,
    GYMNAX_MEMORY_IDS,
    JAX_ENV_IDS,
    JAXMARL_IDS,
    JAXMARL_OTHERS,
    JUMANJI_IDS,
    NAVIX_IDS,
    PETTINGZOO_IDS,
    PLAYGROUND_IDS,
    TASK_IDS,
    XMINIGRID_IDS,
    is_atari_id,
    is_entry_point,
    is_playground_id,
)
from ppox.errors import ConfigError


@functools.lru_cache(maxsize=1)
def gymnax_registered() -> tuple[str, ...]:
    """gymnax's registered ids (importing gymnax starts JAX's backend: --distributed must initialise first)."""
    return tuple(import_gymnax().registered_envs)


def gymnax_ids() -> tuple[str, ...]:
    """gymnax's registered ids, then ppox's own JAX-native tasks."""
    return gymnax_registered() + TASK_IDS


def other_gymnax_ids() -> tuple[str, ...]:
    """gymnax's registered ids that no curated section of ``ppox envs`` lists."""
    return tuple(i for i in gymnax_registered() if i not in JAX_ENV_IDS + GYMNAX_MEMORY_IDS)


def gymnasium_ids() -> list[str]:
    return sorted(gym.registry)


def is_gymnax_id(env_id: str) -> bool:
    return env_id in gymnax_registered()


def is_task_id(env_id: str) -> bool:
    return env_id in TASK_IDS


def is_jaxmarl_id(env_id: str) -> bool:
    return env_id.startswith(("MPE_", "SMAX-")) or env_id in JAXMARL_OTHERS


# JAX envs of the user's by the name a run gives them: objects given from Python, and entry points found to
# make one (None: an entry point found to be a Gymnasium env). Filled by ppox.envs.user_jax where a run starts.
USER_JAX_ENVS: dict[str, Any] = {}


def is_user_jax_env(env_id: str) -> bool:
    """A JAX env of the user's that this process was given, or found behind an entry point."""
    return USER_JAX_ENVS.get(env_id) is not None


def is_unresolved_entry_point(env_id: str) -> bool:
    """An entry point not yet imported: it may make a JAX env (fused driver) or a Gymnasium one (host);
    importing it runs its code, so it is imported where a run starts, not where a config is checked."""
    return is_entry_point(env_id) and env_id not in USER_JAX_ENVS


def is_gymnasium_env(env_id: str) -> bool:
    """A registered Gymnasium id or a 'package.module:Class' entry point."""
    return is_entry_point(env_id) or env_id in gym.registry


class Section(NamedTuple):
    """A section of ``ppox envs``: a title and its ids (a tuple, or a function returning them when listed).
    ``curated``: ids ppox trains on and tests, one a line; otherwise a catalogue on one line."""

    title: str
    ids: tuple[str, ...] | Callable[[], Sequence[str]]
    curated: bool = True


@dataclasses.dataclass(frozen=True)
class Family:
    """One kind of environment: the ids it claims and the makers, functions of ``module`` named by string."""

    name: str
    claims: Callable[[str], bool]  # whether an id is this family's (cheap: no adapter imported)
    module: str  # the module holding the makers, imported when one is first used
    fused: str | None = None  # env_id -> (env, env_params): a gymnax-style JAX env, vmapped by the fused driver
    host: str | None = None  # (env, num_envs, vec, max_episode_steps, hide_obs) -> a SAME_STEP vector env
    single: str | None = None  # (env, video_folder=None) -> one Gymnasium env, for evaluation
    sections: tuple[Section, ...] = ()  # what ``ppox envs`` lists of it
    extra: str | None = None  # the pip extra that installs what it needs: pip install "ppox[EXTRA]"
    needs: tuple[str, ...] = ()  # modules its makers import, checked first so that a missing one names the extra
    pool: bool = False  # its fused maker is (env_id, num_envs, max_episode_steps, seed) -> one batch of envs
    on_request: bool = False  # driver "auto" never picks it: only --driver fused does
    open_ids: bool = False  # any id it claims passes the config check (checked where a run makes it)


PLAYGROUND = (Section("MuJoCo Playground (fused driver; playground/NAME[/randomized]), with presets", PLAYGROUND_IDS),)
FAMILIES: tuple[Family, ...] = (
    Family(
        "gymnax",
        is_gymnax_id,
        "ppox.envs.jax_envs",
        fused="gymnax_make",
        sections=(
            Section("JAX-native (fused driver), with presets", JAX_ENV_IDS),
            Section("other gymnax ids (default hyperparameters)", other_gymnax_ids, curated=False),
        ),
    ),
    Family(
        "tasks",
        is_task_id,
        "ppox.envs.jax_tasks",
        fused="make_task",
        sections=(
            Section(
                "memory tasks (partially observed; their presets use --memory gru) and masked games",
                GYMNAX_MEMORY_IDS + TASK_IDS,
            ),
        ),
        extra="pgx",  # (the games only: jax_tasks imports pgx where it makes one)
    ),
    Family(
        "navix",
        lambda env_id: env_id.startswith("Navix-"),
        "ppox.envs.navix",
        fused="make",
        sections=(Section("navix gridworlds (fused driver; any Navix-* id)", NAVIX_IDS),),
        extra="navix",
        needs=("navix",),
    ),
    Family(
        "jumanji",
        lambda env_id: env_id.startswith("Jumanji-"),
        "ppox.envs.jumanji",
        fused="make",
        sections=(Section("Jumanji (fused driver, legal-action masks; Jumanji- + any jumanji id)", JUMANJI_IDS),),
        extra="jumanji",
        needs=("jumanji",),
    ),
    Family(
        "xminigrid",
        lambda env_id: env_id.startswith("XLand-"),
        "ppox.envs.xminigrid",
        fused="make",
        sections=(Section("XLand-MiniGrid (fused driver; XLand- + any xminigrid id)", XMINIGRID_IDS),),
        extra="xminigrid",
        needs=("xminigrid",),
    ),
    Family(  # Craftax: achievement rates and the Crafter score as metrics (ppox.envs.episode_metrics)
        "craftax",
        lambda env_id: env_id.startswith("Craftax-"),
        "ppox.envs.craftax",
        fused="make",
        sections=(Section("Craftax (fused driver; achievements and score as metrics), with presets", CRAFTAX_IDS),),
        extra="craftax",
        needs=("craftax",),
    ),
    Family(
        "brax",
        lambda env_id: env_id.startswith("brax/"),
        "ppox.envs.brax",
        fused="make",
        sections=(Section("Brax (fused driver; brax/NAME, or brax/NAME/BACKEND), with presets", BRAX_IDS),),
        extra="brax",
        needs=("brax",),
    ),
    Family(  # MuJoCo Playground's dm_control suite and locomotion registries, on MJX (docs/jax-envs.md)
        "playground", is_playground_id, "ppox.envs.playground", fused="make", sections=PLAYGROUND, extra="playground"
    ),
    Family(  # JaxMARL: IPPO and MAPPO, agents stacked on the batch axis (docs/multi-agent.md)
        "jaxmarl",
        is_jaxmarl_id,
        "ppox.envs.jaxmarl",
        fused="make",
        sections=(Section("JaxMARL multi-agent (fused driver; IPPO, MAPPO with --critic world_state)", JAXMARL_IDS),),
        extra="marl",
        needs=("jaxmarl",),
    ),
    Family(  # EnvPool's Atari stepped from the compiled program: --vec envpool --driver fused
        "envpool",
        is_atari_id,
        "ppox.envs.envpool_xla",
        fused="EnvPoolXla",
        extra="envpool",
        needs=("envpool", "ale_py"),
        pool=True,
        on_request=True,
    ),
    Family(
        "atari",
        is_atari_id,
        "ppox.envs.atari",
        host="make_host_games",
        single="make_atari_env",
        sections=(Section("Atari (host driver; any ALE/Name-v5 or NameNoFrameskip-v4), with presets", ATARI_IDS),),
        extra="atari",
        needs=("ale_py",),
    ),
    Family(  # PettingZoo's multi-agent envs: every agent of every game a row, one shared policy (IPPO)
        "pettingzoo",
        lambda env_id: env_id.startswith("pettingzoo/"),
        "ppox.envs.pettingzoo",
        host="make_host_envs",
        single="make_one_env",
        sections=(Section("PettingZoo (host driver, agents as rows; pettingzoo/ + any env module)", PETTINGZOO_IDS),),
        extra="pettingzoo",
        needs=("pettingzoo",),
        open_ids=True,
    ),
    Family(  # your own JAX env: an object given from Python, or an entry point that makes one (docs/jax-envs.md)
        "user-jax",
        is_user_jax_env,
        "ppox.envs.user_jax",
        fused="make",
    ),
    Family(  # the last family also takes what no family claims: env objects, ids registered on first make
        "gymnasium",
        is_gymnasium_env,
        "ppox.envs.gym_envs",
        host="make_vector_env",
        single="make_one_env",
        sections=(Section("Gymnasium ids (host driver; also any 'package.module:Class')", gymnasium_ids, False),),
    ),
)


def family_for(env: Any, maker: str = "auto") -> Family | None:
    """The first family that claims ``env`` and has ``maker`` ("fused", "host" or "single"); for "auto", the
    first that claims it and is not ``on_request``. None for an env object, or an id no family claims."""
    if not isinstance(env, str):
        return None
    for family in FAMILIES:
        usable = not family.on_request if maker == "auto" else getattr(family, maker) is not None
        if usable and family.claims(env):
            return family
    return None


def missing_module(family: Family | None) -> str | None:
    """A module that ``family``'s makers need and that is not installed, else None."""
    needs = () if family is None else family.needs
    return next((name for name in needs if importlib.util.find_spec(name) is None), None)


def load_maker(family: Family, maker: str) -> Callable[..., Any]:
    """``family``'s ``maker`` ("fused", "host" or "single"), its module imported now; a ConfigError naming
    the pip extra where a module it needs is missing."""
    missing = missing_module(family)
    try:
        if missing is not None:
            raise ModuleNotFoundError(name=missing)
        module = importlib.import_module(family.module)
    except ModuleNotFoundError as err:
        if family.extra is None or err.name == family.module:
            raise
        raise ConfigError(f'the {family.name} envs need {err.name}: pip install "ppox[{family.extra}]"') from None
    return getattr(module, getattr(family, maker))


def make_host_envs(env, num_envs: int, vec: str, max_episode_steps: int | None = None, hide_obs: tuple = (), **agents):
    """The host driver's vector env of ``env`` (an id, entry point, env object or factory), by its family; ``agents``
    (multi-agent families only, given where not off): agent_id, critic, render_mode (PettingZoo's options)."""
    family = family_for(env, "host") or FAMILIES[-1]
    extra = {name: value for name, value in agents.items() if value not in (False, "local", None)}
    return load_maker(family, "host")(env, num_envs, vec, max_episode_steps, hide_obs, **extra)


def make_eval_env(env, video_folder=None):
    """One env for evaluation (Atari: whole games), by its family; ``video_folder``: every episode recorded."""
    family = family_for(env, "single") or FAMILIES[-1]
    return load_maker(family, "single")(env, video_folder=video_folder)


class Listed(NamedTuple):
    """One section of ``ppox envs``, its ids read."""

    title: str
    ids: tuple[str, ...]
    curated: bool  # ids ppox trains on and tests (one a line), else a catalogue (one line)
    family: str
    extra: str | None


def listing() -> list[Listed]:
    """The sections of ``ppox envs``: the curated ones first, then the catalogues, each in family order."""
    sections = [(section, family) for family in FAMILIES for section in family.sections]
    ordered = [pair for pair in sections if pair[0].curated] + [pair for pair in sections if not pair[0].curated]
    return [
        Listed(s.title, tuple(s.ids() if callable(s.ids) else s.ids), s.curated, f.name, f.extra) for s, f in ordered
    ]
