"""``ppox.train`` and ``ppox.resume``: choose the driver, run the loop, save the policy.

Everything around the updates (chunks, signals, checkpoints, logging) is ``ppox.run.loop``; everything that
knows an environment or a compiled program is a driver (``ppox.drivers``).
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ppox.acting.policy import POLICY_FILE, Policy
from ppox.agent.metrics import final_return
from ppox.config.config import Config
from ppox.drivers.distributed import init_distributed
from ppox.envs.registry import is_entry_point
from ppox.envs.spec import EnvSpec
from ppox.errors import CheckpointError, RunWriteError, UserCodeError
from ppox.run.callbacks import Callback, Callbacks, started_callbacks
from ppox.run.init_from import start_from
from ppox.run.loop import Outcome, Start, finished_early, run_loop
from ppox.run.starting import make_driver, restored
from ppox.storage.checkpoint import newest_usable, save_policy
from ppox.storage.runfolder import discard_if_empty, make_run_path, take_run
from ppox.storage.runlog import RunLog, write_summary
from ppox.utils import signals
from ppox.utils.naming import named

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
    stopped_by: str | None = None  # why a callback (a stopping rule) ended the run early; it is finished

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


def train(
    config: Config | None = None, *, env: Any = None, callbacks: Sequence[Callback] = (), **overrides
) -> TrainResult:
    """Train PPO as ``config`` says.

    SIGINT (Ctrl-C) or SIGTERM finishes the work in flight, saves a checkpoint and returns the
    result so far with ``interrupted=True``; ``ppox.resume(result.run_path)`` continues the run. A callback
    that stops the run (``stop_at_return``, ``ppox.StopOnReturn``, ...) saves a checkpoint and the policy and
    returns the result with ``stopped_by`` saying why: the run is finished (``resume`` does not continue it).
    An error in the user's code (the env, a callback) raises ``UserCodeError`` once the last completed update
    is checkpointed: ``ppox.resume`` continues from it.

    Args:
        config: the run's configuration. Default: ``Config.preset(env)`` with ``overrides``.
        env: an env id (the same as ``env=`` in the config), or a Gymnasium env instance or a function
            returning a new env: those train on the host driver, and ``config.env`` only names the run.
        callbacks: ``ppox.Callback`` objects that see each update and evaluation and may stop the run
            (``ppox.run.callbacks``).
        **overrides: Config fields that replace the config's (or the preset's) values.

    Returns:
        A ``TrainResult``: the config, the env spec, the seed-stacked parameters and observation
        statistics (leading axis [seeds]), ``metrics[name]`` as NumPy arrays [seeds, num_updates], the
        wall time in seconds (compilation included), the run folder (None when ``config.save`` is off),
        ``interrupted`` and ``stopped_by``.

    Raises:
        ConfigError: the config, an override, the env id or a callback is invalid (before any work starts).
        UserCodeError: the env or a callback raised (its exception is the ``__cause__``).
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
        hooks = started_callbacks(callbacks, driver.config)
        run_path = make_run_path(driver.config) if driver.config.save else None
        say_rounding(driver.config)
        cancel = signals.on_hard_exit(lambda: discard_if_empty(run_path))
        try:
            return _run(driver, run_path, start, callbacks=hooks)
        finally:
            cancel()
    except BaseException:
        discard_if_empty(run_path)
        raise
    finally:
        driver.close()


def resume_command(driver, run_path: Path | None) -> str:
    """The command that continues this run: with the entry point or Ray address its files name (which a resume
    must repeat); a run of an env object or factory continues in Python, given that env again."""
    config = driver.config
    if run_path is None:
        return "(nothing was saved)"
    if not isinstance(getattr(driver, "env", ""), str):
        return f"ppox.resume({str(run_path)!r}, env=...) with the env the run was started with"
    env = ["--env", config.env] if is_entry_point(config.env) else []
    ray = ["--ray", config.ray] if config.ray not in (None, "local") else []
    return shlex.join(["ppox", "train", "--resume", str(run_path), *env, *ray])


def say_rounding(config: Config) -> None:
    """One line, up front, when the steps asked for are not whole updates."""
    if config.total_timesteps % config.batch_size:
        print(
            f"ppox: --total-timesteps {config.total_timesteps:,} is {config.num_updates:,} updates of num_envs * "
            f"num_steps = {config.batch_size}: training {config.num_updates * config.batch_size:,} steps",
            file=sys.stderr,
            flush=True,
        )


def resume(
    run_path,
    env: Any = None,
    *,
    ray: str | None = None,
    trust_run_config: bool = False,
    total_timesteps: int | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Continue a run from its newest loadable checkpoint to its planned end or, with ``total_timesteps``, to a
    new end (a finished run too).

    To the same end, the fused driver continues exactly (bit-identical to an uninterrupted run); the host
    driver restores the learner exactly and starts the envs afresh (episodes in progress are lost). A new end
    keeps the whole state: from then on the run is one planned to that end (config.json, checkpoints, policy
    file and summary say so; metrics.csv goes on), its annealed learning rate lr * (1 - i / new num_updates)
    from update i on, as SB3's ``learn(reset_num_timesteps=False)`` does (so not bit-identical to a run planned
    to that end from the start).

    A file is not trusted to run code or dial hosts: an entry point ('module:Class') or a Ray address in
    the checkpoint's config is used only if ``env`` / ``ray`` repeat it, or with ``trust_run_config``.

    Args:
        run_path: the run folder (``TrainResult.run_path``, or the folder ``ppox train`` printed).
        env: the env object or factory the run was started with, if it was not started from an id; or
            the entry point the checkpoint names, repeated.
        ray: the Ray address the checkpoint names, repeated.
        trust_run_config: use the checkpoint's entry point and Ray address without their being repeated.
        total_timesteps: a new end in env steps per seed, past the checkpoint's; None: the run's own end.
        progress: show a progress bar (None: as the run did).

    Returns:
        A ``TrainResult`` of the whole run (as ``ppox.train`` returns), its metrics from the first
        update on.

    Raises:
        CheckpointError: no loadable checkpoint, a language-model run, or a finished run and no new end.
        ConfigError: the checkpoint names code or a host not repeated or trusted; an end not past the updates done.
    """
    changes = {k: v for k, v in (("total_timesteps", total_timesteps), ("progress", progress)) if v is not None}
    checkpoint, driver, state = newest_usable(
        run_path, lambda c: restored(c, run_path, env, ray, trust_run_config, changes)
    )
    if driver is None:
        raise _not_resumable(run_path, checkpoint, changes)
    try:
        start = Start.from_checkpoint(checkpoint, driver.metric_names)
        path = Path(run_path) if driver.config.save else None
        if checkpoint.update >= driver.config.num_updates or finished_early(checkpoint, changes):
            return _write_lost_policy(driver, path, start, state, checkpoint.path)
        if "total_timesteps" in changes:
            say_rounding(driver.config)
        return _run(driver, path, start, state)
    finally:
        driver.close()


def _not_resumable(run_path, checkpoint, changes: dict) -> CheckpointError:
    """Why a checkpoint that no driver took cannot continue: a language-model run, or a finished one."""
    if checkpoint.meta["driver"] == "lm":
        return CheckpointError(
            f"{run_path} is a language-model run: continue it with ppox lm train --resume {run_path}"
        )
    stopped = finished_early(checkpoint, changes)  # (a stopping rule ended it: it is finished)
    how = f"stopped early by {stopped}" if stopped else f"{checkpoint.update} of {checkpoint.update} updates"
    return CheckpointError(
        f"{run_path}: the run already finished ({how}); to train "
        f"it further, give a new end: {named('--total-timesteps N', 'total_timesteps=N')} above "
        f"{checkpoint.meta.get('global_step', 0):,}"
    )


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


def _run(driver, run_path: Path | None, start: Start, state=None, callbacks: Callbacks | None = None) -> TrainResult:
    """Run the loop with a run log; then save the policy and the summary, and say how to resume.
    ``callbacks``: default, the config's stopping rule (a resumed run's)."""
    state = start_from(driver, driver.init()) if state is None else state  # (--init-from: the source's policy)
    callbacks = started_callbacks((), driver.config) if callbacks is None else callbacks
    resume_from = start.update if start.update else None
    log = RunLog(driver.config, run_path, resume_from=resume_from, names=driver.metric_names)
    try:
        try:
            outcome = run_loop(driver, state, log, run_path, start, callbacks)
        except BaseException:
            _close_quietly(log)
            raise
        log.close(release=False)  # (the lock is held until the policy and the summary are written)
        return _save_result(driver, run_path, outcome)
    except UserCodeError as err:
        err.resume = resume_command(driver, run_path) if err.saved else None
        raise
    except RunWriteError as err:
        raise RunWriteError(
            f"{err}; the checkpoints written before are kept: once the problem is fixed, continue "
            f"with: {resume_command(driver, run_path)}"
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
    result.stopped_by = outcome.stopped_by
    done = f"after {result.metrics['episode_return'].shape[1]} of {result.config.num_updates} updates"
    if result.interrupted:
        print(f"ppox: stopped {done}; to continue: {resume_command(driver, run_path)}", file=sys.stderr, flush=True)
    if result.stopped_by:
        where = "nothing was saved" if run_path is None else f"its checkpoint and policy are in {run_path}"
        print(f"ppox: stopped early {done}: {result.stopped_by}; the run is finished ({where})", file=sys.stderr)
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
        "stopped_by": result.stopped_by,
        **{
            name: int(total(result.metrics[name]))
            for name, total in (("worker_restarts", np.nanmax), ("illegal_actions", np.nansum))
            if name in result.metrics
        },
        "run_path": None if result.run_path is None else str(result.run_path),
    }
