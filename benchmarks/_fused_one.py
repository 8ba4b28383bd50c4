"""One timed fused training, for benchmarks/fused_overhead.py (a fresh process per measurement: each pays its own
compilation; no compilation cache). Prints one JSON line on stdout.

  python benchmarks/_fused_one.py MODE --env ENV --steps N [--seed S] [--prng-impl IMPL]

MODE: ``train`` (``ppox.train`` with the run's defaults: run folder, checkpoints, TensorBoard, progress),
``make_train`` (``jax.jit(ppox.make_train(config))(key)``, the whole run as one scan), ``purejaxrl``
(PureJaxRL's own ``ppo.py`` from bench-envs/purejaxrl, at the same settings where it has them).
ENV: CartPole-v1 (PureJaxRL's CartPole settings, 1 seed) or Breakout-MinAtar (ppox's preset).
wall_s is the call, compilation included; cpu_s its CPU time (every thread).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
PUREJAXRL = HERE.parent / "bench-envs" / "purejaxrl"  # ppo.py, wrappers.py (fused_overhead.py puts them there)

CARTPOLE = dict(num_envs=4, num_steps=128, update_epochs=4, num_minibatches=4, learning_rate=2.5e-4,
                anneal_lr=True, gamma=0.99, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.01, vf_coef=0.5,
                max_grad_norm=0.5)


def ppox_config(env: str, steps: int, seed: int, prng_impl: str | None):
    import ppox

    if env == "CartPole-v1":
        config = ppox.Config(env=env, **CARTPOLE)
    else:
        config = ppox.Config.preset(env)
    config = config.replace(total_timesteps=steps, seed=seed, seeds=1)
    return config.replace(prng_impl=prng_impl) if prng_impl else config


def run_train(config) -> float:
    import ppox

    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        ppox.train(config.replace(run_dir=runs))
        return time.perf_counter() - start


def run_make_train(config) -> float:
    import jax

    import ppox

    impl = getattr(config, "prng_impl", "threefry2x32")
    key = jax.random.PRNGKey(config.seed) if impl == "threefry2x32" else jax.random.key(config.seed, impl=impl)
    start = time.perf_counter()
    out = jax.jit(ppox.make_train(config))(key)
    jax.block_until_ready(out)
    return time.perf_counter() - start


def purejaxrl_module():
    """PureJaxRL's ppo.py as it is, with its wrappers' Brax and navix imports stubbed (unused here) and gymnax
    1.0's six-value step given back as PureJaxRL's five (done = terminated or truncated)."""
    import gymnax

    for name in ("brax", "brax.envs", "brax.envs.wrappers", "brax.envs.wrappers.training", "navix"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["brax.envs.wrappers.training"].EpisodeWrapper = object  # type: ignore[attr-defined]
    sys.modules["brax.envs.wrappers.training"].AutoResetWrapper = object  # type: ignore[attr-defined]
    sys.modules["brax"].envs = sys.modules["brax.envs"]  # type: ignore[attr-defined]
    make = gymnax.make

    class FiveValues:
        def __init__(self, env):
            self._env = env

        def __getattr__(self, name):
            return getattr(self._env, name)

        def step(self, key, state, action, params=None):
            obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
            return obs, state, reward, terminated | truncated, info

    gymnax.make = lambda name, **kw: (lambda e: (FiveValues(e[0]), e[1]))(make(name, **kw))
    sys.path.insert(0, str(PUREJAXRL))
    import ppo  # type: ignore[import-not-found]

    return ppo


def run_purejaxrl(config) -> float:
    import jax

    ppo = purejaxrl_module()
    pj = {"LR": config.learning_rate, "NUM_ENVS": config.num_envs, "NUM_STEPS": config.num_steps,
          "TOTAL_TIMESTEPS": config.total_timesteps, "UPDATE_EPOCHS": config.update_epochs,
          "NUM_MINIBATCHES": config.num_minibatches, "GAMMA": config.gamma, "GAE_LAMBDA": config.gae_lambda,
          "CLIP_EPS": config.clip_coef, "ENT_COEF": config.ent_coef, "VF_COEF": config.vf_coef,
          "MAX_GRAD_NORM": config.max_grad_norm, "ACTIVATION": config.activation, "ENV_NAME": config.env,
          "ANNEAL_LR": config.anneal_lr, "DEBUG": False}
    start = time.perf_counter()
    out = jax.jit(ppo.make_train(pj))(jax.random.PRNGKey(config.seed))
    jax.block_until_ready(out)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("train", "make_train", "purejaxrl"))
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prng-impl", default=None)
    args = p.parse_args()
    config = ppox_config(args.env, args.steps, args.seed, args.prng_impl)
    cpu = cpu_seconds()
    wall = {"train": run_train, "make_train": run_make_train, "purejaxrl": run_purejaxrl}[args.mode](config)
    print(json.dumps({"mode": args.mode, "env": args.env, "steps": args.steps, "prng_impl": args.prng_impl,
                      "wall_s": wall, "cpu_s": cpu_seconds() - cpu}), flush=True)


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
