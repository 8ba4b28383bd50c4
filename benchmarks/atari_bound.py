"""The arithmetic floor of an Atari update cycle on this machine: how fast could any PPO go here?

    .venv/bin/python benchmarks/atari_bound.py [--sb3 415]   # on an idle machine, about a minute

An update cycle of CleanRL's Atari settings (8 envs x 128 steps, 4 epochs x 4 minibatches of 256 frames) does a
fixed amount of arithmetic whatever library runs it: one forward pass per collected frame (acting) and one
forward + backward pass per frame and epoch (the gradient steps). This script counts those floating-point
operations with XLA's own cost analysis of the preset's network (the Nature CNN, 512 units, shared by actor
and critic), by hand from the layer shapes as a check, and measures this machine's float32 matrix-product rate
(a large square product, XLA and NumPy, the best case for arithmetic on all cores) and the CPU time of 1,024
random-action steps of ale-py's vector env. With every core busy all the time, the floor per cycle is

    t_min = FLOP per cycle / best matrix-product rate + env CPU seconds per cycle / cores,

so no implementation can pass 1,024 / t_min steps/s here; ``--sb3`` (SB3's steady steps/s from atari.py) turns
that into the best possible ratio against SB3. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

NUM_ENVS, NUM_STEPS, EPOCHS, MINIBATCH = 8, 128, 4, 256
IMAGE = (84, 84, 4)
LAYERS = [(32, 8, 4), (64, 4, 2), (64, 3, 1)]  # Nature CNN: (features, kernel, stride)


def hand_count(actions: int) -> tuple[float, float]:
    """(forward, forward + backward) FLOP per frame from the layer shapes (a multiply-add is 2 FLOP; the
    backward pass costs two products per layer, the input gradient of the first layer excepted)."""
    size, channels, macs = IMAGE[0], IMAGE[2], []
    for features, kernel, stride in LAYERS:
        size = (size - kernel) // stride + 1
        macs.append(size * size * features * kernel * kernel * channels)
        channels = features
    macs += [size * size * channels * 512, 512 * (actions + 1)]
    first = macs[0]
    forward = 2.0 * sum(macs)
    return forward, forward + 2.0 * (2 * sum(macs) - first)


def xla_count(actions: int) -> tuple[float, float]:
    """(forward, forward + backward) FLOP per frame by XLA's cost analysis of ppox's preset network."""
    import jax
    import jax.numpy as jnp

    from ppox.agent.networks import ActorCritic

    net = ActorCritic("discrete", (actions,), obs_ndim=3, hidden_sizes=(512,), activation="relu",
                      shared_trunk=True, cnn=True)
    frames = jnp.zeros((MINIBATCH, *IMAGE), jnp.uint8)
    params = net.init(jax.random.PRNGKey(0), frames[:1])

    def forward(p, x):
        dist, value = net.apply(p, x)
        return dist.logits.sum() + value.sum()

    def flops(fn, *args):
        cost = jax.jit(fn).lower(*args).compile().cost_analysis()
        return float((cost[0] if isinstance(cost, list) else cost)["flops"]) / MINIBATCH

    return flops(forward, params, frames), flops(jax.grad(forward), params, frames)


def matmul_rate(n: int = 2048, repeats: int = 7) -> dict:
    """Best float32 GFLOP/s of an n x n product, XLA and NumPy (median of ``repeats``)."""
    import jax
    import jax.numpy as jnp

    rates = {}
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    product = jax.jit(jnp.matmul)
    x = jnp.asarray(a)
    for name, run in (("xla", lambda: product(x, x).block_until_ready()), ("numpy", lambda: a @ a)):
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        rates[name] = 2 * n**3 / np.median(times) / 1e9
    return rates


def env_cpu_seconds(steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``steps`` random-action steps of the preset's vector env (ale-py, 8 envs, all its
    threads' CPU time included)."""
    from ppox.envs.atari import make_atari_envs

    games = make_atari_envs("BreakoutNoFrameskip-v4", NUM_ENVS, "ale")
    games.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        games.step(rng.integers(0, 4, NUM_ENVS))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps // NUM_ENVS):
        games.step(rng.integers(0, 4, NUM_ENVS))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    games.close()
    return wall, cpu


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--actions", type=int, default=4, help="the game's action count (Breakout: 4)")
    p.add_argument("--sb3", type=float, default=None, help="SB3's steady steps/s from atari.py")
    args = p.parse_args()
    steps = NUM_ENVS * NUM_STEPS
    hand_fwd, hand_train = hand_count(args.actions)
    xla_fwd, xla_train = xla_count(args.actions)
    cycle = steps * xla_fwd + EPOCHS * steps * xla_train
    print(f"FLOP per frame, forward: XLA {xla_fwd / 1e6:.1f}M, by hand {hand_fwd / 1e6:.1f}M; forward + backward: "
          f"XLA {xla_train / 1e6:.1f}M, by hand {hand_train / 1e6:.1f}M")
    print(f"per gradient step ({MINIBATCH} frames): {MINIBATCH * xla_train / 1e9:.1f} GFLOP; per cycle of {steps} "
          f"steps (acting + {EPOCHS} epochs): {cycle / 1e9:.0f} GFLOP")
    rates = matmul_rate()
    best = max(rates.values())
    print("float32 2048^3 product: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
    env_wall, env_cpu = env_cpu_seconds(steps)
    cores = len(os.sched_getaffinity(0))
    arithmetic = cycle / (best * 1e9)
    floor = arithmetic + env_cpu / cores
    print(f"env alone, {steps} random steps: {env_wall:.2f} s wall, {env_cpu:.2f} s CPU ({cores} cores)")
    print(f"floor per cycle: {arithmetic:.2f} s arithmetic at {best:.0f} GFLOP/s + {env_cpu / cores:.2f} s env "
          f"= {floor:.2f} s: at most {steps / floor:.0f} steps/s ({steps / (arithmetic + env_wall):.0f} with the env "
          "not overlapped)")
    if args.sb3:
        print(f"against SB3's {args.sb3:.0f} steps/s: at most {steps / floor / args.sb3:.2f}x "
              f"({steps / (arithmetic + env_wall) / args.sb3:.2f}x not overlapped); SB3's arithmetic runs at about "
              f"{cycle / 1e9 / (steps / args.sb3 - env_wall):.0f} GFLOP/s")


if __name__ == "__main__":
    main()
