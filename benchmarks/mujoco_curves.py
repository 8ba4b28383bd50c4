"""MuJoCo learning curves of the ppox presets on the host driver (a report, not a test).

    pip install -e ".[mujoco]"
    .venv/bin/python benchmarks/mujoco_curves.py [--envs HalfCheetah-v5,Hopper-v5,Walker2d-v5]
        [--seeds 3] [--timesteps 1000000] [--jobs 2]

Each (env, seed) is one ``ppox train --env ENV --seed S`` process, exactly what a user runs
(the preset: CleanRL's continuous-control hyperparameters), --jobs of them at a time. Their run
folders go to runs/mujoco/ENV__S; a finished one (its metrics.csv reaches the last update) is
read again rather than retrained, so an interrupted report picks up where it stopped.

Writes docs/curves/ENV.png (mean episodic return over the seeds against env steps, with the
min-max band) and the entry ENV in docs/curves/results.json: the final return of each seed
(mean return of the episodes that ended in the last tenth of the updates, as ``ppox train``
prints), their mean, CleanRL's published figure for comparison, and the wall time per run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "curves"
RUNS = ROOT / "runs" / "mujoco"
PPOX = Path(sys.executable).with_name("ppox")

# CleanRL's ppo_continuous_action.py, 1M steps: the published figures the issue sets as the bar.
CLEANRL_V4 = {"HalfCheetah-v5": 1443, "Hopper-v5": 2383, "Walker2d-v5": 2288}


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    with open(path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) if r[k] not in ("", "nan") else math.nan for r in rows]) for k in rows[0]}


def finished(path: Path, num_updates: int) -> bool:
    try:
        m = read_metrics(path)
    except (OSError, IndexError, KeyError):
        return False
    return len(m["update"]) > 0 and m["update"][-1] + 1 >= num_updates


def train_one(env: str, seed: int, timesteps: int, num_updates: int) -> dict:
    path = RUNS / f"{env}__{seed}"
    if finished(path, num_updates):
        print(f"[curves] {env} seed {seed}: already finished, read from {path}", flush=True)
        return {"path": path, "wall_s": json.loads((path / "wall.json").read_text())["wall_s"]}
    cmd = [str(PPOX), "train", "--env", env, "--seed", str(seed), "--total-timesteps", str(timesteps),
           "--run-dir", str(RUNS), "--run-name", path.name, "--no-progress"]
    print(f"[curves] {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{env} seed {seed} failed:\n{proc.stderr[-2000:]}")
    (path / "wall.json").write_text(json.dumps({"wall_s": wall}))
    print(f"[curves] {env} seed {seed}: {wall:.0f} s; {proc.stdout.strip().splitlines()[-1]}", flush=True)
    return {"path": path, "wall_s": wall}


def episode_curve(m: dict[str, np.ndarray]) -> np.ndarray:
    """Episode-weighted mean return over a trailing window of updates (ppox.experiments.ladder_report.smoothed, one seed)."""
    from ppox.experiments.ladder_report import smoothed

    return smoothed(m["episode_return"][None], m["episode_count"][None])[0]


def final_return(m: dict[str, np.ndarray]) -> float:
    """Mean return of the episodes that ended in the last tenth of the updates (ppox's own definition)."""
    from ppox.agent.metrics import final_return as ppox_final_return

    return float(ppox_final_return({k: m[k][None] for k in ("episode_return", "episode_count")})[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="HalfCheetah-v5,Hopper-v5,Walker2d-v5")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2: one per core here)")
    args = parser.parse_args()

    import ppox

    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    configs = {e: ppox.Config.preset(e, total_timesteps=args.timesteps) for e in envs}
    OUT.mkdir(parents=True, exist_ok=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    jobs = [(e, s) for e in envs for s in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {job: pool.submit(train_one, *job, args.timesteps, configs[job[0]].num_updates) for job in jobs}
        runs = {job: f.result() for job, f in futures.items()}

    results_file = OUT / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for env in envs:
        cfg = configs[env]
        metrics = [read_metrics(runs[(env, s)]["path"]) for s in range(args.seeds)]
        curves = np.array([episode_curve(m) for m in metrics])
        steps = (np.arange(curves.shape[1]) + 1) * cfg.batch_size
        finals = [final_return(m) for m in metrics]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, np.nanmean(curves, axis=0), label=f"mean of {args.seeds} seeds")
        ax.fill_between(steps, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), alpha=0.25, label="min-max")
        if env in CLEANRL_V4:
            ax.axhline(CLEANRL_V4[env], color="gray", ls="--", lw=1, label="CleanRL v4, 1M steps")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episodic return")
        ax.set_title(f"ppox {env} preset (host driver)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(OUT / f"{env}.png", dpi=110)
        plt.close(fig)
        tenths = [float(np.nanmean(curves[:, max(0, int(round(f * curves.shape[1])) - 1)])) for f in np.arange(1, 11) / 10]
        results[env] = {
            "seeds": args.seeds,
            "total_timesteps": cfg.num_updates * cfg.batch_size,
            "driver": "host",
            "wall_time_s_per_seed": [round(runs[(env, s)]["wall_s"], 1) for s in range(args.seeds)],
            "final_return_per_seed": [round(x, 1) for x in finals],
            "mean_final_return": round(float(np.mean(finals)), 1),
            "cleanrl_v4_1M": CLEANRL_V4.get(env),
            "mean_return_at_each_tenth": [round(x, 1) for x in tenths],
        }
        print(env, json.dumps(results[env]), flush=True)
    results_file.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
