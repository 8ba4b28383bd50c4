"""ppox's fused driver against Brax's own PPO (brax.training.agents.ppo.train) on one Brax env, side by side.

Both train Brax's Ant (positional backend, Brax's training-notebook default) with Brax's published Ant settings,
scaled down to 2 CPU cores: the same envs, unroll length, minibatches and epochs (so the same env steps per
update), learning rate, entropy cost, discount, reward scaling 10, observation normalisation, clip 0.3, GAE 0.95,
1000-step episodes; and the same network sizes (Brax's policy and value nets set to ppox's: 4 x 32 tanh each).
Each measurement is a fresh process (each pays its compilation), ppox and Brax alternating, REPEATS of each.

  python benchmarks/brax_side_by_side.py [--steps N] [--repeats R] [--out benchmarks/results/brax_ant_cpu.json]
  python benchmarks/brax_side_by_side.py one ppox|brax --steps N --seed S   (one measurement, a JSON line)

(Not named brax.py: run as a script, a file's folder comes first on sys.path, and brax.py would be imported
in place of the brax package.)

Reported per run: wall_s (the training call, compilation included, evaluation excluded), steps/s including
compilation (steps / wall_s), steps/s excluding compilation (the steps after the first measured stretch over
its time: ppox's chunks after the first, Brax's training epochs after the first), and the final evaluation
return (Brax: its eval over eval_episodes stochastic episodes at the end; ppox: ppox.evaluate of the final
policy over as many stochastic episodes), both at the same env steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENV, BACKEND = "ant", "positional"
HIDDEN = (32, 32, 32, 32)  # Brax's policy net's sizes; its value net (5 x 256) is set to these as well
# Brax's Ant settings (num_envs 4096, batch_size 2048, num_minibatches 32, unroll_length 5, 4 epochs) and the
# 2-core scale (the same unroll length and epochs; ppox's num_steps = batch_size * num_minibatches * unroll /
# num_envs). evals: Brax's num_evals (an eval at the start, then one after each training epoch).
SCALES = {
    "cpu": {
        "num_envs": 128,
        "batch_size": 128,
        "num_minibatches": 8,
        "unroll": 5,
        "epochs": 4,
        "evals": 3,
        "eval_episodes": 16,
    },
    "published": {
        "num_envs": 4096,
        "batch_size": 2048,
        "num_minibatches": 32,
        "unroll": 5,
        "epochs": 4,
        "evals": 6,
        "eval_episodes": 128,
    },
}


def steps_per_update(scale: dict) -> int:
    return scale["batch_size"] * scale["num_minibatches"] * scale["unroll"]


def run_ppox(steps: int, seed: int, scale: dict, log_std_init: float | None = None) -> dict:
    import numpy as np

    import ppox

    config = ppox.Config.preset(
        f"brax/{ENV}/{BACKEND}",
        num_envs=scale["num_envs"],
        num_steps=steps_per_update(scale) // scale["num_envs"],
        num_minibatches=scale["num_minibatches"],
        update_epochs=scale["epochs"],
        hidden_sizes=HIDDEN,
        total_timesteps=steps,
        seed=seed,
        save=False,
        progress=False,
        checkpoint_every=0,
        **({} if log_std_init is None else {"log_std_init": log_std_init}),
    )
    marks: list[tuple[float, int]] = []

    class Clock(ppox.Callback):
        def on_update(self, info):
            marks.append((time.perf_counter(), info.global_step))

    start = time.perf_counter()
    result = ppox.train(config, callbacks=[Clock()])
    wall = time.perf_counter() - start
    first = marks[0][0]
    first_chunk = max(step for t, step in marks if t - first < 0.2)  # (a chunk's updates are seen together)
    rate = (marks[-1][1] - first_chunk) / max(marks[-1][0] - first, 1e-9)
    params = np.asarray(result.metrics["episode_return"])[0]
    returns = ppox.evaluate(result.policy(), episodes=scale["eval_episodes"], deterministic=False, seed=seed)
    return {
        "wall_s": wall,
        "steps": int(config.num_updates * config.batch_size),
        "sps_with_compile": config.num_updates * config.batch_size / wall,
        "sps_without_compile": rate,
        "eval_return": float(np.mean(returns)),
        "train_return_last": float(params[~np.isnan(params)][-1]) if (~np.isnan(params)).any() else None,
    }


def replicate(tree, devices):
    """jax.device_put_replicated (removed in jax 0.10, which Brax 0.14.2's ppo.train still calls): ``tree`` with a
    leading axis of len(devices), one copy on each device, as pmap takes it."""
    import jax
    import jax.numpy as jnp

    mesh = jax.sharding.Mesh(list(devices), ("d",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
    return jax.tree_util.tree_map(lambda x: jax.device_put(jnp.stack([x] * len(devices)), sharding), tree)


def run_brax(steps: int, seed: int, scale: dict) -> dict:
    import functools

    import jax

    if not hasattr(jax, "device_put_replicated"):  # (the one change Brax's PPO needs on jax 0.10)
        jax.device_put_replicated = replicate
    from brax import envs
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from flax import linen

    marks: list[tuple[int, dict]] = []
    network = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=HIDDEN,
        value_hidden_layer_sizes=HIDDEN,
        activation=linen.tanh,
    )
    start = time.perf_counter()
    ppo.train(
        environment=envs.get_environment(ENV, backend=BACKEND),
        num_timesteps=steps,
        num_evals=scale["evals"],
        reward_scaling=10,
        episode_length=1000,
        normalize_observations=True,
        action_repeat=1,
        unroll_length=scale["unroll"],
        num_minibatches=scale["num_minibatches"],
        num_updates_per_batch=scale["epochs"],
        discounting=0.97,
        learning_rate=3e-4,
        entropy_cost=1e-2,
        num_envs=scale["num_envs"],
        batch_size=scale["batch_size"],
        num_eval_envs=scale["eval_episodes"],
        network_factory=network,
        seed=seed,
        progress_fn=lambda step, metrics: marks.append((int(step), {k: float(v) for k, v in metrics.items()})),
    )
    wall = time.perf_counter() - start
    epochs = [m for step, m in marks if "training/walltime" in m]
    train_s = epochs[-1]["training/walltime"]
    steps_done = marks[-1][0]
    after_first = steps_done - marks[1][0]  # (marks[0] is the eval at step 0, marks[1] after the first epoch)
    return {
        "wall_s": wall,
        "train_s": train_s,
        "steps": steps_done,
        "sps_with_compile": steps_done / train_s,
        "sps_without_compile": after_first / (train_s - epochs[0]["training/walltime"]),
        "eval_return": marks[-1][1]["eval/episode_reward"],
    }


def one(args) -> None:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.which == "ppox":
        out = run_ppox(args.steps, args.seed, SCALES[args.scale], args.log_std_init)
    else:
        out = run_brax(args.steps, args.seed, SCALES[args.scale])
    print("RESULT " + json.dumps(out), flush=True)


def measure(which: str, steps: int, seed: int, scale: str, log_std_init: float | None = None) -> dict:
    cmd = [sys.executable, __file__, "one", which, "--steps", str(steps), "--seed", str(seed), "--scale", scale]
    cmd += [] if log_std_init is None or which != "ppox" else ["--log-std-init", str(log_std_init)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        return {"which": which, "seed": seed, "error": done.stderr[-2000:]}
    load = os.getloadavg()[0]
    return {
        "which": which,
        "seed": seed,
        "process_s": time.perf_counter() - started,
        "load1": load,
        **json.loads(lines[-1][len("RESULT ") :]),
    }


def summary(runs: list[dict]) -> dict:
    out: dict = {}
    for which in ("ppox", "brax"):
        ok = [r for r in runs if r["which"] == which and "error" not in r]
        if ok:
            out[which] = {
                key: statistics.median(r[key] for r in ok)
                for key in ("wall_s", "sps_with_compile", "sps_without_compile", "eval_return")
            }
            out[which]["runs"] = len(ok)
    if "ppox" in out and "brax" in out:
        for key in ("sps_with_compile", "sps_without_compile"):
            out[f"ratio_{key}"] = out["ppox"][key] / out["brax"][key]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", choices=("one",))
    parser.add_argument("impl", nargs="?", choices=("ppox", "brax"))
    parser.add_argument("--scale", choices=tuple(SCALES), default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="default: 8 updates per Brax training epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--impls", default="brax,ppox", help="which to run, alternating: brax,ppox or one of them")
    parser.add_argument("--log-std-init", type=float, default=None, help="ppox's initial log std (default 0)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "brax_ant_cpu.json"))
    args = parser.parse_args()
    scale = SCALES[args.scale]
    args.steps = args.steps or steps_per_update(scale) * (scale["evals"] - 1) * 8
    if args.which == "one":
        args.which = args.impl
        return one(args)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    record = {
        "log_std_init": args.log_std_init,
        "env": f"brax/{ENV}/{BACKEND}",
        "steps": args.steps,
        "scale": scale,
        "hidden": HIDDEN,
        "uptime_start": uptime,
        "cpus": os.cpu_count(),
        "command": "python benchmarks/brax_side_by_side.py " + " ".join(sys.argv[1:]),
        "runs": [],
    }
    for repeat in range(args.repeats):
        order = ("brax", "ppox") if repeat % 2 == 0 else ("ppox", "brax")
        for which in [w for w in order if w in args.impls.split(",")]:
            record["runs"].append(measure(which, args.steps, args.seed + repeat, args.scale, args.log_std_init))
            record["summary"] = summary(record["runs"])
            record["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
            Path(args.out).write_text(json.dumps(record, indent=2))
            print(json.dumps(record["runs"][-1]), flush=True)
    print(json.dumps(record["summary"], indent=2))


if __name__ == "__main__":
    main()
