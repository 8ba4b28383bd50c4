"""Host-driver sweep members: each a ``ppox train`` process (``--jobs`` at a time) or a Ray task."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ppox.config.config import Config
from ppox.errors import ConfigError
from ppox.experiments.plots import read_run
from ppox.experiments.sweep_folder import KEPT, Plan, member_folder, member_log, read_json, write_done
from ppox.experiments.sweep_ray import run_on_ray
from ppox.experiments.sweep_space import describe
from ppox.storage.runfolder import LOCK_FILE, RunLock
from ppox.utils.files import atomic_write_text


def run_host(plan: Plan, todo: list[int], folder: Path, display, stop) -> bool:
    """Every member a ``ppox train`` process (``plan.jobs`` at a time), or a Ray task; a configuration is done
    when all its seeds are."""
    if plan.ray is not None:
        return run_host_ray(plan, todo, folder, display, stop)
    queue = [(i, s) for i in todo for s in range(plan.seeds)]
    stale = [m for i, s in queue if stale_member(m := member_folder(folder, i, s), member_config(plan, folder, i, s))]
    for member in stale:  # (all checked before any is removed or any member starts)
        remove_member(member)
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


def member_config(plan: Plan, folder: Path, index: int, seed_index: int) -> Config:
    """The config of one member's ppox train: its seed, its run folder FOLDER/runs/cNNNN_sS, no progress bar."""
    return plan.config(index).replace(
        seed=plan.config(index).seed + seed_index,
        run_dir=str(folder / "runs"),
        run_name=member_folder(folder, index, seed_index).name,
        progress=False,
        tensorboard=False,
        save=True,
        checkpoint_every=0,
    )


def start_member(plan: Plan, folder: Path, index: int, seed_index: int) -> subprocess.Popen:
    config = member_config(plan, folder, index, seed_index)
    path = folder / "configs" / f"c{index:04d}_s{seed_index}.json"
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, config.to_json())
    member = member_folder(folder, index, seed_index)
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
    # (the child keeps its own copy of the file; a link put in the log's place is not followed)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    with os.fdopen(os.open(member_log(folder, index, seed_index), flags, 0o666), "w") as log:
        return subprocess.Popen(
            args + (["--ray", config.ray] if config.ray else []), stdout=subprocess.DEVNULL, stderr=log
        )


def stale_member(member: Path, config: Config) -> bool:
    """Whether an interrupted sweep left the member's run folder, to be removed so that the member runs again
    from the start: only a folder (not a link) that this member's ppox train made (it holds the member's
    config.json, or nothing yet) is; ConfigError (one line) for anything else in its place."""
    if not os.path.lexists(member):
        return False
    if member.is_symlink() or not member.is_dir() or (member / LOCK_FILE).is_symlink() or not _made_for(member, config):
        raise ConfigError(
            f"{member} is not the run folder that this sweep's member made; move it away, then resume the sweep"
        )
    return True


def remove_member(member: Path) -> None:
    """Remove a stale member's run folder (``stale_member``) while no process writes it; no link is followed."""
    lock = RunLock(member)  # (an orphaned member still running is refused)
    try:
        shutil.rmtree(member)  # (it unlinks the links inside, never what they point to)
    finally:
        lock.release()


def _made_for(member: Path, config: Config) -> bool:
    """Whether ``member`` holds the run of ``config`` (its config.json; wherever the sweep folder was named from),
    or nothing yet (a start cut short before it wrote its config)."""
    if set(os.listdir(member)) <= {LOCK_FILE, ".write-test"}:
        return True
    saved = member / "config.json"
    try:
        return (
            not saved.is_symlink() and Config.from_dict(read_json(saved, "")).replace(run_dir=config.run_dir) == config
        )
    except ConfigError:
        return False


def collect_host(plan: Plan, folder: Path, index: int) -> None:
    runs = [member_folder(folder, index, s) for s in range(plan.seeds)]
    data = [read_run(r) for r in runs]
    metrics = {k: np.concatenate([d[k] for d in data]) for k in KEPT}
    wall = sum(json.loads((r / "summary.json").read_text())["wall_time_s"] for r in runs)
    write_done(folder, plan, index, metrics, wall)
