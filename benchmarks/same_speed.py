"""Same speed after a change: two ppox source trees, the same three measurements, interleaved, in one run.

  python benchmarks/same_speed.py --before /path/to/old/checkout --after . [--repeats 3]

1. ``ppox train`` with no arguments (CartPole-v1 fused, 500k steps): wall time of the whole process,
   without the compilation cache (PPOX_CACHE_DIR empty), run folder in a temporary directory.
2. Host CartPole-v1 500k (benchmarks/_ppox_host.py of each tree): seconds of the ``ppox.train`` call.
3. Host HalfCheetah-v5 100k (the same script): env steps per second of the ``ppox.train`` call.

Each tree runs with its own sources on PYTHONPATH and its own benchmark scripts, under the same
interpreter; the trees alternate within every repeat so that drift of a shared machine hits both.
Prints medians, the ratios after/before, and writes benchmarks/results/same_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(tree: Path, args: list[str], **kwargs) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PPOX_CACHE_DIR": ""}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def default_train(tree: Path) -> float:
    with tempfile.TemporaryDirectory() as runs:
        wall, _ = run(tree, ["-m", "ppox.cli", "train", "--run-dir", runs])
    return wall


def host(tree: Path, env: str) -> dict:
    _, out = run(tree, [str(tree / "benchmarks" / "_ppox_host.py"), "--env", env])
    return json.loads(out.strip().splitlines()[-1])


def measure(tree: Path) -> dict[str, float]:
    cheetah = host(tree, "HalfCheetah-v5")
    return {"default_train_wall_s": default_train(tree),
            "host_cartpole_500k_wall_s": host(tree, "CartPole-v1")["wall_s"],
            "host_halfcheetah_steps_per_s": cheetah["steps"] / cheetah["wall_s"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, default=Path("."))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    samples = {name: [] for name in trees}
    for i in range(args.repeats):
        for name in (trees if i % 2 == 0 else reversed(list(trees))):
            samples[name].append(measure(trees[name]))
            print(f"repeat {i + 1} {name}: {samples[name][-1]}", file=sys.stderr, flush=True)
    medians = {name: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for name, runs in samples.items()}
    ratios = {k: medians["after"][k] / medians["before"][k] for k in medians["after"]}
    result = {"trees": {k: str(v) for k, v in trees.items()}, "repeats": args.repeats, "samples": samples,
              "medians": medians, "after_over_before": ratios}
    out = Path(__file__).parent / "results" / "same_speed.json"
    out.write_text(json.dumps(result, indent=2))
    for k, r in ratios.items():
        print(f"{k:32s} before {medians['before'][k]:9.2f}  after {medians['after'][k]:9.2f}  after/before {r:.3f}")


if __name__ == "__main__":
    main()
