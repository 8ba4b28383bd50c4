"""``--init-from RUN``: a new run that starts from another run's policy (fine-tuning).

The source's parameters and observation statistics replace the fresh ones in the new run's first state;
everything else starts afresh: the optimiser (Adam's moments at zero), the learning-rate schedule (over the
new run's length), the reward normalisation, the envs and the random keys (the new run's ``--seed``). The
source is read as ``ppox.load`` reads a run folder: its policy.safetensors, or, for a run still in progress
(no policy file yet), the policy saved with its newest checkpoint. Nothing is unpickled.

Seeds: where the source has as many seeds as the new run, seed i starts from the source's seed i; otherwise
every seed starts from the source's seed 0.

The new run must observe and act as the source did (observation shape, action kind and sizes) and build the
same network (``NETWORK_FIELDS``); a mismatch is a ConfigError naming it, raised before the run folder is
made (``check``) and again when the state is built (``start_from``).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import jax
import numpy as np

from ppox.acting.policy import Policy, load
from ppox.config.config import Config
from ppox.drivers.base import EnvDriver
from ppox.envs.spec import EnvSpec
from ppox.errors import CheckpointError, ConfigError
from ppox.utils.naming import with_fields

CONFIG_FIELDS = frozenset(field.name for field in dataclasses.fields(Config))
# the settings that make the network and what it reads: a policy trained with other values cannot be reused
NETWORK_FIELDS = (
    "network",
    "hidden_sizes",
    "activation",
    "memory",
    "memory_size",
    "post_memory_sizes",
    "shared_trunk",
    "norm_obs",
    "hide_obs",
)


def check(config: Config, spec: EnvSpec) -> Policy:
    """The source's seed-0 policy, once it is known to fit a run of ``config`` on an env of ``spec``."""
    assert config.init_from is not None
    try:
        source = load(config.init_from)
    except CheckpointError as err:
        raise CheckpointError(f"--init-from {config.init_from}: {err}") from None
    problem = mismatch(source.config, source.spec, config, spec)
    if problem:
        raise ConfigError(with_fields(f"--init-from {config.init_from}: {problem}", CONFIG_FIELDS))
    return source


def mismatch(old: Config, old_spec: EnvSpec, new: Config, new_spec: EnvSpec) -> str | None:
    """What keeps a policy of (``old``, ``old_spec``) from starting a run of (``new``, ``new_spec``); None: nothing."""
    if tuple(old_spec.obs_shape) != tuple(new_spec.obs_shape):
        return f"its policy observes shape {tuple(old_spec.obs_shape)} but {new.env} gives {tuple(new_spec.obs_shape)}"
    if (old_spec.action_kind, tuple(old_spec.action_dims)) != (new_spec.action_kind, tuple(new_spec.action_dims)):
        return f"its policy's actions are {_actions(old_spec)} but {new.env} takes {_actions(new_spec)}"
    for name in NETWORK_FIELDS:
        was, now = _setting(old, old_spec, name), _setting(new, new_spec, name)
        if was != now:
            advice = f"give {_flag(name, was)}" if was != () else f"drop {_flag(name)}"
            return f"it was trained with {_flag(name, was)}, this run has {_flag(name, now)}: {advice}"
    return None


def start_from(driver: EnvDriver, state: Any) -> Any:
    """``state`` (a driver's fresh ``init()``) with the parameters and observation statistics of
    ``driver.config.init_from``; ``state`` as it is when the config has none."""
    config = driver.config
    assert isinstance(config, Config)  # (an env driver's)
    if config.init_from is None:
        return state
    source = check(config, driver.spec)
    picked = [source]
    if config.seeds > 1 and source.config.seeds == config.seeds:  # seed i from the source's seed i
        picked += [load(config.init_from, i) for i in range(1, config.seeds)]
    elif source.config.seeds > 1:
        print(
            f"ppox: --init-from {config.init_from} has {source.config.seeds} seeds, this run {config.seeds}: "
            "every seed starts from its seed 0",
            file=sys.stderr,
        )
    picked += [source] * (config.seeds - len(picked))
    stacked = lambda *leaves: np.stack([np.asarray(leaf) for leaf in leaves])  # noqa: E731
    params = jax.tree_util.tree_map(stacked, *[p.params for p in picked])
    obs_stats = jax.tree_util.tree_map(stacked, *[p.obs_stats for p in picked])
    _check_arrays(config.init_from, (params, obs_stats), driver.policies(state))
    return driver.with_policies(state, params, obs_stats)


def _check_arrays(path: str, given, want) -> None:
    """ConfigError unless ``given`` has the leaves (names, shapes, dtypes) of ``want`` (both seed-stacked)."""
    if _leaves(given) != _leaves(want):
        raise ConfigError(f"--init-from {path}: its parameters do not fit this run's network")


def _leaves(tree) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(key): (np.shape(leaf), np.asarray(leaf).dtype) for key, leaf in leaves}


def _setting(config: Config, spec: EnvSpec, name: str):
    """A network setting as it acts: --network auto as the torso it picks; --memory-size only with --memory."""
    if name == "network" and config.network == "auto":
        return "cnn" if len(spec.obs_shape) == 3 else "mlp"
    if name == "memory_size" and config.memory == "none":
        return None
    return getattr(config, name)


def _flag(name: str, value: Any = None) -> str:
    """A setting as the flag that gives it: --hidden-sizes 64 64, --norm-obs / --no-norm-obs."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    if isinstance(value, tuple):
        return f"{flag} {' '.join(map(str, value))}" if value else f"no {flag}"
    return flag if value is None else f"{flag} {value}"


def _actions(spec: EnvSpec) -> str:
    dims = list(spec.action_dims)
    if spec.action_kind == "discrete":
        return f"Discrete({dims[0]})"
    if spec.action_kind == "continuous":
        return f"continuous of size {dims[0]}"
    return f"MultiDiscrete({dims})"
