"""ppox PPO on CartPole-v1 with the CleanRL/PureJaxRL CartPole hyperparameters.

Run with the ppox virtualenv (.venv/bin/python). benchmarks/cartpole.py starts it as a subprocess,
like the other libraries, so that every run pays its own JIT compilation.
Prints one JSON line on stdout; everything else goes to stderr.

  wall_s          seconds of the ``ppox.train(cfg)`` call, measured around it here (compilation
                  included), the same way as for the other libraries.
  wall_s_reported ppox's own ``result.wall_time``.
  final_return    mean return of the training episodes that finished in the last tenth of the
                  updates: sum(episode_return * episode_count) / sum(episode_count) over those
                  updates, updates without a finished episode (NaN) ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

NUM_ENVS = 4
NUM_STEPS = 128


def final_return(episode_return, episode_count):
    """Count-weighted mean return over the last tenth of the updates (arrays [seeds, updates])."""
    ret = np.asarray(episode_return, dtype=np.float64)
    cnt = np.asarray(episode_count, dtype=np.float64)
    if ret.ndim == 1:
        ret, cnt = ret[None], cnt[None]
    num_updates = ret.shape[-1]
    k = max(1, num_updates // 10)
    ret, cnt = ret[..., -k:], cnt[..., -k:]
    ok = ~np.isnan(ret) & (cnt > 0)
    n = cnt[ok].sum()
    return (float((ret[ok] * cnt[ok]).sum() / n) if n > 0 else float("nan")), int(n)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-timesteps", type=int, default=500_000)
    args = p.parse_args()

    import jax
    import ppox

    cfg = ppox.Config(
        env="CartPole-v1",
        total_timesteps=args.total_timesteps,
        num_envs=NUM_ENVS,
        num_steps=NUM_STEPS,
        update_epochs=4,
        num_minibatches=4,
        learning_rate=2.5e-4,
        anneal_lr=True,
        gamma=0.99,
        gae_lambda=0.95,
        clip_coef=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        seed=args.seed,
        seeds=1,
        save=False,
        progress=False,
    )

    t0 = time.perf_counter()
    result = ppox.train(cfg)
    wall = time.perf_counter() - t0

    ret, n = final_return(result.metrics["episode_return"], result.metrics["episode_count"])
    num_updates = args.total_timesteps // (NUM_ENVS * NUM_STEPS)
    reported = getattr(result, "wall_time", None)
    print(
        json.dumps(
            {
                "library": "ppox",
                "wall_s": wall,
                "wall_s_reported": None if reported is None else float(reported),
                "final_return": ret,
                "final_episodes": n,
                "steps": num_updates * NUM_ENVS * NUM_STEPS,
                "num_updates": num_updates,
                "seed": args.seed,
                "versions": {"ppox": getattr(ppox, "__version__", "dev"), "jax": jax.__version__},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
