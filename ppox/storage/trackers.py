"""Experiment trackers: where a run's metrics go besides metrics.csv.

``TRACKERS`` maps a name to the class that writes it, as ``"module:Class"`` imported on first use (a tracker's
library loads only when a run uses it). A tracker is made with ``Tracker(config, run_path, metric_names)`` and
has ``write(metrics, first_update, steps_per_second, wall)`` (metrics: arrays [seeds, updates]) and
``close()``; both run on the run log's writer thread, and an OSError they raise stops the run with a
``RunWriteError``. A new tracker is a module with its class plus one line here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from ppox.storage.runfolder import AnyRunConfig

TRACKERS = {
    "tensorboard": "ppox.storage.tensorboard:TensorBoardTracker",
}


class Tracker(Protocol):
    def write(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float, wall: float) -> None:
        """Record updates first_update .. first_update + n - 1 of every seed."""

    def close(self) -> None:
        """Finish writing; raise OSError if that fails."""


def tracker_names(config: AnyRunConfig) -> list[str]:
    """The trackers a config asks for (TensorBoard unless ``tensorboard=False``)."""
    return ["tensorboard"] if config.tensorboard else []


def tracker_class(name: str) -> type:
    module, _, attribute = TRACKERS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def open_trackers(config: AnyRunConfig, path: Path, names: tuple[str, ...]) -> list[Tracker]:
    return [tracker_class(name)(config, path, names) for name in tracker_names(config)]
