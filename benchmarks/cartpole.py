"""Benchmark: ppox vs other PPO libraries on CartPole-v1, same work, same hyperparameters.

    bash benchmarks/setup_envs.sh              # once: makes bench-envs/{rejax,sb3}
    .venv/bin/python benchmarks/cartpole.py    # 3 runs per library, table + results/cartpole.json

Every run is a fresh subprocess (so each pays its own JIT compilation) of that library's own
Python: ppox with .venv/bin/python, rejax with bench-envs/rejax/bin/python, SB3 with
bench-envs/sb3/bin/python. The order of the libraries rotates from one repetition to the next,
so slow phases of a shared machine do not all land on one library. Repetition r uses seed
--seed + r for every library. This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

LIBRARIES = {
    # name: (python interpreter, runner script)
    "ppox": (ROOT / ".venv" / "bin" / "python", HERE / "_ppox_cartpole.py"),
    "rejax": (ROOT / "bench-envs" / "rejax" / "bin" / "python", HERE / "_rejax_cartpole.py"),
    "sb3": (ROOT / "bench-envs" / "sb3" / "bin" / "python", HERE / "_sb3_cartpole.py"),
}

HYPERPARAMETERS = {
    "env": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 128,
    "update_epochs": 4,
    "num_minibatches": 4,
    "learning_rate": 2.5e-4,
    "anneal_lr": "linear to 0",
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_coef": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "network": "separate actor and critic MLPs, 64x64, tanh",
    "norm_adv": True,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_one(lib: str, seed: int, total_timesteps: int, timeout: float) -> dict:
    python, script = LIBRARIES[lib]
    cmd = [str(python), str(script), "--seed", str(seed), "--total-timesteps", str(total_timesteps)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # each library sees only its own venv (ppox: .venv + repo root)
    if lib == "ppox":
        env["PYTHONPATH"] = str(ROOT)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"library": lib, "seed": seed, "error": f"timed out after {timeout:.0f} s"}
    process_s = time.perf_counter() - t0
    record = None
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    if proc.returncode != 0 or record is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return {"library": lib, "seed": seed, "error": f"exit {proc.returncode}", "stderr_tail": tail}
    record["process_s"] = process_s  # whole subprocess: interpreter start, imports, setup, training
    record["loadavg_1m_before"] = load_before
    return record


def summarize(records: list[dict], libs: list[str]) -> dict:
    summary = {}
    for lib in libs:
        ok = [r for r in records if r["library"] == lib and "error" not in r]
        failed = [r for r in records if r["library"] == lib and "error" in r]
        entry = {"runs": len(ok), "failed": len(failed)}
        if ok:
            walls = [r["wall_s"] for r in ok]
            rets = [r["final_return"] for r in ok if r["final_return"] == r["final_return"]]
            entry.update(
                median_wall_s=statistics.median(walls),
                min_wall_s=min(walls),
                max_wall_s=max(walls),
                median_final_return=statistics.median(rets) if rets else None,
                final_returns=[r["final_return"] for r in ok],
                steps=ok[0]["steps"],
                median_steps_per_s=statistics.median(r["steps"] / r["wall_s"] for r in ok),
            )
        summary[lib] = entry
    ref = summary.get("ppox", {}).get("median_wall_s")
    for lib, entry in summary.items():
        if "median_wall_s" in entry and ref:
            entry["wall_ratio_vs_ppox"] = entry["median_wall_s"] / ref
        else:
            entry["wall_ratio_vs_ppox"] = None
    return summary


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def table(summary: dict) -> str:
    header = ["library", "runs", "median wall s", "min-max wall s", "wall / ppox", "steps/s",
              "median final return"]
    rows = []
    for lib, e in summary.items():
        if not e.get("runs"):
            rows.append([lib, f"0 ({e['failed']} failed)", "-", "-", "-", "-", "-"])
            continue
        rows.append([
            lib,
            str(e["runs"]) + (f" ({e['failed']} failed)" if e["failed"] else ""),
            fmt(e["median_wall_s"], ".1f"),
            f"{e['min_wall_s']:.1f}-{e['max_wall_s']:.1f}",
            fmt(e["wall_ratio_vs_ppox"], ".2f") + ("x" if e["wall_ratio_vs_ppox"] else ""),
            fmt(e["median_steps_per_s"], ",.0f"),
            fmt(e["median_final_return"], ".1f"),
        ])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="repetitions per library (default 3)")
    p.add_argument("--total-timesteps", type=int, default=500_000,
                   help="env steps per run (default 500000; e.g. 50000 for a smoke run)")
    p.add_argument("--libraries", default=",".join(LIBRARIES),
                   help=f"comma-separated subset of {','.join(LIBRARIES)}")
    p.add_argument("--seed", type=int, default=0, help="seed of repetition 0 (repetition r: seed + r)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before one run is abandoned")
    p.add_argument("--out", type=Path, default=HERE / "results" / "cartpole.json")
    args = p.parse_args(argv)

    libs = [x.strip() for x in args.libraries.split(",") if x.strip()]
    unknown = [x for x in libs if x not in LIBRARIES]
    if unknown:
        p.error(f"unknown libraries {unknown}; choose from {list(LIBRARIES)}")
    available = []
    for lib in libs:
        python = LIBRARIES[lib][0]
        if python.exists():
            available.append(lib)
        else:
            hint = "make .venv first" if lib == "ppox" else "run: bash benchmarks/setup_envs.sh"
            log(f"[cartpole] skipping {lib}: {python} not found ({hint})")
    if not available:
        log("[cartpole] nothing to run")
        return 1

    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    records = []
    for rep in range(args.runs):
        order = available[rep % len(available):] + available[:rep % len(available)]
        seed = args.seed + rep
        for lib in order:
            log(f"[cartpole] run {rep + 1}/{args.runs}  {lib:6s} seed {seed} ...")
            rec = run_one(lib, seed, args.total_timesteps, args.timeout)
            rec["repetition"] = rep
            records.append(rec)
            if "error" in rec:
                log(f"[cartpole]   FAILED: {rec['error']}\n{rec.get('stderr_tail', '')}")
            else:
                log(f"[cartpole]   wall {rec['wall_s']:.1f} s  final return {rec['final_return']:.1f}"
                    f"  (process {rec['process_s']:.1f} s)")

    summary = summarize(records, available)
    out = {
        "benchmark": "cartpole",
        "started_utc": started,
        "total_timesteps": args.total_timesteps,
        "runs_per_library": args.runs,
        "hyperparameters": HYPERPARAMETERS,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_end": os.getloadavg(),
        },
        "summary": summary,
        "runs": records,
        "notes": "wall_s: the library's training call incl. JIT compilation (see benchmarks/README.md); "
                 "wall_ratio_vs_ppox: median wall_s / ppox's median wall_s (> 1: slower than ppox); "
                 "final_return: mean return of training episodes finished in the last tenth of updates.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")

    print(f"\nCartPole-v1, {args.total_timesteps:,} steps per run, {args.runs} run(s) per library "
          f"(medians; wall includes JIT compilation)\n")
    print(table(summary))
    print(f"\nwritten: {args.out}")
    return 0 if all(summary[lib]["runs"] for lib in available) else 1


if __name__ == "__main__":
    sys.exit(main())
