"""The memory a run needs, as a lower bound by what for, checked against the machine's before anything is allocated:
at config time (the smallest env's shapes) and again where the env's spec is known (``ppox.drivers.base``)."""

from __future__ import annotations

import contextlib
import functools
import math
import os

from ppox.envs.registry import driver_for
from ppox.errors import ConfigError

HOST_ENV_BYTES = 2048  # a Gymnasium env object on the host driver: 2.8 KB measured (CartPole-v1 and its wrappers)
ADVICE = {  # what needs the memory: (what the message calls it, what to change)
    "parameters": ("the networks' {} parameters", "use smaller --hidden-sizes (or --memory-size)"),
    "rollout": ("the rollout buffers", "lower --num-envs or --num-steps"),
    "acting": ("every env acting at once", "lower --num-envs"),
    "minibatch": ("a minibatch's activations", "raise --num-minibatches or lower --num-envs or --num-steps"),
}


def parameter_count(c, obs_shape: tuple = (1,), actions: int = 1) -> int:
    """Actor and critic parameters for observations ``obs_shape`` (a CNN's output counted as one feature: a lower
    bound) and ``actions`` policy outputs; the defaults give a lower bound for any env."""
    sizes = (1 if len(obs_shape) == 3 and c.network != "mlp" else math.prod(obs_shape), *c.hidden_sizes)
    trunk, out = sum((a + 1) * b for a, b in zip(sizes, sizes[1:])), c.hidden_sizes[-1]
    if c.memory != "none":  # input and recurrent kernels and biases of each gate
        gates, m = (3 if c.memory == "gru" else 4), c.memory_size
        trunk, out = trunk + gates * m * (out + m + 1) + m, m
    return (1 if c.shared_trunk else 2) * trunk + (out + 1) * (actions + 1)


def memory_need(c, obs_shape: tuple = (1,), obs_itemsize: int = 4, actions: int = 1) -> dict[str, int]:
    """A lower bound of the bytes a run allocates, by what for (``ADVICE``'s keys): float32 parameters, gradient and
    Adam's two moments; the rollout (observation and next one, six float32 per step); every env's activations as
    they act at once; a minibatch's activations and gradients; all per seed; a Python object per host-driver env.
    The defaults are the smallest env's: a check before the env is made."""
    width = (sum(c.hidden_sizes) + (c.memory_size if c.memory != "none" else 0)) * (1 if c.shared_trunk else 2)
    need = {
        "parameters": 16 * parameter_count(c, obs_shape, actions),
        "rollout": c.batch_size * (2 * obs_itemsize * math.prod(obs_shape) + 24),
        "acting": c.num_envs * (4 * width + (HOST_ENV_BYTES if driver_for(c.env, c.driver, c.ray) == "host" else 0)),
        "minibatch": 8 * c.minibatch_size * width,
    }
    return {what: c.seeds * size for what, size in need.items()}  # (the host driver runs one seed)


@functools.lru_cache(maxsize=1)
def machine_memory() -> int | None:
    """The bytes of memory a run may use: the machine's physical memory (os.sysconf), or the cgroup's limit
    (/sys/fs/cgroup/memory.max) where it is lower; None where neither can be read (no check then)."""
    sizes = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with contextlib.suppress(OSError, ValueError), open("/sys/fs/cgroup/memory.max") as f:
        sizes.append(int(f.read()))  # ("max": no limit)
    return min(sizes) if sizes else None


def check_memory_need(c, obs_shape: tuple = (1,), obs_itemsize: int = 4, actions: int = 1, limit=None) -> None:
    """ConfigError naming the flag to change where ``memory_need`` exceeds ``limit`` (default: ``machine_memory``),
    before anything is allocated: the config alone, then again where the env's spec is known."""
    limit = machine_memory() if limit is None else limit
    need = memory_need(c, obs_shape, obs_itemsize, actions)
    total = sum(need.values())
    if limit is None or total <= limit:
        return
    what = max(need, key=need.__getitem__)
    detail, advice = ADVICE[what]
    detail = detail.format(f"{parameter_count(c, obs_shape, actions):,}")
    advice = f"lower --seeds {c.seeds}" if c.seeds > 1 and total // c.seeds <= limit else advice
    raise ConfigError(
        f"this run needs at least {total / 1e9:,.1f} GB of memory ({detail}: {need[what] / 1e9:,.1f} GB), more "
        f"than this machine's {limit / 1e9:,.1f} GB: {advice}"
    )
