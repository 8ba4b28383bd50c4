"""Benchmark: `ppox tune` on Pendulum-v1, killed (SIGKILL) part-way and started again with the same command.

    .venv/bin/python benchmarks/tune.py                  # 32 trials, killed once 10 have finished
    .venv/bin/python benchmarks/tune.py --trials 8 --kill-after 3 --total-timesteps 50000   # quick

Records: the trials finished before the kill, the trial numbers and states after the restart (the study
continues: finished trials are kept, the one cut short is marked failed), the best configuration, and the
best against the preset, both trained on 4 fresh seeds (seeds 10000-10003, used by no trial). This is a
benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

HERE = Path(__file__).resolve().parent
PPOX = HERE.parent / ".venv" / "bin" / "ppox"
SPACE = ["--learning-rate", "1e-4:3e-3", "--gamma", "0.85:0.99", "--gae-lambda", "0.8:0.99", "--clip-coef", "0.1:0.4",
         "--ent-coef", "0:0.01", "--max-grad-norm", "0.3:3"]


def finished(folder: Path) -> list:
    if not (folder / "study.db").exists():
        return []
    try:
        study = optuna.load_study(study_name="ppox", storage=f"sqlite:///{folder / 'study.db'}")
    except KeyError:
        return []
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--kill-after", type=int, default=10)
    parser.add_argument("--total-timesteps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/ppox-tune-pendulum"))
    parser.add_argument("--docs", type=Path, default=HERE.parent / "docs" / "tune" / "Pendulum-v1")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tune_pendulum.json")
    opts = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shutil.rmtree(opts.folder, ignore_errors=True)
    budget = ["--total-timesteps", str(opts.total_timesteps)] if opts.total_timesteps else []
    command = [str(PPOX), "tune", "--env", "Pendulum-v1", *budget, *SPACE, "--trials", str(opts.trials), "--seeds",
               "2", "--out", str(opts.folder), "--no-progress"]
    env = {**os.environ, "PPOX_CACHE_DIR": ""}
    start = time.perf_counter()
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(finished(opts.folder)) < opts.kill_after and first.poll() is None:
        time.sleep(1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = sorted(t.number for t in finished(opts.folder))
    print(f"killed after {len(before)} finished trials ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if second.returncode != 0:
        raise SystemExit(second.stderr[-2000:])
    study = optuna.load_study(study_name="ppox", storage=f"sqlite:///{opts.folder / 'study.db'}")
    summary = json.loads((opts.folder / "summary.json").read_text())
    record = {
        "command": " ".join(command[1:]).replace(str(opts.folder), "FOLDER"),
        "killed_after_finished_trials": before,
        "trials_after_restart": [{"number": t.number, "state": t.state.name, "value": t.value}
                                 for t in study.trials],
        "kept_across_the_kill": all(study.trials[n].state.name in ("COMPLETE", "PRUNED") for n in before),
        "wall_s_total": round(wall, 1),
        "summary": summary,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    opts.out.write_text(json.dumps(record, indent=1))
    opts.docs.mkdir(parents=True, exist_ok=True)
    for name in ("history.png", "importance.png", "best_config.json", "summary.json"):
        if (opts.folder / name).exists():
            shutil.copy(opts.folder / name, opts.docs / name)
    print(json.dumps({k: record[k] for k in ("killed_after_finished_trials", "kept_across_the_kill", "wall_s_total")}
                     | {"check": summary.get("check")}, indent=1))


if __name__ == "__main__":
    main()
