"""``ppox.train``: pick the driver, run it with progress and logging, save the result."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import signal
import sys
import threading
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

PROGRESS_CHUNKS = 20  # the compiled chunk is 1/20 of the run: at most this many chunks
CHUNK_SECONDS = 2.0  # once the pace is known, chunks are cut to about this long (progress, signals)


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
    interrupted: bool = False  # stopped early by SIGINT/SIGTERM; ppox.resume(run_path) continues it

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

    SIGINT (Ctrl-C) or SIGTERM finishes the work in flight, saves a checkpoint and returns the
    result so far with ``interrupted=True``; ``ppox.resume(result.run_path)`` continues the run.
    """
    if isinstance(env, str):
        overrides, env = {**overrides, "env": env}, None
    if config is None:
        config = Config.preset(**overrides)
    elif overrides:
        config = config.replace(**overrides)
    if choose_driver(config, env) == "host":
        return _train_host(config, env if env is not None else config.env)
    config = _for_this_process(config)
    return _train_fused(config, make_run_path(config) if config.save else None)


def _for_this_process(config: Config) -> Config:
    """Under --distributed, join the processes; all but process 0 train without writing (one run folder)."""
    if not config.distributed:
        return config
    init_distributed()
    return config if jax.process_index() == 0 else config.replace(save=False, progress=False)


def init_distributed() -> None:
    """jax.distributed.initialize() once: from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID
    when set, else JAX's own cluster detection (Slurm, Open MPI, ...). CPUs talk through gloo."""
    import os

    from jax._src import distributed as _distributed

    from ppox.config import ConfigError

    if _distributed.global_state.client is not None:
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if "JAX_COORDINATOR_ADDRESS" in os.environ:
            jax.distributed.initialize(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                                       num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                                       process_id=int(os.environ["JAX_PROCESS_ID"]))
        else:
            jax.distributed.initialize()
    except (RuntimeError, ValueError, KeyError) as err:
        raise ConfigError(f"--distributed: {err}. From Python, call ppox.init_distributed() first thing in the "
                          "script; outside Slurm set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
                          "JAX_PROCESS_ID in every process") from None


def _all_agree(flag: bool, distributed: bool) -> bool:
    """True if any process says so (one tiny collective per call when distributed)."""
    if not distributed:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def resume(run_path, env: Any = None) -> TrainResult:
    """Continue an interrupted run from its newest loadable checkpoint to its planned end.

    The fused driver continues exactly: the result is bit-identical to an uninterrupted run. The
    host driver restores the learner (parameters, optimiser, statistics, random state) exactly and
    starts the environments afresh (episodes in progress at the interruption are lost). ``env``: the
    env object or factory the run was started with, if it was not started from an id.
    """
    from ppox.checkpoint import CheckpointError, list_checkpoints, read_checkpoint

    run_path = Path(run_path)
    if not run_path.is_dir():
        raise CheckpointError(f"{run_path}: no such run folder")
    files = list_checkpoints(run_path)
    if not files:
        raise CheckpointError(f"{run_path}: the run has no checkpoints to resume from")
    problems = []
    for path in reversed(files):  # newest first; a damaged one falls back to the one before
        try:
            arrays, update, meta = read_checkpoint(path)
            break
        except CheckpointError as err:
            problems.append(str(err))
    else:
        raise CheckpointError("no loadable checkpoint: " + "; ".join(problems))
    for problem in problems:
        print(f"ppox: skipped a damaged checkpoint: {problem}", file=sys.stderr)
    config = Config.from_dict(meta["config"])
    if update >= config.num_updates:
        raise CheckpointError(f"{run_path}: the run already finished ({update} of {config.num_updates} updates)")
    checkpoint = (path, arrays, update, meta)
    if meta["driver"] == "host":
        return _train_host(config, env if env is not None else config.env, run_path, checkpoint)
    config = _for_this_process(config)  # distributed: every process reads the checkpoint (a shared file system)
    return _train_fused(config, run_path if config.save else None, checkpoint)


def _train_fused(config: Config, run_path: Path | None, checkpoint=None) -> TrainResult:
    from ppox.checkpoint import checkpoint_metrics, restore_state

    start = time.perf_counter()
    fused, init, run_chunk, chunk = compiled_driver(graph_config(config))
    keys = jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(config.seeds)])
    runner = init(keys)
    first, chunks, wall_before = 0, [], 0.0
    if checkpoint is not None:
        path, arrays, first, meta = checkpoint
        runner = restore_state(arrays, runner, path)
        if config.devices > 1:
            runner = jax.device_put(runner, runner_shardings(runner, device_mesh(config.devices)))
        chunks = [{k: v for k, v in checkpoint_metrics(arrays).items() if k in METRICS}]
        wall_before = meta.get("wall_time", 0.0)

    log = RunLog(config, run_path, resume_from=first if checkpoint is not None else None)
    every = _checkpoint_interval(config)
    interrupted = False
    seconds_per_update = None  # measured once the first (compiling) chunk is done

    def plan(begin: int) -> int:
        """Updates in the chunk that starts at update ``begin``: at most the compiled chunk, about
        CHUNK_SECONDS of work once the pace is known (so that a signal is answered within seconds),
        and ending exactly where a checkpoint is due."""
        n = min(chunk, config.num_updates - begin)
        if seconds_per_update is None and begin == first:
            n = min(n, max(1, chunk // 4))
        elif seconds_per_update:
            n = min(n, max(1, int(CHUNK_SECONDS / seconds_per_update)))
        if every:
            n = min(n, every - begin % every)
        return n

    def joined() -> dict[str, np.ndarray]:
        """The metrics of every update so far, [seeds, updates]."""
        return {k: np.concatenate([c[k] for c in chunks], axis=1) for k in METRICS}

    # distributed: every process joins this gather of the env-sharded state before process 0 writes it
    gather = jax.jit(lambda r: r, out_shardings=jax.sharding.NamedSharding(
        device_mesh(config.devices), jax.sharding.PartitionSpec())) if config.distributed else None

    def save(done: int) -> None:
        state = gather(runner) if gather is not None else runner
        if run_path is not None:
            seeds = [jax.tree_util.tree_map(lambda x, i=i: x[i], (state.params, state.obs_stats))
                     for i in range(config.seeds)]
            _save_checkpoint(run_path, done, state, joined(), config, fused.spec, "fused",
                             wall_before + time.perf_counter() - start, policies=seeds)

    try:
        with StopOnSignal() as stop:
            # The next chunk is dispatched before this one's metrics are fetched, so the device never waits on
            # the host; not where a checkpoint follows this chunk (its state must still exist to be saved).
            # Every update runs the same compiled body whatever the chunk sizes, so results do not depend on them.
            n = plan(first)
            runner, pending = run_chunk(runner, n)
            tick, done = time.perf_counter(), first
            while True:
                end = done + n
                checkpoint_due = bool(every) and end % every == 0
                last = end == config.num_updates
                stopping = _all_agree(stop.requested, config.distributed)  # every process takes the same path
                ahead = not (last or checkpoint_due or stopping)
                if ahead:
                    n_next = plan(end)
                    next_runner, upcoming = run_chunk(runner, n_next)
                metrics = {k: np.asarray(v)[:, :n] for k, v in jax.device_get(pending).items()}
                now = time.perf_counter()
                if done > first and not config.distributed:  # the first chunk's time includes compilation;
                    seconds_per_update = (now - tick) / n  # distributed: fixed sizes, the same in every process
                log.write(metrics, done, n * config.batch_size / (now - tick))
                tick, done = now, end
                chunks.append(metrics)
                _check_finite_metrics(metrics, done - n)
                if ahead:
                    runner, pending, n = next_runner, upcoming, n_next
                    continue
                if checkpoint_due or stopping or last:
                    save(done)
                if last:
                    break
                if stopping:
                    interrupted = True
                    break
                n = plan(done)
                runner, pending = run_chunk(runner, n)
                tick = time.perf_counter()
    finally:
        log.close()
    wall = wall_before + time.perf_counter() - start
    metrics = joined()
    params, obs_stats = jax.device_get((runner.params, runner.obs_stats))
    result = TrainResult(config, fused.spec, params, obs_stats, metrics, wall, run_path, interrupted=interrupted)
    return _finish(result, log)


def _checkpoint_interval(config: Config) -> int:
    """Updates between checkpoints (0: none but the last)."""
    return math.ceil(config.checkpoint_every / config.batch_size) if config.checkpoint_every else 0


def _save_checkpoint(run_path, done, state, metrics, config, spec, driver, wall_time, extra=None,
                     policies=None, eval_env=None):
    """Write a checkpoint; with ``config.eval_episodes``, first evaluate ``policies`` [(params, obs_stats)
    per seed], log the result to RUN/evaluations.csv and keep the best checkpoint as checkpoints/best."""
    from ppox.checkpoint import CHECKPOINT_DIR, atomic_write_bytes, save_checkpoint

    meta = {"config": json.loads(config.to_json()), "env_spec": spec.to_dict(), "driver": driver,
            "wall_time": wall_time, "global_step": done * config.batch_size, **(extra or {})}
    returns = None
    if config.eval_episodes and policies is not None:
        from ppox.evaluate import evaluate

        returns = []
        for params, obs_stats in jax.device_get(policies):
            policy = _evaluation_policy(graph_config(config), spec)
            policy.config, policy.params, policy.obs_stats = config, params, obs_stats
            returns.append(float(evaluate(policy, episodes=config.eval_episodes, seed=config.seed * 7919 + done,
                                          env=eval_env).mean()))
        meta["eval_return"] = float(np.mean(returns))
    path = save_checkpoint(run_path, done, state, metrics, meta, config.keep_checkpoints)
    if returns is not None:
        log_file = Path(run_path) / "evaluations.csv"
        new = not log_file.exists()
        with open(log_file, "a") as f:
            if new:
                f.write("update,global_step,mean_return," + ",".join(f"seed_{config.seed + i}"
                                                                       for i in range(len(returns))) + "\n")
            f.write(f"{done - 1},{done * config.batch_size},{np.mean(returns):.4f},"
                    + ",".join(f"{r:.4f}" for r in returns) + "\n")
        best = Path(run_path) / CHECKPOINT_DIR / "best.json"
        previous = json.loads(best.read_text())["eval_return"] if best.exists() else -math.inf
        if meta["eval_return"] > previous:
            atomic_write_bytes(best.with_suffix(".safetensors"), path.read_bytes())
            atomic_write_bytes(best, json.dumps({"update": done, "eval_return": meta["eval_return"]}).encode())


@functools.lru_cache(maxsize=4)
def _evaluation_policy(config: Config, spec: EnvSpec) -> Policy:
    """A Policy whose jitted act is compiled once per program; the caller sets its parameters."""
    return Policy(config, spec, None, None)


def _check_finite_metrics(metrics: dict[str, np.ndarray], first_update: int) -> None:
    """Stop on a non-finite loss (the parameters it produced are not saved; earlier checkpoints stay)."""
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl"):
        bad = ~np.isfinite(metrics[name])
        if bad.any():
            seed, j = map(int, np.argwhere(bad)[0])
            raise FloatingPointError(f"non-finite {name.replace('_', ' ')} in update {first_update + j} (seed index "
                                     f"{seed}); training stopped, the last good checkpoint is kept")


class StopOnSignal:
    """While active, SIGINT and SIGTERM ask the training loop to stop at the next safe point.

    A second signal stops at once (KeyboardInterrupt). Outside the main thread nothing is installed.
    """

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nppox: {signal.Signals(signum).name} received: finishing the work in flight and saving a "
              "checkpoint (send it again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _train_host(config: Config, env, run_path: Path | None = None, checkpoint=None) -> TrainResult:
    import gymnasium as gym

    from ppox.config import ConfigError
    from ppox.drivers.host import train_host
    from ppox.envs.gym_envs import make_vector_env, spec_from_spaces

    if isinstance(env, gym.Env) and config.eval_episodes:
        raise ConfigError("--eval-episodes needs a fresh env to evaluate on: pass a factory (a function returning a "
                          "new env) or an id instead of an env instance")
    if isinstance(env, gym.Env) and config.ray is not None:
        raise ConfigError("--ray workers make their own envs: pass an id or a factory, not an env instance")
    start = time.perf_counter()
    # bad envs and spaces fail here, before any output (on Ray, one env here only reads the spaces)
    venv = make_vector_env(env, 1 if config.ray is not None else config.num_envs, config.vec)
    try:
        spec_from_spaces(venv.single_observation_space, venv.single_action_space)
        if run_path is None and config.save:
            run_path = make_run_path(config)
        log = RunLog(config, run_path, resume_from=None if checkpoint is None else checkpoint[2])
        try:
            with StopOnSignal() as stop:
                spec, params, obs_stats, metrics, interrupted = train_host(config, venv, log, run_path, checkpoint, stop,
                                                                           env=env)
        finally:
            log.close()
    finally:
        venv.close()
    wall = time.perf_counter() - start + (0.0 if checkpoint is None else checkpoint[3].get("wall_time", 0.0))
    return _finish(TrainResult(config, spec, params, obs_stats, metrics, wall, run_path, interrupted), log)


def _finish(result: TrainResult, log: RunLog) -> TrainResult:
    """Save the policy and the summary into the run folder (if any); say how to resume an interrupted run."""
    if result.interrupted:
        where = f"ppox train --resume {result.run_path}" if result.run_path is not None else "(nothing was saved)"
        print(f"ppox: stopped after {result.metrics['episode_return'].shape[1]} of {result.config.num_updates} "
              f"updates; to continue: {where}", file=sys.stderr, flush=True)
    if result.run_path is not None:
        save_policy(result.run_path / POLICY_FILE, result.params, dataclasses.asdict(result.obs_stats),
                    dataclasses.asdict(result.config), result.spec.to_dict())
        log.write_summary(summary(result))
    return result


def graph_config(config: Config) -> Config:
    """The config with the fields that do not change the compiled program set to fixed values."""
    return config.replace(seed=0, run_dir="runs", run_name=None, save=False, tensorboard=False, progress=False,
                          checkpoint_every=0, keep_checkpoints=1, eval_episodes=0, ray=None, workers=1)
    # (distributed stays: it changes how the program is laid out)


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
        init = lambda keys: _add_seed_axis(fused.init(keys[0]))  # noqa: E731
        run_seeds = lambda runner, n: _add_seed_axis(run(_drop_seed_axis(runner), n))  # noqa: E731
    else:
        init, run_seeds = jax.vmap(fused.init), jax.vmap(run, in_axes=(0, None))
    if config.devices == 1:
        return fused, jax.jit(init), jax.jit(run_seeds, donate_argnums=0), chunk
    # Data parallel: the envs (and everything per env) are split across the devices, parameters and
    # optimiser state are replicated; XLA partitions the one program, so every device steps its share
    # of the envs and the gradients of a minibatch are summed across devices. The arithmetic is the
    # single-device run's, up to the order of floating-point sums.
    shardings = runner_shardings(jax.eval_shape(init, jax.ShapeDtypeStruct((config.seeds, 2), jnp.uint32)),
                                 device_mesh(config.devices))
    replicated = jax.sharding.NamedSharding(device_mesh(config.devices), jax.sharding.PartitionSpec())
    return (fused, jax.jit(init, out_shardings=shardings),
            jax.jit(run_seeds, out_shardings=(shardings, replicated), donate_argnums=0), chunk)


ENV_AXIS_FIELDS = ("env_state", "obs", "episode_return", "episode_length")  # Runner fields with an env axis


def device_mesh(devices: int):
    """A one-axis mesh ("envs") over the first ``devices`` devices (all processes' under jax.distributed)."""
    from ppox.config import ConfigError

    available = jax.devices()
    if devices > len(available):
        raise ConfigError(f"--devices {devices}, but JAX sees {len(available)} device(s); on a CPU, start with "
                          f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} to split it into {devices}")
    return jax.sharding.Mesh(np.array(available[:devices]), ("envs",))


def runner_shardings(runner, mesh):
    """Per leaf of a seed-stacked Runner: split along the env axis (axis 1) or replicated."""
    from jax.sharding import NamedSharding, PartitionSpec

    split, replicated = NamedSharding(mesh, PartitionSpec(None, "envs")), NamedSharding(mesh, PartitionSpec())

    def choose(path, leaf):
        names = [getattr(k, "name", getattr(k, "key", None)) for k in path]
        per_env = names[0] in ENV_AXIS_FIELDS or names[:2] == ["reward_scaler", "returns"]
        return split if per_env and leaf.ndim >= 2 else replicated

    return jax.tree_util.tree_map_with_path(choose, runner)


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
    if config.driver == "host" or config.ray is not None or not is_jax_env(config.env):
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
        "interrupted": result.interrupted,
        **({"worker_restarts": int(np.nanmax(result.metrics["worker_restarts"]))}
           if "worker_restarts" in result.metrics else {}),
        "run_path": None if result.run_path is None else str(result.run_path),
    }
