"""ppox (host driver, --memory lstm, velocities hidden with --hide-obs 1 3) on CartPole-v1, the hyperparameters
of benchmarks/recurrent.py's TASK. Prints one JSON line; run with ppox's .venv (benchmarks/recurrent.py starts it)."""

from __future__ import annotations

import argparse
import json
import time

from recurrent import TASK


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import ppox

    config = ppox.Config(env="CartPole-v1", driver="host", hide_obs=(1, 3), memory="lstm", seed=args.seed,
                         save=False, progress=False, tensorboard=False, vf_clip_coef=None, **TASK)
    start = time.perf_counter()
    result = ppox.train(config)
    wall = time.perf_counter() - start
    steps = config.num_updates * config.batch_size
    print(json.dumps({"library": "ppox (host, LSTM)", "seed": args.seed, "wall_s": wall, "steps_per_s": steps / wall,
                      "final_return": float(result.final_return()[0])}))


if __name__ == "__main__":
    main()
