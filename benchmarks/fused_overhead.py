"""The fused driver's cost over its own make_train, PureJaxRL beside them, and the PRNG implementations (issue 34).

  python benchmarks/fused_overhead.py --env Breakout-MinAtar --steps 1000000 --before /path/to/old/checkout \\
      --cases train@before train make_train purejaxrl train:rbg --repeats 3 --out fused_overhead_issue34.json

A case is MODE[:PRNG_IMPL][@before]: MODE as benchmarks/_fused_one.py takes it (train, make_train, purejaxrl),
run with this tree's sources or, with @before, those of --before. Every measurement is a fresh process (each pays
its own compilation; no compilation cache); the cases rotate within every repeat, so that drift of a shared
machine hits each of them. Wall time and CPU time (user + system of the process and its threads) of the timed
call; prints medians and writes benchmarks/results/OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(case: str, env: str, steps: int, seed: int, trees: dict[str, Path]) -> dict:
    spec, _, tree = case.partition("@")
    mode, _, impl = spec.partition(":")
    root = trees[tree or "after"]
    args = [sys.executable, str(HERE / "_fused_one.py"), mode, "--env", env, "--steps", str(steps), "--seed", str(seed)]
    if impl:
        args += ["--prng-impl", impl]
    path = f"{root}{os.pathsep}{HERE.parent / 'bench-envs' / 'purejaxrl-site'}" if mode == "purejaxrl" else str(root)
    env_vars = {**os.environ, "PYTHONPATH": path, "PPOX_CACHE_DIR": ""}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, env=env_vars, capture_output=True, text=True)
    process_wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{case}: failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": result["wall_s"], "cpu_s": result["cpu_s"], "process_wall_s": process_wall, "process_cpu_s": cpu}


def write(args, trees: dict[str, Path], samples: dict[str, list[dict]], loads: list[float]) -> dict:
    """benchmarks/results/OUT with the measurements so far and their medians (cases measured at least once)."""
    medians = {c: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for c, runs in samples.items() if runs}
    out = {"env": args.env, "steps": args.steps, "repeats": args.repeats, "command": " ".join(sys.argv),
           "complete": all(len(runs) == args.repeats for runs in samples.values()),
           "trees": {k: str(v) for k, v in trees.items()}, "machine": f"{platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} cores", "load_average_at_starts": loads, "samples": samples, "medians": medians}
    (HERE / "results" / args.out).write_text(json.dumps(out, indent=1))
    return medians


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--cases", nargs="+", default=["train", "make_train", "purejaxrl"])
    p.add_argument("--before", type=Path, help="the tree that @before cases run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", required=True, help="file name under benchmarks/results/")
    args = p.parse_args()
    trees = {"after": HERE.parent, **({"before": args.before.resolve()} if args.before else {})}
    samples: dict[str, list[dict]] = {c: [] for c in args.cases}
    loads: list[float] = []
    for r in range(args.repeats):
        order = args.cases[r % len(args.cases):] + args.cases[: r % len(args.cases)]
        for case in order if r % 2 == 0 else order[::-1]:
            loads.append(os.getloadavg()[0])
            samples[case].append(measure(case, args.env, args.steps, r, trees))
            print(f"repeat {r + 1} {case}: {samples[case][-1]}", file=sys.stderr, flush=True)
            medians = write(args, trees, samples, loads)  # (after every measurement: a stopped series keeps its part)
    base = medians.get("make_train", {}).get("wall_s")
    for c, m in medians.items():
        ratio = f"  / make_train {m['wall_s'] / base:.3f}" if base else ""
        print(f"{c:24s} wall {m['wall_s']:8.2f} s  cpu {m['cpu_s']:8.2f} s{ratio}")


if __name__ == "__main__":
    main()
