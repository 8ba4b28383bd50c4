"""The one run loop: every driver's updates, in chunks, with everything around them.

It owns what no driver should know: chunk planning (about CHUNK_SECONDS of work once the pace is known,
ending exactly at checkpoints), dispatch-ahead (the next chunk is queued before this one's metrics are
fetched, so the device never waits on the host), SIGINT/SIGTERM (finish the chunk in flight, checkpoint,
stop), the non-finite check on the losses, checkpoint cadence with evaluation at each checkpoint, logging
once per chunk, the callbacks (``ppox.run.callbacks``: each update and evaluation; a stopping rule), and a
checkpoint of the last completed update when the user's code fails (``UserCodeError``). Every update runs the
same compiled body whatever the chunk sizes, so results do not depend on them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ppox.acting.evaluation import evaluate
from ppox.acting.policy import Policy
from ppox.agent.metrics import check_finite_metrics
from ppox.config.config import Config, program_config
from ppox.drivers.base import Driver, max_chunk
from ppox.drivers.distributed import any_process
from ppox.envs.spec import EnvSpec, episode_step_limit
from ppox.errors import UserCodeError
from ppox.run.callbacks import Callbacks
from ppox.storage.checkpoint import (
    Checkpoint,
    checkpoint_metrics,
    keep_if_best,
    save_checkpoint,
)
from ppox.storage.runfolder import AnyRunConfig
from ppox.storage.runlog import RunLog, append_evaluation
from ppox.utils.signals import StopOnSignal

CHUNK_SECONDS = 2.0  # once the pace is known, chunks are cut to about this long (progress, signals)


class ChunkPlanner:
    """How many updates the chunk starting at update ``begin`` holds: at most the driver's maximum, about
    CHUNK_SECONDS of work once the pace is measured, and ending exactly where a checkpoint is due. Before
    the pace is known: a quarter of the maximum for the first (compiling) chunk of a compiled-chunk driver
    (fused), one update at a time for a driver that runs updates one by one (host, lm), so that its first
    rows and progress come after one update, however slow an update is (docs/architecture.md)."""

    def __init__(self, config: AnyRunConfig, first: int, compiled_chunks: bool = True):
        self.config, self.first, self.compiled_chunks = config, first, compiled_chunks
        self.most, self.every = max_chunk(config), config.updates_per_checkpoint
        self.seconds_per_update: float | None = None

    def size(self, begin: int) -> int:
        n = min(self.most, self.config.num_updates - begin)
        if self.seconds_per_update:
            n = min(n, max(1, int(CHUNK_SECONDS / self.seconds_per_update)))
        elif not self.compiled_chunks:
            n = 1
        elif begin == self.first:
            n = min(n, max(1, self.most // 4))
        if self.every:
            n = min(n, self.every - begin % self.every)
        return n

    def measured(self, begin: int, n: int, seconds: float) -> None:
        """The pace, from every chunk after the first (whose time includes compilation). Distributed runs
        keep fixed sizes, the same in every process."""
        if begin > self.first and not self.config.distributed:
            self.seconds_per_update = seconds / n


@dataclasses.dataclass
class Outcome:
    """Where the loop left the run."""

    state: Any
    metrics: dict[str, np.ndarray]  # every update's metrics so far, [seeds, updates]
    interrupted: bool  # stopped by a signal before its end; --resume continues it
    wall_time: float  # seconds, earlier sessions of a resumed run included
    stopped_by: str | None = None  # why a callback (a stopping rule) ended the run early; then it is finished


@dataclasses.dataclass
class Start:
    """Where the loop picks the run up: update 0, or a checkpoint's."""

    update: int = 0
    metrics: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # [seeds, update]
    wall_time: float = 0.0  # of the sessions before this one
    clock: float = dataclasses.field(default_factory=time.perf_counter)  # when this session started

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, names) -> Start:
        saved = checkpoint_metrics(checkpoint)
        return cls(
            checkpoint.update,
            {k: saved[k][:, : checkpoint.update] for k in names if k in saved},
            checkpoint.meta.get("wall_time", 0.0),
        )


def finished_early(checkpoint: Checkpoint, changes: dict) -> str | None:
    """Why a stopping rule ended the run at this checkpoint (it is finished), unless ``changes`` give a new end."""
    return None if "total_timesteps" in changes else checkpoint.meta.get("stopped_by")


def run_loop(
    driver: Driver, state, log: RunLog, run_path: Path | None, start: Start, callbacks: Callbacks | None = None
) -> Outcome:
    """Run ``driver`` from ``state`` (at update ``start.update``) to the planned end, a signal, or a callback that
    stops the run. An error of the user's code (``UserCodeError``: the env, the reward, a callback) is raised
    once the last completed update is checkpointed."""
    loop = Loop(driver, log, run_path, start, callbacks or Callbacks([]))
    with StopOnSignal() as stop:
        return loop.run(state, stop)


class Loop:
    """One session of a run: the updates done, the chunks' metrics, the newest checkpoint, the callbacks."""

    def __init__(self, driver: Driver, log: RunLog, run_path: Path | None, start: Start, callbacks: Callbacks):
        self.driver, self.config, self.log, self.run_path, self.start = driver, driver.config, log, run_path, start
        self.planner = ChunkPlanner(self.config, start.update, driver.compiled_chunks)
        self.callbacks = callbacks
        self.chunks = [start.metrics] if start.update else []
        self.done = self.saved = start.update  # updates done; the update of the newest checkpoint
        self.tick = time.perf_counter()

    def run(self, state, stop: StopOnSignal) -> Outcome:
        config, planner, stopping = self.config, self.planner, False
        n, self.tick = planner.size(self.done), time.perf_counter()
        state, pending = self.dispatch(state, n)
        while True:
            end = self.done + n
            checkpoint_due = bool(planner.every) and end % planner.every == 0
            last = end == config.num_updates
            # every process takes the same path
            stopping = any_process(stop.requested or self.callbacks.stopping, config.distributed)
            # not ahead where a checkpoint follows this chunk (its state must still exist to be saved), nor with
            # callbacks (one that stops the run would have the next chunk run too)
            ahead = self.driver.dispatch_ahead and not (last or checkpoint_due or stopping or self.callbacks.callbacks)
            if ahead:
                n_next = planner.size(end)
                next_state, upcoming = self.dispatch(state, n_next)
            metrics = self.driver.fetch(pending, n)
            stop.work_at_stake()
            self.record(metrics, n)
            self.callbacks.updates(metrics, end - n, config)
            if ahead:
                state, pending, n = next_state, upcoming, n_next
                continue
            stopping = stopping or self.callbacks_stop()
            if checkpoint_due or stopping or last:
                self.checkpoint(state, evaluate=True)
                stopping = stopping or self.callbacks_stop()
            if last or stopping:
                break
            n, self.tick = planner.size(self.done), time.perf_counter()
            state, pending = self.dispatch(state, n)
        if self.callbacks.failure is not None:
            raise self.saved_at(self.callbacks.failure)
        stopped_by = None if last else self.callbacks.stopped_by
        return Outcome(state, self.metrics(), not last and stopped_by is None, _wall(self.start), stopped_by)

    def callbacks_stop(self) -> bool:  # whether a callback stopped the run (or raised), in any process
        return bool(self.callbacks.callbacks) and any_process(self.callbacks.stopping, self.config.distributed)

    def dispatch(self, state, n: int):
        """``driver.run(state, n)``; where it fails part-way with the updates it completed (``completed`` on the
        error: the user's env or reward raised), those are logged and checkpointed before the error goes on."""
        try:
            return self.driver.run(state, n)
        except Exception as err:
            completed = getattr(err, "completed", None)
            if completed is not None:
                err.completed = None  # type: ignore[attr-defined]  # (the state is not kept alive by the error)
                self.rescue(err, *completed)
            raise

    def rescue(self, err: Exception, state, pending, n: int) -> None:  # (see dispatch)
        try:
            if n:
                self.record(self.driver.fetch(pending, n), n)
            if self.done > self.saved:
                self.checkpoint(state, evaluate=False)
        except Exception as failure:  # noqa: BLE001  (the user's error says more; this one is added to it)
            err.add_note(f"ppox: the last completed update could not be checkpointed: {failure}")
        self.saved_at(err)

    def saved_at(self, err: Exception) -> Exception:
        if isinstance(err, UserCodeError):
            err.saved = self.saved if self.saved and self.run_path is not None else None  # (None: no checkpoint)
        return err

    def record(self, metrics: dict[str, np.ndarray], n: int) -> None:
        """Log a chunk's n updates, check them, and count them done."""
        now = time.perf_counter()
        self.planner.measured(self.done, n, now - self.tick)
        self.log.write(metrics, self.done, n * self.config.batch_size / (now - self.tick))
        self.chunks.append(metrics)
        self.done += n
        warn_if_no_episode_ended(self.chunks, self.done, self.config)
        check_finite_metrics(metrics, self.done - n)
        self.tick = now

    def checkpoint(self, state, evaluate: bool) -> None:
        """Evaluate (with --eval-episodes, where there is a run folder or a callback to tell), tell the callbacks,
        then save a checkpoint; every metrics row up to it is on disk before it exists."""
        returns = None
        if evaluate and self.config.eval_episodes and (self.run_path is not None or self.callbacks.callbacks):
            returns = evaluate_seeds(self.driver, state, self.done)
            self.callbacks.evaluation(self.done, returns, self.config)
        self.log.flush()
        stopped_by = self.callbacks.stopped_by if self.done < self.config.num_updates else None
        save(self.driver, state, self.run_path, self.done, self.metrics(), _wall(self.start), returns, stopped_by)
        self.saved = self.done

    def metrics(self) -> dict[str, np.ndarray]:  # every update's so far
        return joined(self.chunks, self.driver.metric_names)


def warn_if_no_episode_ended(chunks: list[dict], done: int, config: AnyRunConfig) -> None:
    """Say once what may be wrong when no episode has ended in a tenth of the run (and past the env's time limit)."""
    per_env = getattr(config, "num_steps", 1)
    limit = _step_limit(getattr(config, "env", ""), getattr(config, "max_episode_steps", None))
    due = max(1, config.num_updates // 10, 0 if limit is None else limit // per_env + 1)
    if not done - chunks[-1]["episode_count"].shape[1] < due <= done:
        return
    if sum(float(np.nansum(c["episode_count"])) for c in chunks) == 0:
        steps = f"the first {done * config.batch_size:,} steps ({done * per_env:,} per env)"
        games = str(getattr(config, "env", "")).startswith("pettingzoo/")  # (they refuse --max-episode-steps)
        print(
            f"ppox: no episode has ended in {steps}: an episode may simply be long; if the env has no time limit "
            f"of its own, {'the game sets one (e.g. max_cycles)' if games else 'set one with --max-episode-steps N'}"
            if limit is None
            else f"ppox: no episode has ended in {steps}, though the env's time limit is {limit:,} steps: check "
            "that the env ends its episodes",
            file=sys.stderr,
            flush=True,
        )


_step_limit = functools.lru_cache(maxsize=16)(episode_step_limit)


def _wall(start: Start) -> float:
    return start.wall_time + time.perf_counter() - start.clock


def joined(chunks: list[dict], names) -> dict[str, np.ndarray]:
    """The metrics of every update so far, [seeds, updates]."""
    return {k: np.concatenate([c[k] for c in chunks], axis=1) for k in names}


def save(
    driver: Driver,
    state,
    run_path: Path | None,
    done: int,
    metrics: dict,
    wall_time: float,
    returns: list[float] | None = None,
    stopped_by: str | None = None,
) -> None:
    """Checkpoint after ``done`` updates; with the evaluation ``returns`` of each seed, log them to
    RUN/evaluations.csv and keep the best checkpoint as checkpoints/best.safetensors. The checkpoint holds the
    policy too, as the policy file does, so that a kill between the final checkpoint and the policy file loses
    nothing (``ppox.load`` reads it from the checkpoint). ``stopped_by``: the reason a stopping rule ended the
    run here (recorded: the run is finished)."""
    arrays, extras = driver.checkpoint_state(state)  # (distributed: every process joins the gather)
    policy = None
    if isinstance(driver.config, Config):  # (a language model's policy is RUN/model)
        params, obs_stats = driver.policies(state)
        policy = (params, dataclasses.asdict(obs_stats))
    if run_path is None:
        return
    config = driver.config
    meta = {
        "config": json.loads(config.to_json()),
        "env_spec": driver.spec.to_dict(),
        "driver": driver.name,
        "wall_time": wall_time,
        "global_step": done * config.batch_size,
        **extras,
        **({"stopped_by": stopped_by} if stopped_by else {}),
    }
    if returns is not None:
        meta["eval_return"] = float(np.mean(returns))
    path = save_checkpoint(run_path, done, arrays, metrics, meta, config.keep_checkpoints, policy)
    if returns is not None:
        append_evaluation(run_path, done, done * config.batch_size, returns, config.seed)
        keep_if_best(run_path, path, done, meta["eval_return"])


def evaluate_seeds(driver: Driver, state, done: int) -> list[float]:
    """Mean return of --eval-episodes fresh episodes (sampled actions) per seed."""
    config = driver.config
    assert isinstance(config, Config)  # (language-model runs have no evaluation episodes)
    params, obs_stats = driver.policies(state)
    policy = evaluation_policy(program_config(config), driver.spec)
    policy.config = config
    returns = []
    for i in range(config.seeds):
        policy.params, policy.obs_stats = jax.tree_util.tree_map(lambda x, i=i: x[i], (params, obs_stats))
        seed = config.seed * 7919 + done
        got = evaluate(policy, episodes=config.eval_episodes, seed=seed, env=driver.eval_env, deterministic=False)
        returns.append(float(got.mean()))
    return returns


@functools.lru_cache(maxsize=4)
def evaluation_policy(config: Config, spec: EnvSpec) -> Policy:
    """A Policy whose jitted act is compiled once per program; the caller sets its parameters."""
    return Policy(config, spec, None, None)  # type: ignore[arg-type]  # (set before each use)
