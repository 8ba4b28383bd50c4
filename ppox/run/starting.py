"""Where a run starts: the driver for a config (its ``--init-from`` checked against the env), or a driver with
the state of a checkpoint (``--resume``), its config changed where the resume asks (a new end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax

from ppox.acting.policy import POLICY_FILE
from ppox.config.config import Config
from ppox.config.trust import confirm_file_config
from ppox.drivers.distributed import init_distributed
from ppox.drivers.fused import FusedDriver
from ppox.drivers.host import HostDriver
from ppox.envs.registry import check_env_id, driver_for, is_entry_point
from ppox.envs.user_jax import is_jax_object, register_object, resolve_entry_point
from ppox.errors import CheckpointError, ConfigError
from ppox.run.init_from import check as check_init_from
from ppox.run.loop import finished_early
from ppox.storage.checkpoint import Checkpoint, load_policy_file
from ppox.utils.naming import named


def make_driver(config: Config, env: Any = None) -> HostDriver | FusedDriver:
    """The driver for this config: host for an env object or factory, else as ``driver_for`` says. With
    --init-from, the source's policy is checked against the driver's env and network here, before the run
    folder exists (ConfigError naming the mismatch)."""
    config, env = with_jax_env(config, env)
    if env is None:
        check_env_id(config.env)  # (a Config lets a name pass that may label an env object)
    driver = new_driver(driver_for(config.env, config.driver, config.ray, env_object=env is not None), config, env)
    try:
        if config.init_from is not None:
            check_init_from(driver.config, driver.spec)
    except BaseException:
        driver.close()
        raise
    return driver


def with_jax_env(config: Config, env: Any) -> tuple[Config, Any]:
    """(config, env) where a JAX env decides the driver: a JAX env object kept under its name (the config's env
    from then on, ``env`` None), or an entry point imported to see what it makes; the config validated again."""
    if is_jax_object(env):
        if config.driver == "host":
            raise ConfigError("a JAX env object runs on the fused driver; drop driver='host'")
        return config.replace(env=register_object(env)), None
    if env is None and is_entry_point(config.env) and config.driver != "host" and config.ray is None:
        resolve_entry_point(config.env)
        return config.replace(), None  # (its checks again, now that the driver is known)
    return config, env


def new_driver(kind: str, config: Config, env: Any) -> HostDriver | FusedDriver:
    if kind == "host":
        return HostDriver(config, env if env is not None else config.env)
    return FusedDriver(_for_this_process(config))


def _for_this_process(config: Config) -> Config:
    """Under --distributed, join the processes; all but process 0 train without writing (one run folder)."""
    if not config.distributed:
        return config
    init_distributed()
    return config if jax.process_index() == 0 else config.replace(save=False, progress=False)


def restored(checkpoint: Checkpoint, run_path, env: Any, ray: str | None, trust: bool, changes: dict) -> tuple:
    """(checkpoint, driver, state restored from it), or (checkpoint, None, None) where there is nothing to run:
    a language-model run, or one that finished and has its policy. ``changes``: Config fields that replace the
    checkpoint's (a new end, the progress bar). CheckpointError where the checkpoint does not fit its own config
    (``newest_usable`` then tries the one before); ConfigError where a new end is not past the updates done."""
    if checkpoint.meta["driver"] == "lm":
        return checkpoint, None, None
    if is_jax_object(env):  # (kept under the run's name for the env before its config is read)
        register_object(env, str(checkpoint.meta["config"].get("env")))
    config = Config.from_dict(checkpoint.meta["config"])
    confirm_file_config(config, checkpoint.path, env, ray, trust)
    if checkpoint.meta["driver"] == "fused" and is_entry_point(config.env):
        resolve_entry_point(config.env)  # (confirmed: repeated or trusted)
    if changes:
        config = with_changes(config, checkpoint.update, changes)
    if (checkpoint.update >= config.num_updates or finished_early(checkpoint, changes)) and has_policy(run_path):
        return checkpoint, None, None
    # (an env id: the config's; distributed: every process reads the checkpoint, on a shared file system)
    driver = new_driver(checkpoint.meta["driver"], config, None if isinstance(env, str) else env)
    try:
        return checkpoint, driver, driver.restore(driver.init(), checkpoint)  # type: ignore[arg-type]
    except BaseException:
        driver.close()
        raise


def with_changes(config: Config, done: int, changes: dict) -> Config:
    """``config`` with ``changes``; ConfigError where a new --total-timesteps does not go past the ``done`` updates."""
    changed = config.replace(**changes)
    if "total_timesteps" in changes and changed.num_updates <= done:
        given = named("--total-timesteps ", "total_timesteps=") + f"{changed.total_timesteps:,}"
        steps = done * config.batch_size
        raise ConfigError(
            f"{given} is {changed.num_updates:,} update(s) of {config.batch_size} steps, and the run has done {done:,} "
            f"({steps:,} steps): give a new end above {steps:,} steps"
        )
    return changed


def has_policy(run_path) -> bool:
    """Whether the run folder holds a readable policy file."""
    try:
        load_policy_file(Path(run_path) / POLICY_FILE)
    except CheckpointError:
        return False
    return True
