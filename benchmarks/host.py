"""Benchmark: ppox's HOST driver (Gymnasium envs stepped from Python) vs Stable-Baselines3 and SBX.

    bash benchmarks/setup_envs.sh          # once: makes bench-envs/{rejax,sb3,sbx}
    .venv/bin/python benchmarks/host.py    # CartPole-v1 and HalfCheetah-v5, table + results/host.json

Two tasks, CleanRL's hyperparameters (TASKS below), the same work in every library:
CartPole-v1 (4 envs x 128 steps, 500k steps) and HalfCheetah-v5 (1 env x 2048 steps, 100k
steps, observation normalisation and reward scaling; for throughput, not for learning). Plus the
env floor: the same env and number of envs with random actions, through Gymnasium's vector env
and through a plain loop over single envs (_env_floor.py), no learning.

Every run is a fresh subprocess (so each pays its own JIT compilation) of that library's own
Python: ppox and the env floor with .venv/bin/python, SB3 with bench-envs/sb3/bin/python, SBX with
bench-envs/sbx/bin/python. Within a task the order rotates from one repetition to the next, so
slow phases of a shared machine do not all land on one library. Repetition r uses seed
--seed + r everywhere. This is a benchmark, not a test: it asserts nothing.

This module is stdlib-only at import: the runners of every venv import TASKS from it.
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
PPOX_PYTHON = ROOT / ".venv" / "bin" / "python"

# CleanRL's hyperparameters (ppo.py for CartPole, ppo_continuous_action.py for MuJoCo), named as
# ppox.Config's fields. _ppox_host.py checks ppox's config against these; _sb3_host.py and
# _sbx_host.py build their models from them.
_COMMON = {
    "anneal_lr": True,
    "adam_eps": 1e-5,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_coef": 0.2,
    "vf_clip_coef": 0.2,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "norm_adv": True,
    "hidden_sizes": [64, 64],
    "activation": "tanh",
    "shared_trunk": False,
}
TASKS = {
    "CartPole-v1": {
        "total_timesteps": 500_000,
        "num_envs": 4,
        "num_steps": 128,
        "update_epochs": 4,
        "num_minibatches": 4,
        "learning_rate": 2.5e-4,
        "ent_coef": 0.01,
        "norm_obs": False,
        "norm_reward": False,
        **_COMMON,
    },
    "HalfCheetah-v5": {
        "total_timesteps": 100_000,
        "num_envs": 1,
        "num_steps": 2048,
        "update_epochs": 10,
        "num_minibatches": 32,
        "learning_rate": 3e-4,
        "ent_coef": 0.0,
        "norm_obs": True,
        "norm_reward": True,
        "log_std_init": 0.0,
        **_COMMON,
    },
}
FLOOR_STEPS = {"CartPole-v1": 200_000, "HalfCheetah-v5": 20_000}  # env steps timed per floor run
SHORT = {"CartPole-v1": "cartpole", "HalfCheetah-v5": "halfcheetah"}

LIBRARIES = {
    # name: (python interpreter, runner script)
    "ppox": (PPOX_PYTHON, HERE / "_ppox_host.py"),
    "sb3": (ROOT / "bench-envs" / "sb3" / "bin" / "python", HERE / "_sb3_host.py"),
    "sbx": (ROOT / "bench-envs" / "sbx" / "bin" / "python", HERE / "_sbx_host.py"),
}
FLOORS = ("floor-vector", "floor-loop")
FLOOR_LABELS = {"floor-vector": "env floor: gymnasium SyncVectorEnv", "floor-loop": "env floor: plain loop"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_one(unit: str, env_id: str, seed: int, total_timesteps: int, floor_steps: int, timeout: float) -> dict:
    if unit in FLOORS:
        python, script = PPOX_PYTHON, HERE / "_env_floor.py"
        args = ["--env", env_id, "--num-envs", str(TASKS[env_id]["num_envs"]), "--steps", str(floor_steps),
                "--mode", unit.split("-", 1)[1], "--seed", str(seed)]
    else:
        python, script = LIBRARIES[unit]
        args = ["--env", env_id, "--seed", str(seed), "--total-timesteps", str(total_timesteps)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # each library sees only its own venv (ppox: .venv + repo root)
    if unit == "ppox":
        env["PYTHONPATH"] = str(ROOT)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(python), str(script), *args], capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"library": unit, "env": env_id, "seed": seed, "error": f"timed out after {timeout:.0f} s"}
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
        return {"library": unit, "env": env_id, "seed": seed, "error": f"exit {proc.returncode}",
                "stderr_tail": tail}
    record["process_s"] = process_s  # whole subprocess: interpreter start, imports, setup, the timed part
    record["loadavg_1m_before"] = load_before
    return record


def summarize(records: list[dict], libs: list[str]) -> dict:
    summary = {}
    for unit in [*libs, *FLOORS]:
        ok = [r for r in records if r["library"] == unit and "error" not in r]
        failed = [r for r in records if r["library"] == unit and "error" in r]
        entry = {"runs": len(ok), "failed": len(failed)}
        if ok:
            walls = [r["wall_s"] for r in ok]
            rates = [r["steps"] / r["wall_s"] for r in ok]
            entry.update(
                median_wall_s=statistics.median(walls),
                min_wall_s=min(walls),
                max_wall_s=max(walls),
                steps=ok[0]["steps"],
                median_steps_per_s=statistics.median(rates),
                min_steps_per_s=min(rates),
                max_steps_per_s=max(rates),
            )
            if unit not in FLOORS:
                rets = [r["final_return"] for r in ok if r["final_return"] == r["final_return"]]
                entry.update(
                    median_final_return=statistics.median(rets) if rets else None,
                    final_returns=[r["final_return"] for r in ok],
                )
        summary[unit] = entry
    ref = summary.get("ppox", {}).get("median_wall_s")
    floors = {f: summary[f].get("median_steps_per_s") for f in FLOORS}
    for unit in libs:
        entry = summary[unit]
        has = "median_wall_s" in entry
        entry["wall_ratio_vs_ppox"] = entry["median_wall_s"] / ref if has and ref else None
        for f, rate in floors.items():
            entry[f"fraction_of_{f.replace('-', '_')}"] = entry["median_steps_per_s"] / rate if has and rate else None
    return summary


def fmt(x, spec, suffix=""):
    return "-" if x is None else format(x, spec) + suffix


def _render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def table(summary: dict, libs: list[str]) -> str:
    header = ["library", "runs", "median wall s", "min-max wall s", "wall / ppox", "steps/s",
              "of vector floor", "of loop floor", "median final return"]
    rows = []
    for lib in libs:
        e = summary[lib]
        if not e.get("runs"):
            rows.append([lib, f"0 ({e['failed']} failed)"] + ["-"] * 7)
            continue
        rows.append([
            lib,
            str(e["runs"]) + (f" ({e['failed']} failed)" if e["failed"] else ""),
            fmt(e["median_wall_s"], ".1f"),
            f"{e['min_wall_s']:.1f}-{e['max_wall_s']:.1f}",
            fmt(e["wall_ratio_vs_ppox"], ".2f", "x"),
            fmt(e["median_steps_per_s"], ",.0f"),
            fmt(e["fraction_of_floor_vector"], ".0%"),
            fmt(e["fraction_of_floor_loop"], ".0%"),
            fmt(e["median_final_return"], ".1f"),
        ])
    for f in FLOORS:
        e = summary[f]
        if not e.get("runs"):
            rows.append([FLOOR_LABELS[f], f"0 ({e['failed']} failed)"] + ["-"] * 7)
            continue
        rows.append([FLOOR_LABELS[f], str(e["runs"]), "-", "-", "-",
                     f"{e['median_steps_per_s']:,.0f} ({e['min_steps_per_s']:,.0f}-{e['max_steps_per_s']:,.0f})",
                     "-", "-", "-"])
    return _render(header, rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="repetitions per library and task (default 3)")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--libraries", default=",".join(LIBRARIES),
                   help=f"comma-separated subset of {','.join(LIBRARIES)} (the env floor always runs)")
    p.add_argument("--cartpole-timesteps", type=int, default=TASKS["CartPole-v1"]["total_timesteps"],
                   help="env steps per CartPole-v1 run (default 500000; e.g. 50000 for a smoke run)")
    p.add_argument("--halfcheetah-timesteps", type=int, default=TASKS["HalfCheetah-v5"]["total_timesteps"],
                   help="env steps per HalfCheetah-v5 run (default 100000; at least 2048)")
    p.add_argument("--floor-scale", type=float, default=1.0,
                   help=f"scale the env-floor step counts {FLOOR_STEPS} (e.g. 0.1 for a smoke run)")
    p.add_argument("--seed", type=int, default=0, help="seed of repetition 0 (repetition r: seed + r)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before one run is abandoned")
    p.add_argument("--budget-minutes", type=float, default=24.0,
                   help="skip a task's remaining repetitions once another one (as long as its last) would end "
                        "past this many minutes from the start (default 24; 0: no limit); skipped ones are "
                        "recorded in the JSON and printed")
    p.add_argument("--out", type=Path, default=HERE / "results" / "host.json")
    args = p.parse_args(argv)

    tasks = [x.strip() for x in args.tasks.split(",") if x.strip()]
    libs = [x.strip() for x in args.libraries.split(",") if x.strip()]
    if [t for t in tasks if t not in TASKS]:
        p.error(f"unknown tasks {[t for t in tasks if t not in TASKS]}; choose from {list(TASKS)}")
    if [x for x in libs if x not in LIBRARIES]:
        p.error(f"unknown libraries {[x for x in libs if x not in LIBRARIES]}; choose from {list(LIBRARIES)}")
    if not PPOX_PYTHON.exists():
        log(f"[host] {PPOX_PYTHON} not found: make .venv first (it also runs the env floor)")
        return 1
    available = []
    for lib in libs:
        if LIBRARIES[lib][0].exists():
            available.append(lib)
        else:
            log(f"[host] skipping {lib}: {LIBRARIES[lib][0]} not found (run: bash benchmarks/setup_envs.sh)")
    timesteps = {"CartPole-v1": args.cartpole_timesteps, "HalfCheetah-v5": args.halfcheetah_timesteps}
    floor_steps = {t: max(1000, int(n * args.floor_scale)) for t, n in FLOOR_STEPS.items()}

    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    results = {}
    for env_id in tasks:
        units = available + list(FLOORS)
        records = []
        t_task = time.perf_counter()
        skipped, last_rep_s = 0, 0.0
        for rep in range(args.runs):
            elapsed = time.perf_counter() - t_start
            if rep > 0 and args.budget_minutes > 0 and elapsed + last_rep_s > args.budget_minutes * 60:
                skipped = args.runs - rep
                log(f"[host] {env_id}: skipping the last {skipped} repetition(s): {elapsed / 60:.1f} min spent, "
                    f"a repetition takes about {last_rep_s / 60:.1f} min, budget {args.budget_minutes:g} min")
                break
            t_rep = time.perf_counter()
            order = units[rep % len(units):] + units[:rep % len(units)]
            seed = args.seed + rep
            for unit in order:
                log(f"[host] {env_id} run {rep + 1}/{args.runs}  {unit:12s} seed {seed} ...")
                rec = run_one(unit, env_id, seed, timesteps[env_id], floor_steps[env_id], args.timeout)
                rec["repetition"] = rep
                records.append(rec)
                if "error" in rec:
                    log(f"[host]   FAILED: {rec['error']}\n{rec.get('stderr_tail', '')}")
                elif unit in FLOORS:
                    log(f"[host]   {rec['steps_per_s']:,.0f} steps/s  (process {rec['process_s']:.1f} s)")
                else:
                    log(f"[host]   wall {rec['wall_s']:.1f} s  {rec['steps'] / rec['wall_s']:,.0f} steps/s  "
                        f"final return {rec['final_return']:.1f}  (process {rec['process_s']:.1f} s)")
            last_rep_s = time.perf_counter() - t_rep
        results[env_id] = {
            "total_timesteps": timesteps[env_id],
            "floor_steps": floor_steps[env_id],
            "repetitions_done": args.runs - skipped,
            "repetitions_skipped_for_budget": skipped,
            "hyperparameters": TASKS[env_id],
            "summary": summarize(records, available),
            "elapsed_s": time.perf_counter() - t_task,
            "runs": records,
        }

    out = {
        "benchmark": "host",
        "started_utc": started,
        "elapsed_s": time.perf_counter() - t_start,
        "runs_per_library": args.runs,
        "libraries": available,
        "tasks": results,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_end": os.getloadavg(),
        },
        "notes": "wall_s: the library's training call incl. JIT compilation (see benchmarks/README.md); "
                 "wall_ratio_vs_ppox: median wall_s / ppox's median wall_s (> 1: slower than ppox); "
                 "fraction_of_floor_*: median steps/s / the env floor's median steps/s (random actions, "
                 "Gymnasium vector env or plain loop); final_return: mean return of training episodes "
                 "finished in the last tenth of updates.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")

    for env_id, res in results.items():
        n = TASKS[env_id]["num_envs"]
        skipped = f" ({res['repetitions_skipped_for_budget']} skipped for the time budget)" \
            if res["repetitions_skipped_for_budget"] else ""
        print(f"\n{env_id}, {res['total_timesteps']:,} steps per run, {n} env{'s' if n > 1 else ''}, "
              f"{res['repetitions_done']} run(s) per library{skipped} (medians; wall includes JIT compilation)\n")
        print(table(res["summary"], available))
        print("(env floor: random actions, no learning; steps/s median (min-max). "
              "'of ... floor': a library's steps/s / the floor's)")
    print(f"\ntotal {out['elapsed_s'] / 60:.1f} min; written: {args.out}")
    ok = all(res["summary"][u]["runs"] for res in results.values() for u in [*available, *FLOORS])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
