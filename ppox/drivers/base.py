"""The driver protocol: what the run loop needs from a way of running PPO.

A driver knows its environment, its compiled program and its training state; it knows nothing of
files, signals, progress bars or when to checkpoint (that is ``ppox.run.loop``). The loop calls::

    state = driver.init()                       # or driver.restore(driver.init(), checkpoint)
    state, pending = driver.run(state, n)       # n more updates (may return before they finish)
    metrics = driver.fetch(pending, n)          # name -> [seeds, n] NumPy arrays, waits for them
    arrays, meta = driver.checkpoint_state(state)
    params, obs_stats = driver.policies(state)  # seed-stacked, in host memory
    driver.close()

An env driver (``EnvDriver``: fused, host) also puts a policy into a state, for ``--init-from``::

    state = driver.with_policies(driver.init(), params, obs_stats)
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import numpy as np

from ppox.config.config import Config
from ppox.config.memory import check_memory_need, machine_memory
from ppox.storage.checkpoint import Checkpoint
from ppox.storage.runfolder import AnyRunConfig


class Driver(Protocol):
    name: str  # "fused" or "host": recorded in checkpoints, chooses the driver on resume
    spec: Any  # the EnvSpec (a language model's LMSpec)
    metric_names: tuple[str, ...]  # what fetch returns: METRIC_NAMES, plus driver extras
    dispatch_ahead: bool  # run() returns before the work is done, so the next chunk can be queued
    compiled_chunks: bool  # run() is one compiled program for up to max_chunk updates (else one update at a time)
    eval_env: Any  # what evaluation episodes run on: None for config.env, else an env factory

    @property
    def config(self) -> AnyRunConfig:
        """The run's settings."""

    def init(self) -> Any:
        """The training state at update 0 (parameters, optimiser, env state, keys, ...)."""

    def run(self, state: Any, n: int) -> tuple[Any, Any]:
        """(state after n more updates, their pending metrics)."""

    def fetch(self, pending: Any, n: int) -> dict[str, np.ndarray]:
        """The metrics of ``run``'s n updates as NumPy arrays [seeds, n], once they are done."""

    def checkpoint_state(self, state: Any) -> tuple[Any, dict]:
        """(pytree of arrays to save, JSON-able extras for the metadata)."""

    def restore(self, state: Any, checkpoint: Checkpoint) -> Any:
        """``state`` (a fresh init) with the checkpoint's arrays and extras put back."""

    def policies(self, state: Any) -> tuple[Any, Any]:
        """(params, obs_stats), each with a leading seed axis, in host memory."""

    def close(self) -> None:
        """Release envs, workers and processes."""


class EnvDriver(Driver, Protocol):
    """A driver of an env (not a language model), whose policy is a set of parameters and observation statistics."""

    def with_policies(self, state: Any, params: Any, obs_stats: Any) -> Any:
        """``state`` with these parameters and observation statistics (seed-stacked, as ``policies`` gives them)."""


def values_like(new: Any, old: jax.Array) -> jax.Array:
    """``new``'s values in an array like ``old``: its dtype, weak type and placement, so that a program compiled
    for ``old`` takes it as it is (a committed or weakly typed array would be compiled for again)."""
    value = old.at[...].set(new)
    return jax.device_put(value, old.sharding) if old.committed else value


PROGRESS_CHUNKS = 20  # a run call does at most 1/20 of the run: the fused program is compiled for that many


def max_chunk(config: AnyRunConfig) -> int:
    """The most updates one ``run`` call may be asked for (the fused program's compiled chunk): about
    1/PROGRESS_CHUNKS of the run, rounded up to a power of two so that runs of similar lengths share it."""
    return 1 << (max(1, -(-config.num_updates // PROGRESS_CHUNKS)) - 1).bit_length()


def any_length(config: Config) -> Config:
    """``config`` with its length set to the shortest one of the same ``max_chunk``: the run's length reaches
    the compiled programs only as a traced number (``Hyper.num_updates``), so runs of every length that
    share a chunk size compile once (the key of ``compile_program`` and ``build_learner``)."""
    return config.replace(total_timesteps=max(1, (max_chunk(config) // 2) * PROGRESS_CHUNKS + 1) * config.batch_size)


def check_env_memory(config: Config, spec, obs_space=None) -> None:
    """The config's memory check (``check_memory_need``) again with this env's observations and actions, before
    the learner and the rollout buffers are made; the limit is the smaller of the machine's memory and the
    first device's (an accelerator's ``bytes_limit``, where JAX reports one)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    limits = [size for size in (machine_memory(), stats.get("bytes_limit")) if size]
    itemsize = 1 if getattr(obs_space, "dtype", None) == np.uint8 else 4  # (uint8 images stay uint8)
    check_memory_need(config, spec.obs_shape, itemsize, sum(spec.action_dims), min(limits) if limits else None)
