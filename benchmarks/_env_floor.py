"""The env floor: how fast the bare Gymnasium env steps with random actions, no learning at all.

Run with the ppox virtualenv (.venv/bin/python: the Gymnasium and MuJoCo that ppox's host driver
steps). Prints one JSON line on stdout.

  --mode vector  Gymnasium's own vector env: ``gymnasium.vector.SyncVectorEnv`` of ``--num-envs``
                 envs in SAME_STEP autoreset mode (the semantics ppox's host driver uses), one
                 batched ``venv.action_space.sample()`` + ``venv.step(actions)`` per vector step.
  --mode loop    a plain Python loop over ``--num-envs`` single envs: per env and step
                 ``env.action_space.sample()``, ``env.step(a)``, ``env.reset()`` where an episode
                 ended (what ppox's own ``SyncEnvs`` does, without stacking the observations).

Envs are made as ppox makes them: ``gymnasium.make(id, disable_env_checker=True)``. The timer
covers ``--steps`` env steps (rounded down to whole vector steps) after 100 untimed warm-up
vector steps; action sampling and resets are inside it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from importlib.metadata import version

WARMUP = 100  # vector steps before the timer starts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--steps", type=int, default=200_000, help="env steps to time (over all envs)")
    p.add_argument("--mode", choices=("vector", "loop"), default="vector")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import gymnasium as gym

    n = args.num_envs
    vector_steps = max(1, args.steps // n)
    make = functools.partial(gym.make, args.env, disable_env_checker=True)

    if args.mode == "vector":
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        venv = SyncVectorEnv([make] * n, autoreset_mode=AutoresetMode.SAME_STEP)
        venv.reset(seed=args.seed)
        venv.action_space.seed(args.seed)
        sample, step = venv.action_space.sample, venv.step
        for _ in range(WARMUP):
            step(sample())
        t0 = time.perf_counter()
        for _ in range(vector_steps):
            step(sample())
        wall = time.perf_counter() - t0
        venv.close()
    else:
        envs = [make() for _ in range(n)]
        for i, env in enumerate(envs):
            env.reset(seed=args.seed + i)
            env.action_space.seed(args.seed + i)
        pairs = [(env, env.action_space.sample, env.step, env.reset) for env in envs]

        def run(count):
            for _ in range(count):
                for _env, sample, step, reset in pairs:
                    _, _, terminated, truncated, _ = step(sample())
                    if terminated or truncated:
                        reset()

        run(WARMUP)
        t0 = time.perf_counter()
        run(vector_steps)
        wall = time.perf_counter() - t0
        for env in envs:
            env.close()

    steps = vector_steps * n
    print(
        json.dumps(
            {
                "library": f"floor-{args.mode}",
                "env": args.env,
                "mode": args.mode,
                "num_envs": n,
                "wall_s": wall,
                "steps": steps,
                "steps_per_s": steps / wall,
                "seed": args.seed,
                "versions": {"gymnasium": gym.__version__,
                             **({"mujoco": version("mujoco")} if "HalfCheetah" in args.env else {})},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
