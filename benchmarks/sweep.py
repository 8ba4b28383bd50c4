"""Benchmark: one `ppox sweep` against the same runs as separate `ppox train` processes.

    .venv/bin/python benchmarks/sweep.py                      # CartPole-v1, 4 x 4 grid x 4 seeds, 500k steps
    .venv/bin/python benchmarks/sweep.py --sample 4 --report docs/sweeps/CartPole-v1

The sweep is one process: `ppox sweep --env CartPole-v1 --learning-rate A,B,C,D --ent-coef W,X,Y,Z --seeds 4`.
Running all 64 members as `ppox train` processes would take as long again as the sweep many times over, so
`--sample` of them (spread over the grid and seeds) are timed, one after another, and their mean is
multiplied by 64: the record says so. Wall times are whole commands (interpreter start, imports,
compilation, training, writing the run folder). Both sides use the same compilation-cache setting:
`--cache cold` (PPOX_CACHE_DIR empty, the default here) or `--cache warm` (a cache folder filled by one run
first). This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PPOX = ROOT / ".venv" / "bin" / "ppox"
LEARNING_RATES = ["1e-4", "3e-4", "1e-3", "3e-3"]
ENT_COEFS = ["0", "0.001", "0.01", "0.03"]


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--sample", type=int, default=4, help="separate ppox train processes actually timed")
    parser.add_argument("--members", default="auto")
    parser.add_argument("--cache", choices=("cold", "warm"), default="cold")
    parser.add_argument("--report", type=Path, default=None, help="copy the sweep's report folder here")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sweep.json")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ppox-sweep-bench-"))
    env = {**os.environ, "PPOX_CACHE_DIR": str(work / "xla") if opts.cache == "warm" else ""}
    common = ["--env", "CartPole-v1", "--total-timesteps", str(opts.total_timesteps)]
    if opts.cache == "warm":  # fill the cache with the programs both sides use (same sizes: same programs)
        timed([str(PPOX), "train", *common, "--run-dir", str(work / "warmup"), "--no-progress"], env)
        timed([str(PPOX), "sweep", *common, "--learning-rate", "1e-3", "--seeds", str(opts.seeds), "--out",
               str(work / "warm"), "--no-progress"], env)
    n = len(LEARNING_RATES) * len(ENT_COEFS) * opts.seeds
    sweep = [str(PPOX), "sweep", *common, "--learning-rate", ",".join(LEARNING_RATES), "--ent-coef",
             ",".join(ENT_COEFS), "--seeds", str(opts.seeds), "--members", opts.members, "--out", str(work / "sweep"),
             "--no-progress"]
    print("sweep:", " ".join(sweep[1:]), file=sys.stderr, flush=True)
    sweep_wall = timed(sweep, env)
    members = [(lr, ent, s) for lr in LEARNING_RATES for ent in ENT_COEFS for s in range(opts.seeds)]
    picked = sorted({round(i * (len(members) - 1) / max(1, opts.sample - 1)) for i in range(opts.sample)})
    separate = []
    for lr, ent, s in [members[i] for i in picked]:  # spread over the grid and the seeds
        args = [str(PPOX), "train", *common, "--learning-rate", lr, "--ent-coef", ent, "--seed", str(s),
                "--run-dir", str(work / "runs"), "--no-progress"]
        separate.append({"args": " ".join(args[1:]).replace(str(work), "WORK"), "wall_s": round(timed(args, env), 2)})
        print(separate[-1], file=sys.stderr, flush=True)
    per_run = statistics.mean(r["wall_s"] for r in separate)
    results = json.loads((work / "sweep" / "report" / "results.json").read_text())
    record = {
        "what": f"{n} runs of CartPole-v1 ({opts.total_timesteps:,} steps each): one ppox sweep against separate "
                f"ppox train processes ({len(separate)} timed one after another, their mean multiplied by {n})",
        "command_sweep": " ".join(sweep[1:]).replace(str(work), "WORK"),
        "members": opts.members, "compilation_cache": opts.cache,
        "sweep_wall_s": round(sweep_wall, 1),
        "separate_timed": separate, "separate_mean_wall_s": round(per_run, 2),
        "separate_estimated_wall_s": round(per_run * n, 1),
        "ratio": round(per_run * n / sweep_wall, 2),
        "best": results["best"], "worst": results["worst"],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(record, indent=1))
    if opts.report is not None:
        shutil.rmtree(opts.report, ignore_errors=True)
        shutil.copytree(work / "sweep" / "report", opts.report)
    print(json.dumps({k: record[k] for k in ("sweep_wall_s", "separate_mean_wall_s", "separate_estimated_wall_s",
                                             "ratio")}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
