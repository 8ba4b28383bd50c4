"""Recurrent PPO on velocity-hidden CartPole: ppox (host driver, LSTM) against sb3-contrib's RecurrentPPO,
same hyperparameters, one run.

  bash benchmarks/setup_envs.sh   # (ONLY=sb3contrib for just the RecurrentPPO env)
  .venv/bin/python benchmarks/recurrent.py [--repeats 3]

The task is CartPole-v1 with the cart and pole velocities removed (observation entries 1 and 3: the RL Zoo's
CartPoleNoVel-v1), on the host driver in both libraries. Each run is a fresh process (JIT compilation
included for ppox); the libraries alternate. Prints medians and ratios; writes benchmarks/results/recurrent.json.
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
# CleanRL-style discrete-control settings; an LSTM of 128 units for actor and critic each (RecurrentPPO's
# enable_critic_lstm), (64, 64) tanh layers, orthogonal initialisation, no value clipping (SB3 has none).
TASK = {"total_timesteps": 100_000, "num_envs": 8, "num_steps": 128, "update_epochs": 4, "num_minibatches": 4,
        "learning_rate": 2.5e-4, "ent_coef": 0.01, "memory_size": 128}


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
    runs = {"ppox": [], "recurrent_ppo": []}
    for seed in range(args.repeats):
        runs["ppox"].append(run(ppox_python, "_ppox_novel.py", "--seed", str(seed)))
        runs["recurrent_ppo"].append(run(sb3_python, "_recurrent_sb3.py", "--seed", str(seed)))
        print(f"repeat {seed}: " + ", ".join(f"{k} {v[-1]['wall_s']:.1f} s {v[-1]['final_return']}"
                                             for k, v in runs.items()), file=sys.stderr, flush=True)
    med = {k: {m: statistics.median(r[m] for r in v if r[m] is not None) for m in ("wall_s", "steps_per_s",
                                                                                     "final_return")}
           for k, v in runs.items()}
    summary = {"task": TASK, "repeats": args.repeats, "medians": med,
               "ppox_speedup_steps_per_s": med["ppox"]["steps_per_s"] / med["recurrent_ppo"]["steps_per_s"],
               "runs": runs}
    (HERE / "results" / "recurrent.json").write_text(json.dumps(summary, indent=2))
    for k, v in med.items():
        print(f"{k:14s} wall {v['wall_s']:7.1f} s  {v['steps_per_s']:9,.0f} steps/s  final return {v['final_return']:8.1f}")
    print(f"ppox / RecurrentPPO steps/s: {summary['ppox_speedup_steps_per_s']:.2f}x")


if __name__ == "__main__":
    main()
