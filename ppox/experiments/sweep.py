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

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ppox.agent.learner import Hyper
from ppox.agent.metrics import final_return
from ppox.config.config import Config, static_config
from ppox.drivers.fused import compile_program
from ppox.envs.registry import driver_for
from ppox.errors import ConfigError
from ppox.experiments.plots import read_run
from ppox.experiments.sweep_ray import run_on_ray
from ppox.experiments.sweep_space import Axis, Space, describe
from ppox.utils.files import atomic_write_text
from ppox.utils.signals import StopOnSignal

SPEC_FILE = "sweep.json"
KEPT = ("episode_return", "episode_count", "episode_length")  # the curves a sweep keeps per member
MEMORY_BUDGET = 2**30  # bytes a fused batch may hold in its runners and rollouts (a guess that fits a laptop)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A sweep: the space, its configurations (overrides of the base), seeds per configuration, how to run."""

    space: Space
    combos: tuple[dict, ...]
    seeds: int = 4
    members: str = "auto"  # fused: vmap, map or auto (map on a CPU, vmap on an accelerator)
    batch: int | None = None  # fused: members per program call (default: vmap what fits MEMORY_BUDGET, map seeds)
    jobs: int = 1  # host: processes at a time
    ray: str | None = None  # host: members as Ray tasks on this cluster ('local', 'auto' or an address)

    def config(self, index: int) -> Config:
        return self.space.config(self.combos[index])

    def to_json(self) -> dict:
        return {
            "base": json.loads(self.space.base.to_json()),
            "axes": [a.to_json() for a in self.space.axes],
            "combos": [_jsonable(c) for c in self.combos],
            "seeds": self.seeds,
        }

    @classmethod
    def from_json(cls, data: dict, **how) -> Plan:
        base = Config.from_dict(data["base"])
        axes = tuple(Axis(a["name"], tuple(_tuple(v) for v in a["values"]), a["low"], a["high"]) for a in data["axes"])
        combos = tuple({k: _tuple(v) for k, v in c.items()} for c in data["combos"])
        return cls(Space(base, axes), combos, data["seeds"], **how)


def _jsonable(combo: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in combo.items()}


def _tuple(value):
    return tuple(value) if isinstance(value, list) else value


def open_folder(plan: Plan, out: Path) -> Path:
    """Make the sweep folder, or check that the one there holds this very sweep (then it resumes)."""
    spec = out / SPEC_FILE
    if spec.exists():
        if json.loads(spec.read_text()) != json.loads(json.dumps(plan.to_json())):
            raise ConfigError(
                f"{out} holds another sweep (its {SPEC_FILE} differs); choose another --out, or "
                f"continue that one with: ppox sweep --resume {out}"
            )
    else:
        (out / "done").mkdir(parents=True, exist_ok=True)
        atomic_write_text(spec, json.dumps(plan.to_json(), indent=1))
    (out / "done").mkdir(exist_ok=True)
    return out


def done_path(folder: Path, index: int) -> Path:
    return folder / "done" / f"c{index:04d}.json"


def run_sweep(plan: Plan, out: Path, progress: bool = True) -> bool:
    """Run every configuration not yet done in ``out``; True if all are done (False: a signal stopped it)."""
    folder = open_folder(plan, Path(out))
    todo = [i for i in range(len(plan.combos)) if not done_path(folder, i).exists()]
    base = plan.space.base
    fused = driver_for(base.env, base.driver, base.ray) == "fused"
    total = sum(plan.config(i).num_updates for i in todo) * plan.seeds
    with Display(total, progress) as display, StopOnSignal() as stop:
        if len(todo) < len(plan.combos):
            display.say(f"resuming: {len(plan.combos) - len(todo)} of {len(plan.combos)} configurations are done")
        finished = (run_fused if fused else run_host)(plan, todo, folder, display, stop)
    return finished and all(done_path(folder, i).exists() for i in range(len(plan.combos)))


def write_done(folder: Path, plan: Plan, index: int, metrics: dict[str, np.ndarray], wall: float) -> None:
    """One configuration's record: its overrides, config, per-seed final return, curves [seeds, updates]."""
    config = plan.config(index)
    record = {
        "index": index,
        "overrides": _jsonable(plan.combos[index]),
        "config": json.loads(config.to_json()),
        "seeds": [config.seed + s for s in range(plan.seeds)],
        "batch_size": config.batch_size,
        "final_return": [None if not np.isfinite(x) else float(x) for x in final_return(metrics)],
        "wall_s": round(wall, 3),
        "curves": {k: [[None if not np.isfinite(x) else float(x) for x in row] for row in metrics[k]] for k in KEPT},
    }
    atomic_write_text(done_path(folder, index), json.dumps(record))


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
    runner = jax.eval_shape(compiled.fused.init, jax.ShapeDtypeStruct((2,), jnp.uint32))
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
    keys = jnp.stack([jax.random.PRNGKey(c.seed) for c in configs])
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


# Host: one process per member -------------------------------------------------------------------------------
def run_host(plan: Plan, todo: list[int], folder: Path, display, stop) -> bool:
    """Every member a ``ppox train`` process (``plan.jobs`` at a time), or a Ray task; a configuration is done
    when all its seeds are."""
    if plan.ray is not None:
        return run_host_ray(plan, todo, folder, display, stop)
    queue = [(i, s) for i in todo for s in range(plan.seeds)]
    running: list[tuple[int, int, subprocess.Popen]] = []
    finished: dict[int, int] = {}
    while queue or running:
        while queue and len(running) < plan.jobs and not stop.requested:
            i, s = queue.pop(0)
            running.append((i, s, start_member(plan, folder, i, s)))
            display.describe(f"host: {describe(plan.combos[i])} seed {plan.config(i).seed + s}")
        if stop.requested and not running:
            return False
        time.sleep(0.2)
        for i, s, proc in [r for r in running if r[2].poll() is not None]:
            running.remove((i, s, proc))
            if proc.returncode != 0:
                for *_, other in running:
                    other.terminate()
                log = member_log(folder, i, s)
                last = (log.read_text().strip().splitlines() or ["(no message)"])[-1]
                raise ConfigError(f"configuration {describe(plan.combos[i])}, seed index {s} failed ({log}): {last}")
            summary = json.loads((member_folder(folder, i, s) / "summary.json").read_text())
            if summary["interrupted"]:  # the signal reached the member too: it is run again on resume
                continue
            display.advance(plan.config(i).num_updates)
            finished[i] = finished.get(i, 0) + 1
            if finished[i] == plan.seeds:
                collect_host(plan, folder, i)
    return not stop.requested


def member_folder(folder: Path, index: int, seed_index: int) -> Path:
    return folder / "runs" / f"c{index:04d}_s{seed_index}"


def run_host_ray(plan: Plan, todo: list[int], folder: Path, display, stop) -> bool:
    results: dict[int, dict[int, dict]] = {}

    def on_done(i: int, s: int, result: dict) -> None:
        if result["interrupted"]:
            return
        display.advance(plan.config(i).num_updates)
        results.setdefault(i, {})[s] = result
        if len(results[i]) == plan.seeds:
            seeds = [results[i][k] for k in range(plan.seeds)]
            write_done(
                folder,
                plan,
                i,
                {k: np.concatenate([r["metrics"][k] for r in seeds]) for k in KEPT},
                sum(r["wall_s"] for r in seeds),
            )

    display.describe(f"host on Ray ({plan.ray}): {len(todo) * plan.seeds} members")
    members = [(i, s, plan.config(i).replace(seed=plan.config(i).seed + s)) for i in todo for s in range(plan.seeds)]
    return run_on_ray(plan.ray, members, KEPT, stop, on_done)


def member_log(folder: Path, index: int, seed_index: int) -> Path:
    return folder / "configs" / f"c{index:04d}_s{seed_index}.log"


def start_member(plan: Plan, folder: Path, index: int, seed_index: int) -> subprocess.Popen:
    config = plan.config(index).replace(
        seed=plan.config(index).seed + seed_index,
        run_dir=str(folder / "runs"),
        run_name=member_folder(folder, index, seed_index).name,
        progress=False,
        tensorboard=False,
        save=True,
        checkpoint_every=0,
    )
    path = folder / "configs" / f"c{index:04d}_s{seed_index}.json"
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, config.to_json())
    member = member_folder(folder, index, seed_index)
    if member.exists():  # a member cut short by an earlier interruption: run it again from the start
        for file in sorted(member.rglob("*"), reverse=True):
            file.rmdir() if file.is_dir() else file.unlink()
        member.rmdir()
    args = [
        sys.executable,
        "-m",
        "ppox.cli",
        "train",
        "--config",
        str(path),
        "--env",
        config.env,
        "--run-name",
        member.name,
    ]
    with open(member_log(folder, index, seed_index), "w") as log:  # (the child keeps its own copy of the file)
        return subprocess.Popen(
            args + (["--ray", config.ray] if config.ray else []), stdout=subprocess.DEVNULL, stderr=log
        )


def collect_host(plan: Plan, folder: Path, index: int) -> None:
    runs = [member_folder(folder, index, s) for s in range(plan.seeds)]
    data = [read_run(r) for r in runs]
    metrics = {k: np.concatenate([d[k] for d in data]) for k in KEPT}
    wall = sum(json.loads((r / "summary.json").read_text())["wall_time_s"] for r in runs)
    write_done(folder, plan, index, metrics, wall)


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
