"""Craftax-Classic-Symbolic side by side: ppox ``--memory gru`` (the Craftax preset) against the Craftax baselines'
PPO-RNN (Craftax_Baselines ppo_rnn.py), at the same settings, alternating one run of each per round.

  .venv/bin/python benchmarks/craftax.py --baselines bench-envs/craftax/Craftax_Baselines \\
      [--num-envs 64] [--steps 1000000] [--minutes 40] [--out benchmarks/results/craftax_classic.json]
  .venv/bin/python benchmarks/craftax.py --plot benchmarks/results/craftax_classic.json  # the PNG in docs/curves/

``--baselines``: a checkout of github.com/MichaelTMatthews/Craftax_Baselines (ppo_rnn.py, wrappers.py, logz/). Its
file is not changed: this script imports its ``make_train`` and calls it with the defaults of its argparse (1024
envs x 64 steps, lr 2e-4 annealed, 4 epochs x 8 minibatches, gamma 0.99, GAE 0.8, clip 0.2, entropy 0.01, value
weight 0.5, gradient norm 1.0, 512 units, optimistic resets with ratio 16), except ``NUM_ENVS`` and
``TOTAL_TIMESTEPS`` (scaled down for a 2-core CPU, the same for ppox), ``USE_WANDB=False`` and ``DEBUG=False``
(its per-update logging goes to wandb), ``ENV_NAME`` Craftax-Classic-Symbolic-v1 and ``SEED``. Both sides are
whole runs compiled as one program (ppox: ``ppox.drivers.fused_program.make_train`` of the preset with the same
num_envs and steps); each run is a subprocess, compiled first (``lower().compile()``, timed apart) and then run:
steps/s is the run's steps over the run's wall time without compilation.

The score is the Crafter score of the achievement success rates, S = exp(mean_i ln(1 + s_i)) - 1 (s_i in percent),
computed here the same way for both from each update's rates (means over the episodes that ended in the update),
averaged over a window of updates (``ppox.envs.craftax``). Results are written after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # (this file's name would hide the package)
ENV = "Craftax-Classic-Symbolic-v1"
# Craftax_Baselines ppo_rnn.py's argparse defaults (commit 7ce36fa0), keys as its make_train reads them
BASELINE_DEFAULTS = {
    "ENV_NAME": "Craftax-Symbolic-v1", "NUM_ENVS": 1024, "TOTAL_TIMESTEPS": int(1e9), "LR": 2e-4, "NUM_STEPS": 64,
    "UPDATE_EPOCHS": 4, "NUM_MINIBATCHES": 8, "GAMMA": 0.99, "GAE_LAMBDA": 0.8, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
    "VF_COEF": 0.5, "MAX_GRAD_NORM": 1.0, "ACTIVATION": "tanh", "ANNEAL_LR": True, "DEBUG": True, "JIT": True,
    "USE_WANDB": True, "SAVE_POLICY": False, "NUM_REPEATS": 1, "LAYER_SIZE": 512, "WANDB_PROJECT": None,
    "WANDB_ENTITY": None, "USE_OPTIMISTIC_RESETS": True, "OPTIMISTIC_RESET_RATIO": 16,
}


def crafter_score(rates: np.ndarray) -> float:
    """exp(mean_i ln(1 + s_i)) - 1 of success rates in percent."""
    return float(np.exp(np.mean(np.log1p(rates))) - 1.0)


def timed(train, key) -> tuple[dict, float, float]:
    """(metrics as lists, compile seconds, run seconds) of one jitted whole run."""
    import jax

    start = time.perf_counter()
    compiled = jax.jit(train).lower(key).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(key))
    return out, compile_s, time.perf_counter() - start


def one_ppox(num_envs: int, steps: int, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import jax

    import ppox
    from ppox.drivers.fused_program import make_train

    config = ppox.Config.preset(ENV).replace(num_envs=num_envs, total_timesteps=steps, seed=seed)
    (_, metrics), compile_s, run_s = timed(make_train(config), jax.random.PRNGKey(seed))
    names = [n for n in metrics if n.startswith("achievement/")]
    rates = np.stack([np.asarray(metrics[n], np.float64) for n in names], axis=-1)
    return {"compile_s": compile_s, "run_s": run_s, "batch": config.batch_size,
            "achievements": [n.split("/", 1)[1] for n in names], "rates": rates.tolist(),
            "episode_return": np.asarray(metrics["episode_return"], np.float64).tolist()}


def one_baselines(path: str, num_envs: int, steps: int, seed: int) -> dict:
    sys.path.insert(0, str(Path(path).resolve()))
    import jax
    import ppo_rnn  # Craftax_Baselines' script, unchanged

    config = dict(BASELINE_DEFAULTS, ENV_NAME=ENV, NUM_ENVS=num_envs, TOTAL_TIMESTEPS=steps, SEED=seed,
                  USE_WANDB=False, DEBUG=False)
    out, compile_s, run_s = timed(ppo_rnn.make_train(config), jax.random.PRNGKey(seed))
    metric = out["metric"]
    names = sorted((n for n in metric if n.startswith("Achievements/")), key=lambda n: n)
    rates = np.stack([np.asarray(metric[n], np.float64) for n in names], axis=-1)
    return {"compile_s": compile_s, "run_s": run_s, "batch": num_envs * config["NUM_STEPS"],
            "achievements": [n.split("/", 1)[1] for n in names], "rates": rates.tolist(),
            "episode_return": np.asarray(metric["returned_episode_returns"], np.float64).tolist()}


def curve(result: dict, windows: int = 10) -> dict:
    """Score and return per window of updates (the mean of the updates' rates where episodes ended)."""
    rates, returns = np.asarray(result["rates"]), np.asarray(result["episode_return"])
    order = np.argsort(result["achievements"])  # (the same achievement order for both sides)
    rates = rates[:, order]
    bounds = np.linspace(0, len(returns), windows + 1).astype(int)
    steps, scores, rets = [], [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        steps.append(int(hi * result["batch"]))
        scores.append(crafter_score(np.nanmean(rates[lo:hi], axis=0)))
        rets.append(float(np.nanmean(returns[lo:hi])))
    return {"steps": steps, "score": scores, "episode_return": rets}


def run_one(side: str, args) -> dict:
    """One run of ``side`` in a fresh process (its JSON on the last line of stdout)."""
    command = [sys.executable, __file__, "--one", side, "--num-envs", str(args.num_envs), "--steps",
               str(args.steps), "--seed", str(args.seed_of_round), "--baselines", args.baselines]
    env = dict(os.environ, WANDB_MODE="disabled")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    return finished(side, json.loads(done.stdout.strip().splitlines()[-1]), args.steps, args.num_envs,
                    args.seed_of_round)


def finished(side: str, result: dict, steps: int, num_envs: int, seed: int) -> dict:
    """A ``--one`` result with its side, settings, steps/s and curve."""
    result.update(side=side, seed=seed, steps=steps, num_envs=num_envs, steps_per_second=steps / result["run_s"],
                  load=os.getloadavg()[0])
    result["curve"] = curve(result)
    return result


def record(runs: list[dict], out: Path, note: str = "") -> None:
    """Write the results file: every run, their summary and the machine's load now."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    data = {"env": ENV, "command": " ".join(sys.argv), "uptime": uptime, "cpus": os.cpu_count(), "note": note,
            "summary": summary(runs), "runs": runs}
    out.write_text(json.dumps(data, indent=1))


def summary(runs: list[dict]) -> dict:
    """Per side: median steps/s and compile time, final-window score and return; the ratio ppox / baselines."""
    out = {}
    for side in ("ppox", "baselines"):
        mine = [r for r in runs if r["side"] == side]
        if mine:
            out[side] = {"runs": len(mine),
                         "steps_per_second_median": float(np.median([r["steps_per_second"] for r in mine])),
                         "compile_s_median": float(np.median([r["compile_s"] for r in mine])),
                         "final_score": [r["curve"]["score"][-1] for r in mine],
                         "final_return": [r["curve"]["episode_return"][-1] for r in mine]}
    if "ppox" in out and "baselines" in out:
        out["ratio_ppox_over_baselines"] = (out["ppox"]["steps_per_second_median"]
                                            / out["baselines"]["steps_per_second_median"])
    return out


def main_rounds(args) -> None:
    deadline, runs, out = time.time() + 60 * args.minutes, [], Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    round_index = 0
    while time.time() < deadline:
        args.seed_of_round = round_index
        for side in ("baselines", "ppox") if round_index % 2 == 0 else ("ppox", "baselines"):
            runs.append(run_one(side, args))
            record(runs, out)
            print(side, f"{runs[-1]['steps_per_second']:.0f} steps/s", runs[-1]["curve"]["score"][-1], flush=True)
        round_index += 1


def plot(path: str, target: Path = ROOT / "docs" / "curves" / "craftax_classic.png") -> None:
    sys.path.insert(0, str(ROOT))
    from ppox.experiments.plots import pyplot

    plt = pyplot()
    record = json.loads(Path(path).read_text())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in record["runs"]:
        color = "tab:blue" if r["side"] == "ppox" else "tab:orange"
        label = f"{'ppox --memory gru' if r['side'] == 'ppox' else 'Craftax_Baselines ppo_rnn.py'} (seed {r['seed']})"
        axes[0].plot(r["curve"]["steps"], r["curve"]["score"], color=color, label=label, alpha=0.8)
        axes[1].plot(r["curve"]["steps"], r["curve"]["episode_return"], color=color, alpha=0.8)
    axes[0].set(xlabel="env steps", ylabel="Crafter score (%)", title=f"{ENV}, {record['runs'][0]['num_envs']} envs")
    axes[1].set(xlabel="env steps", ylabel="episode return")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    target.parent.mkdir(exist_ok=True)
    fig.savefig(target, dpi=100)
    print(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baselines", default=str(ROOT / "bench-envs" / "craftax" / "Craftax_Baselines"))
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "craftax_classic.json"))
    parser.add_argument("--one", choices=("ppox", "baselines"))
    parser.add_argument("--add", nargs=2, metavar=("SIDE", "FILE"), help="add a --one run's output to --out")
    parser.add_argument("--note", default="", help="with --add: how the runs were made")
    parser.add_argument("--plot", help="a results JSON: draw its curves")
    parser.add_argument("--png", default=str(ROOT / "docs" / "curves" / "craftax_classic.png"))
    args = parser.parse_args()
    if args.add:
        out = Path(args.out)
        runs = json.loads(out.read_text())["runs"] if out.exists() else []
        result = json.loads(Path(args.add[1]).read_text().strip().splitlines()[-1])
        runs.append(finished(args.add[0], result, args.steps, args.num_envs, args.seed))
        record(runs, out, args.note)
    elif args.plot:
        plot(args.plot, Path(args.png))
    elif args.one == "ppox":
        print(json.dumps(one_ppox(args.num_envs, args.steps, args.seed)))
    elif args.one == "baselines":
        print(json.dumps(one_baselines(args.baselines, args.num_envs, args.steps, args.seed)))
    else:
        main_rounds(args)


if __name__ == "__main__":
    main()
