"""Past one device: the device mesh, how a fused runner is laid out on it, and jax.distributed.

Data parallelism splits the envs (and everything per env) across the devices and replicates the
parameters and optimiser state; XLA partitions the one program, so every device steps its share of the
envs and a minibatch's gradients are summed across devices.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax._src import (
    distributed as jax_distributed,  # (the only way to ask whether initialize() already ran)
)
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppox.errors import ConfigError


def init_distributed() -> None:
    """jax.distributed.initialize() once: from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID
    when set, else JAX's own cluster detection (Slurm, Open MPI, ...). CPUs talk through gloo."""
    if jax_distributed.global_state.client is not None:
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if "JAX_COORDINATOR_ADDRESS" in os.environ:
            jax.distributed.initialize(
                coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                process_id=int(os.environ["JAX_PROCESS_ID"]),
            )
        else:
            jax.distributed.initialize()
    except (RuntimeError, ValueError, KeyError) as err:
        raise ConfigError(
            f"--distributed: {err}. From Python, call ppox.init_distributed() first thing in the "
            "script; outside Slurm set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
            "JAX_PROCESS_ID in every process"
        ) from None


def any_process(flag: bool, distributed: bool) -> bool:
    """True if this process or any other says so (one tiny collective per call when distributed), so that
    every process takes the same path."""
    if not distributed:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def device_mesh(devices: int, axis: str = "envs") -> Mesh:
    """A one-axis mesh (named ``axis``) over the first ``devices`` devices (all processes' under jax.distributed)."""
    available = jax.devices()
    if devices > len(available):
        raise ConfigError(
            f"--devices {devices}, but JAX sees {len(available)} device(s); on a CPU, start with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} to split it into {devices}"
        )
    return Mesh(np.array(available[:devices]), (axis,))


def runner_shardings(runner, mesh: Mesh):
    """Per leaf of a seed-stacked fused Runner: split along the env axis (axis 1) or replicated.

    The fields with an env axis are named here one by one: the env state, the observations, the episode
    counters, a recurrent policy's carry and episode starts, and the reward scaler's per-env returns;
    everything else is replicated."""
    split, replicated = NamedSharding(mesh, PartitionSpec(None, "envs")), NamedSharding(mesh, PartitionSpec())
    everywhere = jax.tree_util.tree_map(lambda _: replicated, runner)

    def per_env(tree):
        return jax.tree_util.tree_map(lambda leaf: split if leaf.ndim >= 2 else replicated, tree)

    return everywhere.replace(
        env_state=per_env(runner.env_state),
        obs=per_env(runner.obs),
        episode_return=per_env(runner.episode_return),
        episode_length=per_env(runner.episode_length),
        carry=per_env(runner.carry),
        starts=per_env(runner.starts),
        reward_scaler=everywhere.reward_scaler.replace(returns=per_env(runner.reward_scaler.returns)),
    )


def fsdp_shardings(tree, mesh: Mesh):
    """Per leaf: split along its largest axis over the mesh's one axis when it has two or more dimensions and
    that axis divides by the device count (FSDP-style: each device holds a slice of every matrix, XLA
    gathers them where they are used); replicated otherwise (vectors, scalars, uneven shapes)."""
    (axis,), n = mesh.axis_names, mesh.size

    def one(leaf):
        shape = np.shape(leaf)
        dim = int(np.argmax(shape)) if len(shape) >= 2 else None
        spec = [None] * len(shape)
        if dim is not None and shape[dim] % n == 0:
            spec[dim] = axis
        return NamedSharding(mesh, PartitionSpec(*spec))

    return jax.tree_util.tree_map(one, tree)


def rows_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays split along their first axis (rows of a batch) over the mesh's one axis."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
