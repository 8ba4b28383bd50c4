"""ppox PPO on the HOST driver (a Gymnasium env stepped from Python): CartPole-v1 or HalfCheetah-v5,
hyperparameters of benchmarks/host.py's TASKS (CleanRL's).

Run with the ppox virtualenv (.venv/bin/python). benchmarks/host.py starts it as a subprocess,
like the other libraries, so that every run pays its own JIT compilation.
Prints one JSON line on stdout; everything else goes to stderr.

  config          CartPole-v1: ``ppox.Config(env="CartPole-v1", driver="host", num_envs=4,
                  num_steps=128, update_epochs=4, num_minibatches=4, learning_rate=2.5e-4, ...)``
                  (ppox's defaults, spelled out); HalfCheetah-v5: ``ppox.Config.preset(
                  "HalfCheetah-v5", driver="host", ...)``. Every field named in TASKS is checked
                  against the config; differences go to ``config_mismatch`` in the JSON (and to
                  stderr).
  wall_s          seconds of the ``ppox.train(cfg)`` call (which makes the vector env, compiles the
                  update and trains), measured around it here, the same way as for the others.
  wall_s_reported ppox's own ``result.wall_time``.
  final_return    mean return of the training episodes that finished in the last tenth of the
                  updates (see _ppox_cartpole.final_return).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version

from _ppox_cartpole import final_return
from host import TASKS

def make_config(env: str, seed: int, total_timesteps: int):
    import ppox

    common = dict(driver="host", total_timesteps=total_timesteps, seed=seed, seeds=1, save=False, progress=False)
    if env == "HalfCheetah-v5":
        return ppox.Config.preset("HalfCheetah-v5", **common)
    t = TASKS[env]
    return ppox.Config(env=env, num_envs=t["num_envs"], num_steps=t["num_steps"], update_epochs=t["update_epochs"],
                       num_minibatches=t["num_minibatches"], learning_rate=t["learning_rate"], **common)


def mismatches(cfg, task: dict) -> dict:
    out = {}
    for key, want in task.items():
        if key == "total_timesteps" or not hasattr(cfg, key):
            continue
        have = getattr(cfg, key)
        if isinstance(want, list):
            want = tuple(want)
        if have != want:
            out[key] = {"ppox": have, "task": want}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", choices=sorted(TASKS), default="CartPole-v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-timesteps", type=int, default=None,
                   help="env steps (default: the task's, 500000 CartPole / 100000 HalfCheetah)")
    args = p.parse_args()

    import gymnasium as gym
    import jax
    import ppox
    from ppox.envs.registry import driver_for

    total = args.total_timesteps or TASKS[args.env]["total_timesteps"]
    cfg = make_config(args.env, args.seed, total)
    assert driver_for(cfg.env, cfg.driver, cfg.ray) == "host", cfg.driver
    bad = mismatches(cfg, TASKS[args.env])
    if bad:
        print(f"[ppox] config differs from the benchmark's hyperparameters: {bad}", file=sys.stderr)

    t0 = time.perf_counter()
    result = ppox.train(cfg)
    wall = time.perf_counter() - t0

    ret, n = final_return(result.metrics["episode_return"], result.metrics["episode_count"])
    counts = result.metrics["episode_count"]
    print(
        json.dumps(
            {
                "library": "ppox",
                "env": args.env,
                "driver": "host",
                "wall_s": wall,
                "wall_s_reported": float(result.wall_time),
                "final_return": ret,
                "final_episodes": n,
                "episodes": int(counts[~(counts != counts)].sum()),
                "steps": cfg.num_updates * cfg.batch_size,
                "num_updates": cfg.num_updates,
                "seed": args.seed,
                "config_mismatch": {k: {s: str(v) for s, v in d.items()} for k, d in bad.items()},
                "versions": {"ppox": getattr(ppox, "__version__", "dev"), "jax": jax.__version__,
                             "gymnasium": gym.__version__,
                             **({"mujoco": version("mujoco")} if "HalfCheetah" in args.env else {})},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
