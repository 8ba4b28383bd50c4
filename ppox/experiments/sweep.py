"""``ppox sweep``: many configurations of one env, each with several seeds, into one sweep folder.

Fused driver: the configurations are grouped by their static values (``static_config``: sizes, epochs,
network, options off); each group compiles once, and its members (configuration x seed, each with its own
traced ``Hyper`` and key) run as one program in batches. In a batch the members are vectorised (``vmap``)
or run one after another inside the program (``map``: each computes bit for bit what ``ppox train`` of its
configuration and seed computes; on a CPU no slower). Host driver: every member is its own ``ppox train``
process (``--jobs`` at a time).

The folder: ``sweep.json`` (what to run), ``done/cNNNN.json`` (each finished configuration: its seeds'
curves, final returns and wall time), ``report/`` (``ppox.experiments.sweep_report``). A rerun on the same folder runs
only what is not done, so an interrupted sweep resumes where it stopped (a batch in flight is redone).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ppox.agent.learner import Hyper
from ppox.config.config import Config, static_config
from ppox.drivers.fused import compile_program
from ppox.drivers.keys import key_words, seed_key
from ppox.envs.registry import driver_for
from ppox.experiments.sweep_folder import (
    KEPT,
    SPEC_FILE,
    Plan,
    check_envs,
    check_folder,
    done_path,
    finished,
    lock_folder,
    open_folder,
    write_done,
)
from ppox.experiments.sweep_host import run_host
from ppox.experiments.sweep_space import describe
from ppox.run.training import train
from ppox.utils.signals import StopOnSignal

__all__ = [
    "SPEC_FILE",
    "Display",
    "Plan",
    "done_path",
    "evaluate_config",
    "members_mode",
    "open_folder",
    "run_fused",
    "run_members",
    "run_sweep",
]

MEMORY_BUDGET = 2**30  # bytes a fused batch may hold in its runners and rollouts (a guess that fits a laptop)


def run_sweep(plan: Plan, out: Path, progress: bool = True) -> bool:
    """Run every configuration not yet done in ``out``; True if all are done (False: a signal stopped it).
    ConfigError (one line) before anything is made or run: an env that cannot be made, a folder that holds
    something else or that another ppox process is writing, a done record that is not this sweep's."""
    out = Path(out)
    check_envs(plan.config(i) for i in range(len(plan.combos)))
    lock = lock_folder(out, lambda: check_folder(plan, out))
    try:
        folder = open_folder(plan, out)
        done = {r["index"] for r in finished(folder, plan)}
        todo = [i for i in range(len(plan.combos)) if i not in done]
        base = plan.space.base
        fused = driver_for(base.env, base.driver, base.ray) == "fused"
        total = sum(plan.config(i).num_updates for i in todo) * plan.seeds
        with Display(total, progress) as display, StopOnSignal() as stop:
            if done:
                display.say(f"resuming: {len(done)} of {len(plan.combos)} configurations are done")
            complete = (run_fused if fused else run_host)(plan, todo, folder, display, stop)
        return complete and all(done_path(folder, i).exists() for i in range(len(plan.combos)))
    finally:
        lock.release()


# Fused: batches of members in one compiled program ------------------------------------------------------------
def members_mode(members: str) -> str:
    return members if members != "auto" else ("map" if jax.default_backend() == "cpu" else "vmap")


def run_fused(plan: Plan, todo: list[int], folder: Path, display, stop) -> bool:
    groups: dict[Config, list[int]] = {}
    for index in todo:
        groups.setdefault(static_config(plan.config(index).replace(seeds=1)), []).append(index)
    mode = members_mode(plan.members)
    for static, indices in groups.items():
        members = [(i, s) for i in indices for s in range(plan.seeds)]
        # map: one member after another, so a batch of one configuration costs nothing and is saved when done
        size = plan.batch or (plan.seeds if mode == "map" else batch_size(static))
        size = max(plan.seeds, size - size % plan.seeds)  # whole configurations in a batch
        for start in range(0, len(members), size):
            batch = members[start : start + size]
            display.describe(
                f"{len(groups)} program(s), {mode}: configurations "
                f"{describe(plan.combos[batch[0][0]])} ... ({len(batch)} members)"
            )
            metrics, wall = run_batch(plan, static, batch, mode, display, stop)
            if metrics is None:
                return False
            for i in dict.fromkeys(i for i, _ in batch):
                rows = [k for k, (j, _) in enumerate(batch) if j == i]
                write_done(folder, plan, i, {k: v[rows] for k, v in metrics.items()}, wall * len(rows) / len(batch))
    return True


def batch_size(static: Config) -> int:
    """Members per program call: as many as MEMORY_BUDGET holds (runner + rollout of each, x4 for working
    memory), at most 256."""
    compiled = compile_program(static, "vmap")
    runner = jax.eval_shape(compiled.fused.init, jax.ShapeDtypeStruct((key_words(static.prng_impl),), jnp.uint32))
    runner_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(runner))
    obs = int(np.prod(compiled.fused.spec.obs_shape))
    rollout_bytes = static.batch_size * (3 * obs + 16) * 4
    return int(max(1, min(256, MEMORY_BUDGET // (4 * (runner_bytes + rollout_bytes)))))


def run_batch(plan: Plan, static: Config, batch: list[tuple[int, int]], mode: str, display, stop):
    """(metrics [members, updates], wall seconds) of one batch of (configuration index, seed index), or (None,
    wall) if a signal stopped it."""
    configs = [plan.config(i) for i, _ in batch]
    return run_members(static, [c.replace(seed=c.seed + s) for c, (_, s) in zip(configs, batch)], mode, display, stop)


def run_members(static: Config, configs: list[Config], mode: str, display, stop, on_chunk=None):
    """(metrics [members, updates], wall seconds) of ``configs`` (one member each: its seed and Hyper) in the
    program of ``static``; (None, wall) if a signal stopped them or ``on_chunk(metrics so far, updates done)``
    returned True. The next chunk is queued before this one's metrics are fetched."""
    start = time.perf_counter()
    compiled = compile_program(static, mode)
    keys = jnp.stack([seed_key(c.seed, static.prng_impl) for c in configs])
    hyper = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[Hyper.from_config(c, jnp.float32) for c in configs])
    runner, done, chunks, halt = compiled.init(keys), 0, [], False
    n = min(compiled.chunk, static.num_updates)
    runner, pending = compiled.run(runner, n, hyper)
    while True:
        following = min(compiled.chunk, static.num_updates - done - n)
        if following and not (stop.requested or halt):
            runner, upcoming = compiled.run(runner, following, hyper)
        chunks.append({k: np.asarray(v)[:, :n] for k, v in jax.device_get(pending).items() if k in KEPT})
        done += n
        display.advance(n * len(configs))
        metrics = {k: np.concatenate([c[k] for c in chunks], axis=1) for k in KEPT}
        halt = halt or (on_chunk is not None and bool(on_chunk(metrics, done)))
        if (stop.requested or halt) and done < static.num_updates:
            return None, time.perf_counter() - start
        if not following:
            return metrics, time.perf_counter() - start
        pending, n = upcoming, following


def evaluate_config(config: Config, seeds: int, first_seed: int) -> list[float]:
    """The final return of ``config`` trained alone on ``seeds`` seeds from ``first_seed`` (nothing saved)."""
    fused = driver_for(config.env, config.driver, config.ray) == "fused"
    common = dict(save=False, progress=False)
    if fused:
        return [float(x) for x in train(config.replace(seed=first_seed, seeds=seeds, **common)).final_return()]
    return [float(train(config.replace(seed=first_seed + s, **common)).final_return()[0]) for s in range(seeds)]


class Display:
    """A rich progress bar over every member's updates (or plain lines), naming the batch that runs."""

    def __init__(self, total: int, enabled: bool):
        self.progress = (
            Progress(
                TextColumn("[bold]sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("updates"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
            )
            if enabled
            else None
        )
        self.total = total

    def __enter__(self):
        if self.progress is not None:
            self.task = self.progress.add_task("", total=self.total)
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def say(self, line: str) -> None:
        (self.progress.console.print if self.progress is not None else print)(line)

    def describe(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=text[:70])

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=n)
