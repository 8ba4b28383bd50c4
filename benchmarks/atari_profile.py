"""Where an Atari update's time goes: the preset's Nature CNN on one minibatch of 256 frames, piece by piece.

    .venv/bin/python benchmarks/atari_profile.py [--repeats 7] [--trace DIR]

Each row is one jitted function, timed after its compilation (median of --repeats calls; milliseconds of wall
time and of the process's CPU time, all threads together: the steadier figure on a shared machine): each
convolution's forward and gradients on its real input shape, the dense layer, the whole network's forward and
gradient on 256 frames, Adam on the raveled parameters, one act on 8 frames, and the host driver's whole learn
on an 8 x 128 batch (16 gradient steps + the value pass). With --trace, jax.profiler writes the learn's trace
to DIR (TensorBoard's profile plugin or Perfetto read it). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

MINIBATCH = 256


def timed(fn, *args, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) milliseconds of ``fn(*args)`` after one call (compilation). The process's CPU time,
    all its threads together, is the steadier figure on a shared machine."""
    jax.block_until_ready(fn(*args))
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return 1e3 * statistics.median(walls), 1e3 * statistics.median(cpus)


def layer_rows(repeats: int) -> dict:
    """Forward and gradient of each of the Nature CNN's layers on its real input shape."""
    from ppox.agent.networks import PatchConv

    rng = np.random.default_rng(0)
    rows = {}
    shapes = [((84, 84, 4), 32, 8, 4), ((20, 20, 32), 64, 4, 2), ((9, 9, 64), 64, 3, 1)]
    for index, (shape, features, size, stride) in enumerate(shapes):
        conv = PatchConv(features, size, stride)
        if index == 0:
            x = jnp.asarray(rng.integers(0, 256, (MINIBATCH, *shape)), jnp.uint8)
        else:
            x = jnp.asarray(rng.standard_normal((MINIBATCH, *shape)), jnp.float32)
        params = conv.init(jax.random.PRNGKey(0), x[:1])
        loss = lambda p, x, conv=conv: (conv.apply(p, x) ** 2).sum()  # noqa: E731
        rows[f"conv{index + 1} forward"] = timed(jax.jit(conv.apply), params, x, repeats=repeats)
        rows[f"conv{index + 1} kernel gradient"] = timed(jax.jit(jax.grad(loss)), params, x, repeats=repeats)
        if index > 0:
            both = jax.jit(jax.grad(loss, argnums=(0, 1)))
            rows[f"conv{index + 1} kernel + input gradient"] = timed(both, params, x, repeats=repeats)
    dense_x = jnp.asarray(rng.standard_normal((MINIBATCH, 3136)), jnp.float32)
    dense = jnp.asarray(rng.standard_normal((3136, 512)), jnp.float32)
    dense_loss = lambda w, x: ((x @ w) ** 2).sum()  # noqa: E731
    rows["dense 3136x512 forward"] = timed(jax.jit(jnp.matmul), dense_x, dense, repeats=repeats)
    rows["dense 3136x512 weight + input gradient"] = timed(
        jax.jit(jax.grad(dense_loss, argnums=(0, 1))), dense, dense_x, repeats=repeats
    )
    return rows


def network_rows(repeats: int) -> dict:
    """The whole network: forward, a gradient step's gradient, Adam on the raveled parameters, one act."""
    from jax.flatten_util import ravel_pytree

    from ppox.agent.networks import ActorCritic

    net = ActorCritic("discrete", (4,), obs_ndim=3, hidden_sizes=(512,), activation="relu", shared_trunk=True, cnn=True)
    frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (MINIBATCH, 84, 84, 4)), jnp.uint8)
    params = net.init(jax.random.PRNGKey(0), frames[:1])

    def loss(p, x):
        dist, value = net.apply(p, x)
        return dist.logits.sum() + (value**2).sum()

    flat, _ = ravel_pytree(params)
    adam = optax.adam(2.5e-4, eps=1e-5)
    state = adam.init(flat)

    def adam_step(flat, state, grad):
        updates, state = adam.update(grad, state, flat)
        return optax.apply_updates(flat, updates), state

    return {
        "network forward (256 frames)": timed(jax.jit(net.apply), params, frames, repeats=repeats),
        "network forward (8 frames, one act)": timed(jax.jit(net.apply), params, frames[:8], repeats=repeats),
        "network gradient (256 frames)": timed(jax.jit(jax.grad(loss)), params, frames, repeats=repeats),
        f"Adam on {flat.size} parameters": timed(jax.jit(adam_step), flat, state, flat * 1e-3, repeats=repeats),
    }


def learn_row(repeats: int, trace: str | None) -> dict:
    """The host driver's whole learn on one collected 8 x 128 Breakout batch, and the collection's parts."""
    from ppox.config.config import Config
    from ppox.config.presets import PRESETS
    from ppox.drivers.host import HostDriver

    env_id = "BreakoutNoFrameskip-v4"
    config = Config(**{**PRESETS["ALE/Breakout-v5"], "env": env_id, "save": False, "progress": False})
    driver = HostDriver(config, env_id)
    state = driver.init()
    collector, learner = driver.source, state.learner
    collector.actor.load(learner.params, learner.obs_stats)
    start = time.perf_counter()
    rollout, *_ = collector.collect(learner.params, learner.obs_stats)
    collect_s = time.perf_counter() - start
    learn = lambda lr: driver._learn(lr, rollout, 0, driver.hyper)  # noqa: E731
    learner, metrics = learn(learner)
    jax.block_until_ready(metrics)
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        learner, metrics = learn(learner)
        jax.block_until_ready(metrics)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    if trace:
        with jax.profiler.trace(trace):
            learner, metrics = learn(learner)
            jax.block_until_ready(metrics)
    driver.close()
    return {
        "learn, 8 x 128 batch": (1e3 * statistics.median(walls), 1e3 * statistics.median(cpus)),
        "collect, 8 x 128 (env + act), once": (1e3 * collect_s, float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--trace", default=None, help="write a jax.profiler trace of one learn here")
    parser.add_argument("--skip-learn", action="store_true")
    args = parser.parse_args()
    rows = {**layer_rows(args.repeats), **network_rows(args.repeats)}
    if not args.skip_learn:
        rows.update(learn_row(max(3, args.repeats // 2), args.trace))
    print(f"{'':45s} {'wall ms':>9s} {'CPU ms':>9s}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:45s} {wall:9.1f} {cpu:9.1f}")


if __name__ == "__main__":
    main()
