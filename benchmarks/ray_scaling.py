"""Ray rollout scaling on the host driver: collection throughput with 1 and 2 workers, and learning.

    pip install -e ".[mujoco,ray]"
    .venv/bin/python benchmarks/ray_scaling.py [--collects 6] [--train-steps 300000]

1. Collection: a local Ray cluster (num_cpus=2); for W = 1 and 2 workers with one HalfCheetah-v5
   env each, time --collects rollouts of 2048 steps per env (the preset's num_steps) with fixed
   parameters, after one untimed warm-up rollout; env steps per second of collection.
2. Learning: the HalfCheetah-v5 preset with 2 envs for --train-steps, in one process and with 2 Ray
   workers (one env each), same seed; final return and wall time of each.
Writes benchmarks/results/ray_scaling.json. A report, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "ray_scaling.json"


def collection_rate(workers: int, collects: int) -> float:
    import jax

    import ppox
    from ppox.drivers.host import build_learner
    from ppox.drivers.ray_rollouts import RayRollouts
    from ppox.envs.gym_envs import make_vector_env, spec_from_spaces
    from ppox.config.config import static_config

    config = ppox.Config.preset("HalfCheetah-v5", num_envs=workers, ray="local", workers=workers)
    probe = make_vector_env("HalfCheetah-v5", 1, "sync")
    spec = spec_from_spaces(probe.single_observation_space, probe.single_action_space)
    probe.close()
    _, init, _ = build_learner(static_config(config), spec)
    source = RayRollouts(config, spec, "HalfCheetah-v5")
    learner = init(0, source.first_obs())
    params, obs_stats = learner.params, learner.obs_stats
    params, obs_stats = jax.device_get((params, obs_stats))
    source.collect(params, obs_stats)  # warm-up: worker start, first calls
    start = time.perf_counter()
    for _ in range(collects):
        source.collect(params, obs_stats)
    elapsed = time.perf_counter() - start
    source.close()
    return collects * config.num_steps * workers / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collects", type=int, default=6)
    parser.add_argument("--train-steps", type=int, default=300_000)
    args = parser.parse_args()

    import ray

    import ppox

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rates = {w: collection_rate(w, args.collects) for w in (1, 2)}
    print(f"collection, HalfCheetah-v5, one env per worker: 1 worker {rates[1]:,.0f} steps/s, "
          f"2 workers {rates[2]:,.0f} steps/s ({rates[2] / rates[1]:.2f}x)", flush=True)

    learning = {}
    for name, extra in (("one process", {}), ("ray, 2 workers", {"ray": "local", "workers": 2})):
        config = ppox.Config.preset("HalfCheetah-v5", num_envs=2, total_timesteps=args.train_steps, save=False,
                                    progress=False, **extra)
        start = time.perf_counter()
        result = ppox.train(config)
        wall = time.perf_counter() - start
        learning[name] = {"final_return": float(result.final_return()[0]), "wall_s": wall,
                          "steps_per_s": config.num_updates * config.batch_size / wall,
                          "return_curve": [None if not np.isfinite(x) else round(float(x), 1)
                                           for x in result.metrics["episode_return"][0]]}
        print(f"learning, {name}: final return {learning[name]['final_return']:.1f}, {wall:.0f} s "
              f"({learning[name]['steps_per_s']:,.0f} steps/s)", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"collection_steps_per_s": rates, "speedup": rates[2] / rates[1],
                               "learning": learning, "train_steps": args.train_steps}, indent=2))
    print(f"written: {OUT}")


if __name__ == "__main__":
    main()
