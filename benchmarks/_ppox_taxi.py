"""ppox (host driver, action masks from Taxi's info["action_mask"]) on Taxi-v4, the hyperparameters of
benchmarks/masks.py's TASK. Prints one JSON line; run with ppox's .venv (benchmarks/masks.py starts it)."""

from __future__ import annotations

import argparse
import json
import time

from masks import TASK


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--action-mask", default="auto", choices=["auto", "off"])
    args = p.parse_args()
    import numpy as np

    import ppox

    config = ppox.Config(env="Taxi-v4", driver="host", seed=args.seed, action_mask=args.action_mask, save=False,
                         progress=False, tensorboard=False, vf_clip_coef=None, **TASK)
    start = time.perf_counter()
    result = ppox.train(config)
    wall = time.perf_counter() - start
    steps = config.num_updates * config.batch_size
    print(json.dumps({"library": f"ppox (masks {args.action_mask})", "seed": args.seed, "wall_s": wall,
                      "steps_per_s": steps / wall, "final_return": float(result.final_return()[0]),
                      "illegal_actions": int(np.nansum(result.metrics.get("illegal_actions", np.zeros(1)))),
                      "curve": [float(x) for x in result.metrics["episode_return"][0]]}))


if __name__ == "__main__":
    main()
