"""``ppox.train``: pick the driver, run it with progress and logging, save the result."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppox.checkpoint import save_policy
from ppox.config import Config
from ppox.envs import EnvSpec
from ppox.logging import METRICS, RunLog, make_run_path
from ppox.policy import POLICY_FILE, Policy

PROGRESS_CHUNKS = 20  # the run is executed in about this many jitted chunks


@dataclasses.dataclass
class TrainResult:
    """What a run produced. ``metrics[name]`` is a NumPy array [seeds, num_updates]."""

    config: Config
    spec: EnvSpec
    params: Any  # seed-stacked parameter pytree (leading axis = seed)
    obs_stats: Any  # seed-stacked RunningMeanStd
    metrics: dict[str, np.ndarray]
    wall_time: float  # seconds, compilation included
    run_path: Path | None

    def final_return(self, fraction: float = 0.1) -> np.ndarray:
        """Per seed: mean return of the episodes finished in the last ``fraction`` of updates."""
        return final_return(self.metrics, fraction)

    def policy(self, seed_index: int = 0) -> Policy:
        pick = lambda x: x[seed_index]  # noqa: E731
        return Policy(self.config, self.spec, jax.tree_util.tree_map(pick, self.params),
                      jax.tree_util.tree_map(pick, self.obs_stats))


def final_return(metrics: dict[str, np.ndarray], fraction: float = 0.1) -> np.ndarray:
    """Per seed: episode-weighted mean return over the last ``fraction`` of the updates."""
    returns, counts = metrics["episode_return"], metrics["episode_count"].astype(np.float64)
    tail = max(1, int(round(returns.shape[1] * fraction)))
    r, c = np.nan_to_num(returns[:, -tail:].astype(np.float64)), counts[:, -tail:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (r * c).sum(axis=1) / c.sum(axis=1)


def train(config: Config | None = None, *, env: Any = None, **overrides) -> TrainResult:
    """Train PPO as ``config`` says (default: ``Config.preset(env)`` with ``overrides``).

    ``env`` may be an id (the same as ``env=`` in the config), or a Gymnasium env instance or a
    function returning a new env: those train on the host driver, and ``config.env`` only names the run.
    """
    if isinstance(env, str):
        overrides, env = {**overrides, "env": env}, None
    if config is None:
        config = Config.preset(**overrides)
    elif overrides:
        config = config.replace(**overrides)
    if choose_driver(config, env) == "host":
        return _train_host(config, env if env is not None else config.env)
    run_path = make_run_path(config) if config.save else None
    start = time.perf_counter()
    fused, init, run_chunk, chunk = compiled_driver(graph_config(config))
    keys = jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(config.seeds)])
    runner = init(keys)

    log = RunLog(config, run_path)
    sizes = [min(chunk, config.num_updates - first) for first in range(0, config.num_updates, chunk)]
    chunks = []
    try:
        # Chunk i+1 is dispatched before chunk i's metrics are fetched, so the device never waits on the host.
        runner, pending = run_chunk(runner, sizes[0])
        tick = time.perf_counter()
        for i, n in enumerate(sizes):
            if i + 1 < len(sizes):
                runner, upcoming = run_chunk(runner, sizes[i + 1])
            metrics = {k: np.asarray(v)[:, :n] for k, v in jax.device_get(pending).items()}
            now = time.perf_counter()
            log.write(metrics, sum(sizes[:i]), n * config.batch_size / (now - tick))
            tick = now
            chunks.append(metrics)
            if i + 1 < len(sizes):
                pending = upcoming
    finally:
        log.close()
    wall = time.perf_counter() - start
    metrics = {k: np.concatenate([c[k] for c in chunks], axis=1) for k in METRICS}
    params, obs_stats = jax.device_get((runner.params, runner.obs_stats))
    return _finish(TrainResult(config, fused.spec, params, obs_stats, metrics, wall, run_path), log)


def _train_host(config: Config, env) -> TrainResult:
    from ppox.drivers.host import train_host
    from ppox.envs.gym_envs import make_vector_env, spec_from_spaces

    start = time.perf_counter()
    venv = make_vector_env(env, config.num_envs, config.vec)  # bad envs and spaces fail here, before any output
    try:
        spec_from_spaces(venv.single_observation_space, venv.single_action_space)
        run_path = make_run_path(config) if config.save else None
        log = RunLog(config, run_path)
        try:
            spec, params, obs_stats, metrics = train_host(config, venv, log)
        finally:
            log.close()
    finally:
        venv.close()
    return _finish(TrainResult(config, spec, params, obs_stats, metrics, time.perf_counter() - start, run_path), log)


def _finish(result: TrainResult, log: RunLog) -> TrainResult:
    """Save the policy and the summary into the run folder (if any)."""
    if result.run_path is not None:
        save_policy(result.run_path / POLICY_FILE, result.params, dataclasses.asdict(result.obs_stats),
                    dataclasses.asdict(result.config), result.spec.to_dict())
        log.write_summary(summary(result))
    return result


def graph_config(config: Config) -> Config:
    """The config with the fields that do not change the compiled program set to fixed values."""
    return config.replace(seed=0, run_dir="runs", run_name=None, save=False, tensorboard=False, progress=False)


@functools.lru_cache(maxsize=8)
def compiled_driver(config: Config):
    """(fused parts, jitted vmapped init, jitted vmapped chunk runner, chunk size), cached per program.

    Runs that differ only in seed or output settings reuse the compiled functions.
    """
    from ppox.drivers.fused import build, make_chunk_runner

    fused = build(config)
    chunk = max(1, math.ceil(config.num_updates / PROGRESS_CHUNKS))
    run = make_chunk_runner(fused, chunk)
    if config.seeds == 1:  # no vmap for one seed: a smaller program, faster to trace and compile
        return fused, jax.jit(lambda keys: _add_seed_axis(fused.init(keys[0]))), jax.jit(
            lambda runner, n: _add_seed_axis(run(_drop_seed_axis(runner), n)), donate_argnums=0), chunk
    return fused, jax.jit(jax.vmap(fused.init)), jax.jit(jax.vmap(run, in_axes=(0, None)), donate_argnums=0), chunk


def _add_seed_axis(tree):
    return jax.tree_util.tree_map(lambda x: x[None], tree)


def _drop_seed_axis(tree):
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def choose_driver(config: Config, env: Any = None) -> str:
    """"fused" for a JAX-native env id (unless --driver host), "host" for everything else."""
    from ppox.config import ConfigError
    from ppox.envs import is_jax_env

    if env is not None:
        if config.driver == "fused":
            raise ConfigError("an env object or factory runs on the host driver; drop driver='fused'")
        return "host"
    if config.driver == "host" or not is_jax_env(config.env):
        return "host"
    return "fused"


def summary(result: TrainResult) -> dict:
    finals = result.final_return()
    config = result.config
    return {
        "env": config.env,
        "seeds": config.seeds,
        "total_timesteps": config.num_updates * config.batch_size,
        "wall_time_s": round(result.wall_time, 3),
        "steps_per_second": round(config.num_updates * config.batch_size * config.seeds / result.wall_time, 1),
        "final_return_per_seed": [round(float(x), 3) for x in finals],
        "final_return_mean": round(float(np.nanmean(finals)), 3),
        "run_path": None if result.run_path is None else str(result.run_path),
    }
