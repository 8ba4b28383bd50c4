"""The fused driver: a JAX-native env, the whole update (rollout, advantages, PPO) one compiled program,
seeds vmapped, run in chunks of updates whose size the run loop chooses (one compilation for all sizes).
The traced hyperparameters are an argument, so runs that differ only in those share one compilation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppox.agent.learner import Hyper
from ppox.agent.metrics import METRIC_NAMES
from ppox.config.config import Config, static_config
from ppox.drivers.base import any_length, max_chunk, values_like
from ppox.drivers.distributed import device_mesh, runner_shardings
from ppox.drivers.fused_program import Fused, Runner, build, make_chunk_runner
from ppox.drivers.keys import key_words, seed_key
from ppox.envs.registry import uses_envpool
from ppox.errors import ConfigError
from ppox.storage.checkpoint import Checkpoint, restore_state


class Compiled(NamedTuple):
    """A fused program's jitted entry points, cached per program (runs differing only in seed or output
    settings share them)."""

    fused: Fused
    init: Callable[..., Any]  # keys [seeds, 2] -> seed-stacked Runner
    run: Callable[..., Any]  # (Runner, n, Hyper) -> (Runner, metrics [seeds, chunk]); n <= chunk updates
    chunk: int
    gather: Callable[..., Any] | None  # distributed: the env-sharded runner made whole on every process


@functools.lru_cache(maxsize=8)
def compile_program(config: Config, members: str | None = None, pool_seed: int = 0) -> Compiled:
    """``config`` should come through ``static_config``. One Hyper serves every seed. ``pool_seed`` seeds
    EnvPool's games (``--vec envpool``: the program is bound to its pool). ``members`` (a sweep):
    each member of a batch (a seed of one combination of values) has its own key and Hyper (arrays with the
    batch axis first), "vmap": vectorised over the batch; "map": one member after another inside the one
    program, each computing exactly what ``ppox train`` of its config computes."""
    fused = build(config, pool_seed)
    if fused.pool is not None and members is not None:
        raise ConfigError(
            "--vec envpool --driver fused steps one EnvPool pool, which cannot be vmapped: sweep "
            "EnvPool's Atari on the host driver"
        )
    chunk = max_chunk(config)
    run = make_chunk_runner(fused, chunk)
    init: Callable[..., Any]
    if members == "vmap":
        init, run_members = jax.vmap(fused.init), jax.vmap(run, in_axes=(0, None, 0))
    elif members == "map":
        init = functools.partial(jax.lax.map, fused.init)
        run_members = lambda runner, n, hyper: jax.lax.map(lambda rh: run(rh[0], n, rh[1]), (runner, hyper))  # noqa: E731
    if members is not None:
        return Compiled(fused, jax.jit(init), jax.jit(run_members, donate_argnums=0), chunk, None)
    if config.seeds == 1:  # no vmap for one seed: a smaller program, faster to trace and compile
        init = lambda keys: _add_seed_axis(fused.init(keys[0]))  # noqa: E731
        run_seeds = lambda runner, n, hyper: _add_seed_axis(run(_drop_seed_axis(runner), n, hyper))  # noqa: E731
    else:
        init, run_seeds = jax.vmap(fused.init), jax.vmap(run, in_axes=(0, None, None))
    if config.devices == 1:
        return Compiled(fused, jax.jit(init), jax.jit(run_seeds, donate_argnums=0), chunk, None)
    mesh = device_mesh(config.devices)
    keys = jax.ShapeDtypeStruct((config.seeds, key_words(config.prng_impl)), jnp.uint32)
    shardings = runner_shardings(jax.eval_shape(init, keys), mesh)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    gather = jax.jit(lambda r: r, out_shardings=replicated) if config.distributed else None
    return Compiled(
        fused,
        jax.jit(init, out_shardings=shardings),
        jax.jit(run_seeds, out_shardings=(shardings, replicated), donate_argnums=0),
        chunk,
        gather,
    )


class FusedDriver:
    """The driver protocol (``ppox.drivers.base``) over a compiled fused program."""

    name = "fused"
    metric_names: tuple[str, ...] = METRIC_NAMES
    dispatch_ahead = True  # run() only queues the work on the device
    compiled_chunks = True
    eval_env = None

    def __init__(self, config: Config):
        self.config = config
        pool_seed = config.seed if uses_envpool(config) else 0
        self.compiled = compile_program(any_length(static_config(config)), None, pool_seed)
        self.hyper = Hyper.from_config(config, jnp.float32)
        self.spec = self.compiled.fused.spec
        self.metric_names = self.compiled.fused.metric_names  # (with the env's own: ppox.envs.episode_metrics)
        self.chunk = self.compiled.chunk

    def init(self) -> Runner:
        keys = jnp.stack([seed_key(self.config.seed + i, self.config.prng_impl) for i in range(self.config.seeds)])
        if self.compiled.fused.pool is not None:
            self.compiled.fused.pool.reset()  # (init receives the first frames)
        return self.compiled.init(keys)

    def run(self, state: Runner, n: int):
        return self.compiled.run(state, n, self.hyper)

    def fetch(self, pending, n: int) -> dict[str, np.ndarray]:
        return {k: np.asarray(v)[:, :n] for k, v in jax.device_get(pending).items()}

    def checkpoint_state(self, state: Runner):
        """Every process joins the gather of an env-sharded state (distributed) before process 0 writes it."""
        return (self.compiled.gather(state) if self.compiled.gather is not None else state), {}

    def restore(self, state: Runner, checkpoint: Checkpoint) -> Runner:
        fresh, state = state, restore_state(checkpoint, state)
        if self.compiled.fused.pool is not None:  # a pool's games cannot outlive their process: new games
            state = state.replace(
                env_state=fresh.env_state,
                obs=fresh.obs,
                episode_return=fresh.episode_return,
                episode_length=fresh.episode_length,
            )
        if self.config.devices > 1:
            state = jax.device_put(state, runner_shardings(state, device_mesh(self.config.devices)))
        return state

    def policies(self, state: Runner):
        return jax.device_get((state.params, state.obs_stats))

    def with_policies(self, state: Runner, params, obs_stats) -> Runner:
        """``state`` with these parameters and observation statistics (seed-stacked, as ``policies`` gives them),
        each placed as the array it replaces."""
        return state.replace(
            params=jax.tree_util.tree_map(values_like, params, state.params),
            obs_stats=jax.tree_util.tree_map(values_like, obs_stats, state.obs_stats),
        )

    def close(self) -> None:
        pass


def _add_seed_axis(tree):
    return jax.tree_util.tree_map(lambda x: x[None], tree)


def _drop_seed_axis(tree):
    return jax.tree_util.tree_map(lambda x: x[0], tree)
