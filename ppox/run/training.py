"""``ppox.train`` and ``ppox.resume``: choose the driver, run the loop, save the policy.

Everything around the updates (chunks, signals, checkpoints, logging) is ``ppox.run.loop``; everything that
knows an environment or a compiled program is a driver (``ppox.drivers``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ppox.acting.policy import POLICY_FILE, Policy
from ppox.agent.metrics import final_return
from ppox.config.config import Config
from ppox.config.trust import confirm_file_config
from ppox.drivers.distributed import init_distributed
from ppox.drivers.fused import FusedDriver
from ppox.drivers.host import HostDriver
from ppox.envs.registry import check_env_id, driver_for
from ppox.envs.spec import EnvSpec
from ppox.errors import CheckpointError, RunWriteError
from ppox.run.loop import Outcome, Start, run_loop
from ppox.storage.checkpoint import Checkpoint, load_policy_file, newest_usable, save_policy
from ppox.storage.runfolder import discard_if_empty, make_run_path, take_run
from ppox.storage.runlog import RunLog, write_summary
from ppox.utils import signals

__all__ = ["TrainResult", "init_distributed", "resume", "summary", "train"]


@dataclasses.dataclass
class TrainResult:
    """What a run produced. ``metrics[name]`` is a NumPy array [seeds, num_updates]."""

    config: Config
    spec: EnvSpec
    params: Any  # seed-stacked parameter pytree (leading axis = seed)
    obs_stats: Any  # seed-stacked RunningMeanStd
    metrics: dict[str, np.ndarray]
    wall_time: float  # seconds, compilation included
    run_path: Path | None
    interrupted: bool = False  # stopped early by SIGINT/SIGTERM; ppox.resume(run_path) continues it

    def final_return(self, fraction: float = 0.1) -> np.ndarray:
        """Per seed: mean return of the episodes finished in the last ``fraction`` of updates."""
        return final_return(self.metrics, fraction)

    def policy(self, seed_index: int = 0) -> Policy:
        pick = lambda x: x[seed_index]  # noqa: E731
        return Policy(
            self.config,
            self.spec,
            jax.tree_util.tree_map(pick, self.params),
            jax.tree_util.tree_map(pick, self.obs_stats),
        )


def train(config: Config | None = None, *, env: Any = None, **overrides) -> TrainResult:
    """Train PPO as ``config`` says.

    SIGINT (Ctrl-C) or SIGTERM finishes the work in flight, saves a checkpoint and returns the
    result so far with ``interrupted=True``; ``ppox.resume(result.run_path)`` continues the run.

    Args:
        config: the run's configuration. Default: ``Config.preset(env)`` with ``overrides``.
        env: an env id (the same as ``env=`` in the config), or a Gymnasium env instance or a function
            returning a new env: those train on the host driver, and ``config.env`` only names the run.
        **overrides: Config fields that replace the config's (or the preset's) values.

    Returns:
        A ``TrainResult``: the config, the env spec, the seed-stacked parameters and observation
        statistics (leading axis [seeds]), ``metrics[name]`` as NumPy arrays [seeds, num_updates], the
        wall time in seconds (compilation included), the run folder (None when ``config.save`` is off),
        and ``interrupted``.

    Raises:
        ConfigError: the config, an override or the env id is invalid (before any work starts).
    """
    if isinstance(env, str):
        overrides, env = {**overrides, "env": env}, None
    if config is None:
        config = Config.preset(**overrides)
    elif overrides:
        config = config.replace(**overrides)
    start = Start()
    driver = make_driver(config, env)
    run_path = None
    try:
        run_path = make_run_path(driver.config) if driver.config.save else None
        say_rounding(driver.config)
        cancel = signals.on_hard_exit(lambda: discard_if_empty(run_path))
        try:
            return _run(driver, run_path, start)
        finally:
            cancel()
    except BaseException:
        discard_if_empty(run_path)
        raise
    finally:
        driver.close()


def say_rounding(config: Config) -> None:
    """One line, up front, when the steps asked for are not whole updates."""
    if config.total_timesteps % config.batch_size:
        print(
            f"ppox: --total-timesteps {config.total_timesteps:,} is {config.num_updates:,} updates of num_envs * "
            f"num_steps = {config.batch_size}: training {config.num_updates * config.batch_size:,} steps",
            file=sys.stderr,
            flush=True,
        )


def resume(run_path, env: Any = None, *, ray: str | None = None, trust_run_config: bool = False) -> TrainResult:
    """Continue an interrupted run from its newest loadable checkpoint to its planned end.

    The fused driver continues exactly: the result is bit-identical to an uninterrupted run. The
    host driver restores the learner (parameters, optimiser, statistics, random state) exactly and
    starts the environments afresh (episodes in progress at the interruption are lost).

    A file is not trusted to run code or dial hosts: an entry point ('module:Class') or a Ray address in
    the checkpoint's config is used only if ``env`` / ``ray`` repeat it, or with ``trust_run_config``.

    Args:
        run_path: the run folder (``TrainResult.run_path``, or the folder ``ppox train`` printed).
        env: the env object or factory the run was started with, if it was not started from an id; or
            the entry point the checkpoint names, repeated.
        ray: the Ray address the checkpoint names, repeated.
        trust_run_config: use the checkpoint's entry point and Ray address without their being repeated.

    Returns:
        A ``TrainResult`` of the whole run (as ``ppox.train`` returns), its metrics from the first
        update on.

    Raises:
        CheckpointError: no loadable checkpoint, a language-model run, or a run that already finished.
        ConfigError: the checkpoint names code or a host that was not repeated or trusted.
    """
    checkpoint, driver, state = newest_usable(run_path, lambda c: _restored(c, run_path, env, ray, trust_run_config))
    if driver is None:
        if checkpoint.meta["driver"] == "lm":
            raise CheckpointError(
                f"{run_path} is a language-model run: continue it with ppox lm train --resume {run_path}"
            )
        raise CheckpointError(f"{run_path}: the run already finished ({checkpoint.update} updates)")
    try:
        start = Start.from_checkpoint(checkpoint, driver.metric_names)
        path = Path(run_path) if driver.config.save else None
        if checkpoint.update >= driver.config.num_updates:
            return _write_lost_policy(driver, path, start, state, checkpoint.path)
        return _run(driver, path, start, state)
    finally:
        driver.close()


def _restored(checkpoint: Checkpoint, run_path, env: Any, ray: str | None, trust: bool) -> tuple:
    """(checkpoint, driver, state restored from it), or (checkpoint, None, None) where there is nothing to run:
    a language-model run, or one that finished and has its policy. CheckpointError where the checkpoint does
    not fit its own config (``newest_usable`` then tries the one before)."""
    if checkpoint.meta["driver"] == "lm":
        return checkpoint, None, None
    config = Config.from_dict(checkpoint.meta["config"])
    confirm_file_config(config, checkpoint.path, env, ray, trust)
    if checkpoint.update >= config.num_updates and _has_policy(run_path):
        return checkpoint, None, None
    # (an env id: the config's; distributed: every process reads the checkpoint, on a shared file system)
    driver = _new_driver(checkpoint.meta["driver"], config, None if isinstance(env, str) else env)
    try:
        return checkpoint, driver, driver.restore(driver.init(), checkpoint)  # type: ignore[arg-type]
    except BaseException:
        driver.close()
        raise


def _has_policy(run_path) -> bool:
    """Whether the run folder holds a readable policy file."""
    try:
        load_policy_file(Path(run_path) / POLICY_FILE)
    except CheckpointError:
        return False
    return True


def _write_lost_policy(driver, run_path: Path | None, start: Start, state, checkpoint: Path) -> TrainResult:
    """A run that finished but lost its policy file (a kill -9 between the final checkpoint and the policy):
    the policy and the summary written from the final checkpoint."""
    lock = take_run(run_path) if run_path is not None else None
    try:
        return _save_result(driver, run_path, Outcome(state, start.metrics, False, start.wall_time))
    finally:
        if lock is not None:
            lock.release()
            print(f"ppox: {run_path} had finished without its policy file: written from {checkpoint}", file=sys.stderr)


def make_driver(config: Config, env: Any = None):
    """The driver for this config: host for an env object or factory, else as ``driver_for`` says."""
    if env is None:
        check_env_id(config.env)  # (a Config lets a name pass that may label an env object)
    return _new_driver(driver_for(config.env, config.driver, config.ray, env_object=env is not None), config, env)


def _new_driver(kind: str, config: Config, env: Any) -> HostDriver | FusedDriver:
    if kind == "host":
        return HostDriver(config, env if env is not None else config.env)
    return FusedDriver(_for_this_process(config))


def _for_this_process(config: Config) -> Config:
    """Under --distributed, join the processes; all but process 0 train without writing (one run folder)."""
    if not config.distributed:
        return config
    init_distributed()
    return config if jax.process_index() == 0 else config.replace(save=False, progress=False)


def _run(driver, run_path: Path | None, start: Start, state=None) -> TrainResult:
    """Run the loop with a run log; then save the policy and the summary, and say how to resume."""
    state = driver.init() if state is None else state
    log = RunLog(driver.config, run_path, resume_from=start.update if start.update else None)
    try:
        try:
            outcome = run_loop(driver, state, log, run_path, start)
        except BaseException:
            _close_quietly(log)
            raise
        log.close(release=False)  # (the lock is held until the policy and the summary are written)
        return _save_result(driver, run_path, outcome)
    except RunWriteError as err:
        raise RunWriteError(
            f"{err}; the checkpoints written before are kept: once the problem is fixed, continue "
            f"with: ppox train --resume {run_path}"
        ) from None
    finally:
        log.release()


def _close_quietly(log: RunLog) -> None:
    """Close the run log while another error is on its way (which says more than a write error would)."""
    try:
        log.close()
    except OSError:
        pass


def _save_result(driver, run_path: Path | None, outcome: Outcome) -> TrainResult:
    params, obs_stats = driver.policies(outcome.state)
    result = TrainResult(
        driver.config, driver.spec, params, obs_stats, outcome.metrics, outcome.wall_time, run_path, outcome.interrupted
    )
    if result.interrupted:
        where = f"ppox train --resume {run_path}" if run_path is not None else "(nothing was saved)"
        print(
            f"ppox: stopped after {result.metrics['episode_return'].shape[1]} of {result.config.num_updates} "
            f"updates; to continue: {where}",
            file=sys.stderr,
            flush=True,
        )
    if run_path is not None:
        save_policy(
            run_path / POLICY_FILE,
            params,
            dataclasses.asdict(obs_stats),
            dataclasses.asdict(result.config),
            result.spec.to_dict(),
        )
        write_summary(run_path, summary(result))
    return result


def summary(result: TrainResult) -> dict:
    """The run's figures as summary.json holds them."""
    finals = result.final_return()
    config = result.config
    steps = result.metrics["episode_return"].shape[1] * config.batch_size  # done, not planned: honest when cut short
    ended = np.isfinite(finals)
    return {
        "env": config.env,
        "seeds": config.seeds,
        "total_timesteps": steps,
        "planned_timesteps": config.num_updates * config.batch_size,
        "wall_time_s": round(result.wall_time, 3),
        "steps_per_second": round(steps * config.seeds / result.wall_time, 1),
        "final_return_per_seed": [round(float(x), 3) if ok else None for x, ok in zip(finals, ended)],
        "final_return_mean": round(float(finals[ended].mean()), 3) if ended.any() else None,
        "interrupted": result.interrupted,
        **{
            name: int(total(result.metrics[name]))
            for name, total in (("worker_restarts", np.nanmax), ("illegal_actions", np.nansum))
            if name in result.metrics
        },
        "run_path": None if result.run_path is None else str(result.run_path),
    }
