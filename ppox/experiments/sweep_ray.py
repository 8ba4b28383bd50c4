"""Host-driver sweep members as Ray tasks (``ppox sweep --ray local|auto|ADDRESS``, ``pip install "ppox[ray]"``).

Each member (configuration x seed) is one task: ``ppox.train`` of its config in a Ray worker process, which
returns the curves the sweep keeps. Ray schedules as many at once as the cluster has CPUs for.
"""

from __future__ import annotations

import json
import time

import numpy as np

from ppox.config.config import Config
from ppox.errors import ConfigError
from ppox.run.training import train


def train_member(config_json: str, names: tuple[str, ...]) -> dict:
    """Train one member (no run folder); its curves [1, updates] by name, wall seconds, and whether a signal
    cut it short."""
    result = train(Config.from_dict(json.loads(config_json)).replace(save=False, progress=False))
    return {
        "metrics": {k: np.asarray(result.metrics[k]) for k in names},
        "wall_s": result.wall_time,
        "interrupted": result.interrupted,
    }


def connect(address: str):
    """ray, initialised here ('local') or joined to a cluster ('auto' or an address)."""
    try:
        import ray
    except ImportError:
        raise ConfigError('--ray needs Ray: pip install "ppox[ray]"') from None
    if not ray.is_initialized():
        try:
            ray.init(
                address=None if address == "local" else address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except ConnectionError as err:
            raise ConfigError(
                f"--ray {address}: cannot reach the Ray cluster ({err}); start one with `ray start "
                "--head`, or use --ray local"
            ) from None
    return ray


def run_on_ray(address: str, members: list[tuple[int, int, Config]], names: tuple[str, ...], stop, on_done) -> bool:
    """Run every (configuration index, seed index, config) member as a task; ``on_done(index, seed_index,
    result)`` as each finishes. False if a signal stopped it (the tasks still running are cancelled)."""
    ray = connect(address)
    task = ray.remote(num_cpus=1)(train_member)
    pending = {task.remote(config.to_json(), names): (i, s) for i, s, config in members}
    while pending:
        if stop.requested:
            for ref in pending:
                ray.cancel(ref, force=True)
            return False
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        for ref in ready:
            i, s = pending.pop(ref)
            on_done(i, s, ray.get(ref))
        time.sleep(0.01)
    return True
