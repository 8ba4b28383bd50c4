"""The memory tasks' must-show figures: recurrent against memoryless PPO, several seeds, their curves.

  .venv/bin/python benchmarks/memory_tasks.py [--seeds 4] [--only NAME ...]

- CartPoleNoVel-v1 (fused, 500k steps, seeds vmapped): GRU PPO (the preset) and memoryless PPO, final return
  per seed and the first step at which each seed's curve reaches 475.
- MemoryChain-bsuite (fused, its default memory length), RepeatPrevious-v0 (fused): recurrent and memoryless.
- CartPole-v1 with --hide-obs 1 3 on the host driver (the Gymnasium HideObservation wrapper), 500k steps.
- Speed: fused GRU CartPoleNoVel against fused memoryless CartPole-v1, same steps, one seed each, wall time
  with and without compilation (median of --repeats runs).
Writes benchmarks/results/memory_tasks.json and docs/curves/memory_*.png.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import ppox  # noqa: E402
from ppox.experiments.plots import band, pyplot  # noqa: E402

TASKS = {  # name: (config overrides on the env's preset, memoryless overrides)
    "CartPoleNoVel-v1": ({"env": "CartPoleNoVel-v1", "total_timesteps": 500_000}, {"memory": "none"}),
    "MemoryChain-bsuite": ({"env": "MemoryChain-bsuite"}, {"memory": "none"}),
    "RepeatPrevious-v0": ({"env": "RepeatPrevious-v0"}, {"memory": "none"}),
    "host CartPole-v1 --hide-obs 1 3": ({"env": "CartPole-v1", "preset": "CartPoleNoVel-v1", "driver": "host",
                                         "hide_obs": (1, 3), "total_timesteps": 500_000}, None),
}


def config_for(overrides: dict, seed: int = 0, seeds: int = 1) -> ppox.Config:
    overrides = dict(overrides)
    preset = overrides.pop("preset", overrides["env"])
    return ppox.Config.preset(preset).replace(**overrides, seed=seed, seeds=seeds, save=False, progress=False)


def first_reaching(curve: np.ndarray, level: float, batch: int) -> int | None:
    hit = np.flatnonzero(np.nan_to_num(curve, nan=-np.inf) >= level)
    return int((hit[0] + 1) * batch) if len(hit) else None


def train_seeds(config: ppox.Config, seeds: int) -> dict:
    """One vmapped run of ``seeds`` seeds (fused), or one run per seed (host)."""
    start = time.perf_counter()
    if config.driver == "host":
        results = [ppox.train(config.replace(seed=s)) for s in range(seeds)]
        finals = [float(r.final_return()[0]) for r in results]
        curves = [r.metrics["episode_return"][0] for r in results]
    else:
        result = ppox.train(config.replace(seeds=seeds))
        finals, curves = [float(x) for x in result.final_return()], list(result.metrics["episode_return"])
    wall = time.perf_counter() - start
    return {"final_return": finals, "wall_s": wall, "curves": [[float(x) for x in c] for c in curves],
            "first_475": [first_reaching(np.asarray(c), 475, config.batch_size) for c in curves],
            "batch": config.batch_size, "config": json.loads(config.to_json())}


def plot(name: str, runs: dict) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in runs.items():
        curves = np.array(run["curves"], np.float64)
        mean, lo, hi = band(curves)
        steps = (np.arange(curves.shape[1]) + 1) * run["batch"]
        (line,) = ax.plot(steps, mean, label=f"{label} ({len(curves)} seeds, 95% band)")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episodic return")
    ax.set_title(name)
    ax.legend()
    fig.tight_layout()
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    fig.savefig(ROOT / "docs" / "curves" / f"memory_{slug}.png", dpi=120)
    plt.close(fig)


def speed(repeats: int) -> dict:
    """Fused wall time, GRU CartPoleNoVel against memoryless CartPole-v1, 500k steps, one seed."""
    variants = {"gru CartPoleNoVel-v1": ppox.Config.preset("CartPoleNoVel-v1"),
                "memoryless CartPole-v1": ppox.Config.preset("CartPole-v1"),
                "memoryless CartPole-v1, CartPoleNoVel's settings":
                    ppox.Config.preset("CartPoleNoVel-v1").replace(env="CartPole-v1", memory="none")}
    out = {label: [] for label in variants}
    for _ in range(repeats):
        for label, config in variants.items():
            config = config.replace(total_timesteps=500_000, save=False, progress=False)
            train = ppox.make_train(config)
            import jax

            start = time.perf_counter()
            compiled = jax.jit(train).lower(jax.random.PRNGKey(0)).compile()
            compiled_at = time.perf_counter()
            jax.block_until_ready(compiled(jax.random.PRNGKey(0)))
            out[label].append({"compile_s": compiled_at - start, "run_s": time.perf_counter() - compiled_at})
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("compile_s", "run_s")} for k, v in out.items()}
    gru = med["gru CartPoleNoVel-v1"]
    ratios = {label: {"total": (gru["compile_s"] + gru["run_s"]) / (m["compile_s"] + m["run_s"]),
                      "run": gru["run_s"] / m["run_s"]} for label, m in med.items() if label != "gru CartPoleNoVel-v1"}
    return {"medians": med, "runs": out, "gru_wall_time_over": ratios}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="*", default=None, help="task names (or 'speed')")
    args = p.parse_args()
    path = HERE / "results" / "memory_tasks.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name, (overrides, memoryless) in TASKS.items():
        if args.only is not None and name not in args.only:
            continue
        runs = {"recurrent (GRU)": train_seeds(config_for(overrides), args.seeds)}
        if memoryless is not None:
            runs["memoryless"] = train_seeds(config_for({**overrides, **memoryless}), args.seeds)
        results[name] = runs
        for label, run in runs.items():
            print(f"{name:32s} {label:16s} final {np.round(run['final_return'], 3)}  first >= 475 at "
                  f"{run['first_475']}  {run['wall_s']:.0f} s", flush=True)
        plot(name, runs)
        path.write_text(json.dumps(results, indent=1))
    if args.only is None or "speed" in args.only:
        results["speed"] = speed(args.repeats)
        print(json.dumps({k: v for k, v in results["speed"].items() if k != "runs"}, indent=1), flush=True)
        path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
