"""Masked PPO on Taxi-v4: ppox (host driver) against sb3-contrib's MaskablePPO, same hyperparameters, one run.

  bash benchmarks/setup_envs.sh   # (ONLY=sb3contrib for just the MaskablePPO env)
  .venv/bin/python benchmarks/masks.py [--repeats 3]

Each run is a fresh process (JIT compilation included for ppox); the libraries alternate. Also ppox without
masks, for the learning curves. Prints medians and ratios; writes benchmarks/results/masks.json and the
curves docs/curves/taxi_masks.png (ppox with and without masks, mean over the repeats).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# CleanRL-style discrete-control settings (value clipping off: SB3 has none by default)
TASK = {"total_timesteps": 200_000, "num_envs": 8, "num_steps": 128, "update_epochs": 4, "num_minibatches": 4,
        "learning_rate": 2.5e-4, "ent_coef": 0.01}


def run(python: Path, script: str, *args: str) -> dict:
    done = subprocess.run([str(python), str(HERE / script), *args], cwd=HERE, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    ppox_python = ROOT / ".venv" / "bin" / "python"
    sb3_python = ROOT / "bench-envs" / "sb3contrib" / "bin" / "python"
    runs = {"ppox": [], "maskable": [], "ppox_nomask": []}
    for seed in range(args.repeats):
        runs["ppox"].append(run(ppox_python, "_ppox_taxi.py", "--seed", str(seed)))
        runs["maskable"].append(run(sb3_python, "_maskable_taxi.py", "--seed", str(seed)))
        runs["ppox_nomask"].append(run(ppox_python, "_ppox_taxi.py", "--seed", str(seed), "--action-mask", "off"))
        print(f"repeat {seed}: " + ", ".join(f"{k} {v[-1]['wall_s']:.1f} s {v[-1]['final_return']}"
                                             for k, v in runs.items()), file=sys.stderr, flush=True)
    med = {k: {m: statistics.median(r[m] for r in v if r[m] is not None) for m in ("wall_s", "steps_per_s",
                                                                                     "final_return")}
           for k, v in runs.items()}
    summary = {"task": TASK, "repeats": args.repeats, "medians": med,
               "ppox_speedup_steps_per_s": med["ppox"]["steps_per_s"] / med["maskable"]["steps_per_s"],
               "illegal_actions_ppox_masked": [r["illegal_actions"] for r in runs["ppox"]],
               "runs": {k: [{m: x for m, x in r.items() if m != "curve"} for r in v] for k, v in runs.items()}}
    (HERE / "results" / "masks.json").write_text(json.dumps(summary, indent=2))
    plot_curves(runs)
    for k, v in med.items():
        print(f"{k:12s} wall {v['wall_s']:7.1f} s  {v['steps_per_s']:9,.0f} steps/s  final return {v['final_return']:8.1f}")
    print(f"ppox / MaskablePPO steps/s: {summary['ppox_speedup_steps_per_s']:.2f}x; illegal actions taken by masked "
          f"ppox: {summary['illegal_actions_ppox_masked']}")


def plot_curves(runs: dict) -> None:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from ppox.experiments.plots import band, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    batch = TASK["num_envs"] * TASK["num_steps"]
    for key, label in (("ppox", "ppox, masks"), ("ppox_nomask", "ppox, no masks")):
        curves = np.array([r["curve"] for r in runs[key]], np.float64)
        mean, lo, hi = band(curves)
        steps = (np.arange(curves.shape[1]) + 1) * batch
        (line,) = ax.plot(steps, mean, label=f"{label} ({len(curves)} seeds, 95% band)")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episodic return")
    ax.set_title("Taxi-v4: PPO with and without action masks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "curves" / "taxi_masks.png", dpi=120)


if __name__ == "__main__":
    main()
