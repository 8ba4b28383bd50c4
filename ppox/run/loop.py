"""The one run loop: every driver's updates, in chunks, with everything around them.

It owns what no driver should know: chunk planning (about CHUNK_SECONDS of work once the pace is known,
ending exactly at checkpoints), dispatch-ahead (the next chunk is queued before this one's metrics are
fetched, so the device never waits on the host), SIGINT/SIGTERM (finish the chunk in flight, checkpoint,
stop), the non-finite check on the losses, checkpoint cadence with evaluation at each checkpoint, and
logging once per chunk. Every update runs the same compiled body whatever the chunk sizes, so results do
not depend on them.
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
from ppox.envs.spec import EnvSpec
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
    interrupted: bool
    wall_time: float  # seconds, earlier sessions of a resumed run included


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


def run_loop(driver: Driver, state, log: RunLog, run_path: Path | None, start: Start) -> Outcome:
    """Run ``driver`` from ``state`` (at update ``start.update``) to the planned end or a signal."""
    config = driver.config
    planner = ChunkPlanner(config, start.update, driver.compiled_chunks)
    chunks = [start.metrics] if start.update else []
    done, interrupted = start.update, False
    with StopOnSignal() as stop:
        n, tick = planner.size(done), time.perf_counter()
        state, pending = driver.run(state, n)
        while True:
            end = done + n
            checkpoint_due = bool(planner.every) and end % planner.every == 0
            last = end == config.num_updates
            stopping = any_process(stop.requested, config.distributed)  # every process takes the same path
            # not ahead where a checkpoint follows this chunk: its state must still exist to be saved
            ahead = driver.dispatch_ahead and not (last or checkpoint_due or stopping)
            if ahead:
                n_next = planner.size(end)
                next_state, upcoming = driver.run(state, n_next)
            metrics = driver.fetch(pending, n)
            stop.work_at_stake()
            now = time.perf_counter()
            planner.measured(done, n, now - tick)
            log.write(metrics, done, n * config.batch_size / (now - tick))
            chunks.append(metrics)
            warn_if_no_episode_ended(chunks, end, config)
            check_finite_metrics(metrics, done)
            done, tick = end, now
            if ahead:
                state, pending, n = next_state, upcoming, n_next
                continue
            if checkpoint_due or stopping or last:
                log.flush()  # every row up to the checkpoint is on disk before the checkpoint exists
                save(driver, state, run_path, done, joined(chunks, driver.metric_names), _wall(start))
            if last or stopping:
                interrupted = not last
                break
            n, tick = planner.size(done), time.perf_counter()
            state, pending = driver.run(state, n)
    return Outcome(state, joined(chunks, driver.metric_names), interrupted, _wall(start))


def warn_if_no_episode_ended(chunks: list[dict], done: int, config: AnyRunConfig) -> None:
    """Say once, when a tenth of the run has passed without a single episode ending, what may be wrong."""
    tenth = max(1, config.num_updates // 10)
    if done >= tenth and done - chunks[-1]["episode_count"].shape[1] < tenth:
        if sum(float(np.nansum(c["episode_count"])) for c in chunks) == 0:
            print(
                f"ppox: no episode has ended in the first {done * config.batch_size:,} steps; if the env has no "
                "time limit of its own, set one with --max-episode-steps N",
                file=sys.stderr,
                flush=True,
            )


def _wall(start: Start) -> float:
    return start.wall_time + time.perf_counter() - start.clock


def joined(chunks: list[dict], names) -> dict[str, np.ndarray]:
    """The metrics of every update so far, [seeds, updates]."""
    return {k: np.concatenate([c[k] for c in chunks], axis=1) for k in names}


def save(driver: Driver, state, run_path: Path | None, done: int, metrics: dict, wall_time: float) -> None:
    """Checkpoint after ``done`` updates; with --eval-episodes, evaluate each seed first, log the result to
    RUN/evaluations.csv and keep the best checkpoint as checkpoints/best.safetensors. The checkpoint holds the
    policy too, as the policy file does, so that a kill between the final checkpoint and the policy file loses
    nothing (``ppox.load`` reads it from the checkpoint)."""
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
    }
    returns = evaluate_seeds(driver, state, done) if config.eval_episodes else None
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
        returns.append(
            float(
                evaluate(
                    policy,
                    episodes=config.eval_episodes,
                    seed=config.seed * 7919 + done,
                    env=driver.eval_env,
                    deterministic=False,
                ).mean()
            )
        )
    return returns


@functools.lru_cache(maxsize=4)
def evaluation_policy(config: Config, spec: EnvSpec) -> Policy:
    """A Policy whose jitted act is compiled once per program; the caller sets its parameters."""
    return Policy(config, spec, None, None)  # type: ignore[arg-type]  # (set before each use)
