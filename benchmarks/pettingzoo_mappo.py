"""MAPPO against IPPO on PettingZoo's simple_spread (MPE2), the same budget and seeds, alternating in one run.

Both are ppox's simple_spread preset (24 rows = 8 games x 3 agents, agent ids); MAPPO adds --critic world_state
(the critic reads the game's state(): every agent's observation). Reported per run: the mean per-agent episode
return of the last three updates and over the last 10% of training, wall seconds; medians over seeds, load.

    python benchmarks/pettingzoo_mappo.py --steps 96000 --seeds 0 1 2 3 4 5
    python benchmarks/pettingzoo_mappo.py --steps 96000 --seeds 0 1 2 3 4 5 --lr 1e-3 \
        --out benchmarks/results/pettingzoo_mappo_lr1e-3.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import ppox

ENV = "pettingzoo/mpe2.simple_spread_v3"


def one_run(critic: str, seed: int, steps: int, folder: Path, lr: float | None) -> dict:
    """One training run of the preset with ``critic``; its per-agent returns at the end, and its wall time."""
    config = ppox.Config.preset(ENV, total_timesteps=steps, seed=seed, critic=critic, run_dir=str(folder))
    config = config if lr is None else config.replace(learning_rate=lr)
    start = time.perf_counter()
    result = ppox.train(config)
    wall = time.perf_counter() - start
    returns = np.asarray(result.metrics["episode_return"]).reshape(-1)
    tail = returns[-max(1, len(returns) // 10) :]
    return {
        "critic": critic,
        "seed": seed,
        "learning_rate": config.learning_rate,
        "last3": float(returns[-3:].mean()),
        "last10pct": float(np.nanmean(tail)),
        "wall_s": wall,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=96_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="benchmarks/results/pettingzoo_mappo.json")
    parser.add_argument("--runs-dir", default="/tmp/ppox_pz_mappo_runs")
    parser.add_argument("--lr", type=float, default=None, help="the learning rate of both (default: the preset's)")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        for critic in ("local", "world_state"):  # (alternating: the same load for both)
            runs.append(one_run(critic, seed, args.steps, Path(args.runs_dir), args.lr))
            print(json.dumps(runs[-1]), flush=True)
    summary = {
        critic: {
            key: float(np.median([r[key] for r in runs if r["critic"] == critic]))
            for key in ("last3", "last10pct", "wall_s")
        }
        for critic in ("local", "world_state")
    }
    report = {"env": ENV, "steps": args.steps, "seeds": args.seeds, "lr": args.lr, "runs": runs, "median": summary}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
