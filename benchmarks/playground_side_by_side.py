"""ppox's fused driver against Playground's own trainer (brax.training.agents.ppo.train with Playground's Brax
wrapper and PPO config) on MuJoCo Playground's CartpoleBalance, side by side.

Both train playground/CartpoleBalance (MJX's JAX implementation, 1000-step episodes) with Playground's published
PPO config for the suite (dm_control_suite_params.brax_ppo_config: unroll 30, 16 epochs, lr 1e-3, entropy 1e-2,
discount 0.995, reward scaling 10, observation normalisation), scaled to 2 CPU cores: 64 envs, batch 64 x 8
minibatches (15,360 env steps per update; ppox: 64 envs x 240 steps, 8 minibatches). The networks are the same
sizes (Brax's policy and value nets set to 4 x 32 tanh, ppox's hidden_sizes). Each measurement is a fresh process
(each pays its compilation), ppox and Playground's trainer alternating, REPEATS of each.

  python benchmarks/playground_side_by_side.py [--steps N] [--repeats R] [--out FILE]
  (default: benchmarks/results/playground_cartpole_cpu.json)

Reported per run as in benchmarks/brax_side_by_side.py (whose timing, summary and jax 0.10 shim this reuses):
steps/s with and without compilation, and the final evaluation return over 16 stochastic 1000-step episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from brax_side_by_side import HIDDEN, replicate, summary

NAME = "CartpoleBalance"
SCALE = {"num_envs": 64, "batch_size": 64, "num_minibatches": 8, "unroll": 30, "evals": 3, "eval_episodes": 16}


def playground_config():
    from mujoco_playground.config import dm_control_suite_params

    return dm_control_suite_params.brax_ppo_config(NAME)


def steps_per_update() -> int:
    return SCALE["batch_size"] * SCALE["num_minibatches"] * SCALE["unroll"]


def run_ppox(steps: int, seed: int) -> dict:
    import numpy as np

    import ppox

    rl = playground_config()
    config = ppox.Config.preset(
        f"playground/{NAME}",
        num_envs=SCALE["num_envs"],
        num_steps=steps_per_update() // SCALE["num_envs"],
        num_minibatches=SCALE["num_minibatches"],
        update_epochs=rl.num_updates_per_batch,
        hidden_sizes=HIDDEN,
        total_timesteps=steps,
        seed=seed,
        save=False,
        progress=False,
        checkpoint_every=0,
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
    returns = ppox.evaluate(result.policy(), episodes=SCALE["eval_episodes"], deterministic=False, seed=seed)
    return {
        "wall_s": wall,
        "steps": int(config.num_updates * config.batch_size),
        "sps_with_compile": config.num_updates * config.batch_size / wall,
        "sps_without_compile": rate,
        "eval_return": float(np.mean(returns)),
    }


def run_playground(steps: int, seed: int) -> dict:
    import functools

    import jax

    if not hasattr(jax, "device_put_replicated"):  # (Brax 0.14.2's ppo.train still calls it; jax 0.10 removed it)
        jax.device_put_replicated = replicate
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from flax import linen
    from mujoco_playground import registry, wrapper

    rl = playground_config()
    env = registry.load(NAME, config_overrides={"impl": "jax"})
    network = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=HIDDEN,
        value_hidden_layer_sizes=HIDDEN,
        activation=linen.tanh,
    )
    marks: list[tuple[int, dict]] = []
    start = time.perf_counter()
    ppo.train(
        environment=env,
        wrap_env_fn=wrapper.wrap_for_brax_training,
        num_timesteps=steps,
        num_evals=SCALE["evals"],
        reward_scaling=rl.reward_scaling,
        episode_length=rl.episode_length,
        normalize_observations=rl.normalize_observations,
        action_repeat=rl.action_repeat,
        unroll_length=SCALE["unroll"],
        num_minibatches=SCALE["num_minibatches"],
        num_updates_per_batch=rl.num_updates_per_batch,
        discounting=rl.discounting,
        learning_rate=rl.learning_rate,
        entropy_cost=rl.entropy_cost,
        num_envs=SCALE["num_envs"],
        batch_size=SCALE["batch_size"],
        num_eval_envs=SCALE["eval_episodes"],
        network_factory=network,
        seed=seed,
        progress_fn=lambda step, metrics: marks.append((int(step), {k: float(v) for k, v in metrics.items()})),
    )
    wall = time.perf_counter() - start
    epochs = [m for step, m in marks if "training/walltime" in m]
    train_s = epochs[-1]["training/walltime"]
    steps_done = marks[-1][0]
    return {
        "wall_s": wall,
        "train_s": train_s,
        "steps": steps_done,
        "sps_with_compile": steps_done / train_s,
        "sps_without_compile": (steps_done - marks[1][0]) / (train_s - epochs[0]["training/walltime"]),
        "eval_return": marks[-1][1]["eval/episode_reward"],
    }


def measure(which: str, steps: int, seed: int) -> dict:
    cmd = [sys.executable, __file__, "one", which, "--steps", str(steps), "--seed", str(seed)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        return {"which": which, "seed": seed, "error": done.stderr[-2000:]}
    out = json.loads(lines[-1][len("RESULT ") :])
    elapsed = time.perf_counter() - started
    return {"which": which, "seed": seed, "process_s": elapsed, "load1": os.getloadavg()[0], **out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", choices=("one",))
    parser.add_argument("impl", nargs="?", choices=("ppox", "playground"))
    parser.add_argument("--steps", type=int, default=steps_per_update() * 8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "playground_cartpole_cpu.json"))
    args = parser.parse_args()
    if args.which == "one":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        out = run_ppox(args.steps, args.seed) if args.impl == "ppox" else run_playground(args.steps, args.seed)
        print("RESULT " + json.dumps(out), flush=True)
        return
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    record: dict = {"env": f"playground/{NAME}", "steps": args.steps, "scale": SCALE, "hidden": HIDDEN}
    record.update(uptime_start=uptime(), cpus=os.cpu_count(), runs=[])
    record["command"] = "python benchmarks/playground_side_by_side.py " + " ".join(sys.argv[1:])
    for repeat in range(args.repeats):
        order = ("playground", "ppox") if repeat % 2 == 0 else ("ppox", "playground")
        for which in order:
            record["runs"].append(measure(which, args.steps, args.seed + repeat))
            runs = [dict(r, which="brax" if r["which"] == "playground" else r["which"]) for r in record["runs"]]
            record["summary"] = summary(runs)  # ("brax": Playground's trainer, Brax's PPO)
            record["uptime_end"] = uptime()
            Path(args.out).write_text(json.dumps(record, indent=2))
            print(json.dumps(record["runs"][-1]), flush=True)
    print(json.dumps(record["summary"], indent=2))


if __name__ == "__main__":
    main()
