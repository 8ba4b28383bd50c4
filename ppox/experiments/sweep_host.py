"""Host-driver sweep members: each a ``ppox train`` process (``--jobs`` at a time) or a Ray task."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ppox.errors import ConfigError
from ppox.experiments.plots import read_run
from ppox.experiments.sweep_folder import KEPT, Plan, member_folder, member_log, write_done
from ppox.experiments.sweep_ray import run_on_ray
from ppox.experiments.sweep_space import describe
from ppox.utils.files import atomic_write_text


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
    assert plan.ray is not None  # (run_host sends only Ray plans here)
    return run_on_ray(plan.ray, members, KEPT, stop, on_done)


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
