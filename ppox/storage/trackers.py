"""Experiment trackers: where a run's metrics go besides metrics.csv.

``TRACKERS`` maps a name to the class that writes it, as ``"module:Class"`` imported on first use (a tracker's
library loads only when a run uses it). A tracker is made with ``Tracker(config, run_path, metric_names)`` and
has ``write(metrics, first_update, steps_per_second, wall)`` (metrics: arrays [seeds, updates]) and
``close()``, and may have ``mark_failed()``, called before ``close()`` when the run ends with an error. They run
on the run log's writer thread (``close``: once it has finished), and an OSError they raise (a tracker turns its
library's errors into a ``RunWriteError``) stops the run with a ``RunWriteError``, its checkpoints kept. A new
tracker is a module with its class plus one line here (and its package in ``EXTRAS``).

A chunk's metrics may hold ``SAMPLES`` besides the arrays: a few completions of an LM run's last update of the
chunk (``completion_samples``), which a tracker may show as a table. Trackers write only where the run has a
folder (under --distributed: process 0's).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from pathlib import Path
from typing import Protocol

import numpy as np

from ppox.errors import ConfigError, RunWriteError
from ppox.storage.runfolder import AnyRunConfig
from ppox.utils.files import atomic_write_text

TRACKERS = {
    "tensorboard": "ppox.storage.tensorboard:TensorBoardTracker",
    "wandb": "ppox.storage.track_wandb:WandbTracker",
    "mlflow": "ppox.storage.track_mlflow:MlflowTracker",
}
EXTRAS = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}  # tracker: (module it imports, pip extra)
SAMPLES = "completion_samples"  # a chunk's key for an LM run's sample completions: [{prompt, completion, reward}]
SAMPLES_FILE = "samples.jsonl"  # RUN/samples.jsonl: every chunk's SAMPLES, one JSON object per completion
UPDATE_CLOCKS = "update_clocks"  # a chunk's key for when each of its updates ended (time.perf_counter), where known
SAMPLES_PER_UPDATE = 4  # completions kept of each chunk's last update (of distinct prompts)
SAMPLE_ROWS = 1024  # at most this many kept for a run's table: past it, every other row is dropped
SAMPLE_COLUMNS = ("update", "prompt", "completion", "reward")
REWARDS_PREFIX = "rewards/"  # an LM run's metric of each of several rewards (ppox.language.rewards)
IDS_FILE = "trackers.json"  # RUN/trackers.json: each tracker's run id there, so that --resume continues it


class Tracker(Protocol):
    def write(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float, wall: float) -> None:
        """Record updates first_update .. first_update + n - 1 of every seed."""

    def close(self) -> None:
        """Finish writing; raise OSError if that fails."""


def close_tracker(tracker: Tracker, failed: bool) -> None:
    """``tracker.close()``, after ``tracker.mark_failed()`` (where it has one) when the run ends with an error."""
    if failed and hasattr(tracker, "mark_failed"):
        tracker.mark_failed()
    tracker.close()


def tracker_names(config: AnyRunConfig) -> list[str]:
    """The trackers a config asks for: TensorBoard unless ``tensorboard=False``, then those of ``track``."""
    return (["tensorboard"] if config.tensorboard else []) + list(dict.fromkeys(config.track))


def tracker_class(name: str) -> type:
    module, _, attribute = TRACKERS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def check_trackers(config: AnyRunConfig) -> None:
    """A ConfigError for a tracker whose library is not installed (before the run starts)."""
    for name in tracker_names(config):
        module, extra = EXTRAS.get(name, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f'--track {name} needs the {module} package: pip install "ppox[{extra}]"')


def open_trackers(config: AnyRunConfig, path: Path, names: tuple[str, ...]) -> list[Tracker]:
    """Every tracker the config asks for; those opened are closed again if a later one fails to open."""
    opened: list[Tracker] = []
    try:
        for name in tracker_names(config):
            opened.append(tracker_class(name)(config, path, names))
    except BaseException:
        for tracker in opened:
            try:
                close_tracker(tracker, failed=True)
            except OSError:
                pass
        raise
    return opened


def chart_name(metric: str) -> str:
    """The name a metric has in every tracker, as in TensorBoard: charts/episode_*, a name with its own
    section as it is (an LM run's rewards/<name>), losses/the rest."""
    if "/" in metric:
        return metric
    return f"{'charts' if metric.startswith('episode') else 'losses'}/{metric}"


def update_values(metrics: dict[str, np.ndarray], names, update: int, first_seed: int, pace: float) -> dict:
    """One update's finite values: each metric's mean over seeds (charts/x, losses/x) and, with several seeds,
    each seed's (seed_N/charts/x, as TensorBoard's RUN/tb/seed_N); charts/steps_per_second is ``pace``."""
    values = {"charts/steps_per_second": pace}
    for name in names:
        column, key = np.asarray(metrics[name][:, update], np.float64), chart_name(name)
        finite = column[np.isfinite(column)]
        if finite.size:
            values[key] = float(finite.mean())
        if len(column) > 1:
            values.update({f"seed_{first_seed + s}/{key}": float(v) for s, v in enumerate(column) if math.isfinite(v)})
    return values


def flat_config(config: AnyRunConfig) -> dict[str, str]:
    """The config as flat string parameters: nested keys joined with dots."""
    flat: dict[str, str] = {}

    def add(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                add(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = value if isinstance(value, str) else json.dumps(value)

    add("", json.loads(config.to_json()))
    return flat


def completion_samples(prompts: list, completions: list, rewards, per_prompt: int) -> list[dict]:
    """Up to SAMPLES_PER_UPDATE (prompt, completion, reward) rows, of distinct prompts (the batch holds each
    prompt ``per_prompt`` times in a row); token-id lists are shown as text."""
    picked = range(0, len(completions), max(1, per_prompt))
    return [
        {"prompt": str(prompts[i]), "completion": str(completions[i]), "reward": float(rewards[i])}
        for i in list(picked)[:SAMPLES_PER_UPDATE]
    ]


def sample_columns(names) -> list[str]:
    """The columns of a run's table of sample completions: SAMPLE_COLUMNS, then each of several rewards'
    score (its metric rewards/<name> among ``names``, the run's metrics)."""
    return [*SAMPLE_COLUMNS, *(n for n in names if n.startswith(REWARDS_PREFIX))]


def keep_samples(rows: list[list], metrics: dict, update: int, names=()) -> None:
    """Append a chunk's SAMPLES (if any) to ``rows`` as [update, prompt, completion, reward, each reward's
    score (``sample_columns(names)``)] (a sample's own "update", else ``update``), thinned to SAMPLE_ROWS
    spread over the run."""
    parts = [n[len(REWARDS_PREFIX) :] for n in sample_columns(names)[len(SAMPLE_COLUMNS) :]]
    for sample in metrics.get(SAMPLES) or ():
        scores = [(sample.get("rewards") or {}).get(part) for part in parts]
        rows.append([sample.get("update", update), sample["prompt"], sample["completion"], sample["reward"], *scores])
    if len(rows) > SAMPLE_ROWS:
        rows[:] = rows[::2]


def run_plots(path: Path) -> dict[str, Path]:
    """The run folder's PNG images (RUN/plots/ from ``ppox plot RUN``, ...; not those trackers keep in it), by
    the name a tracker shows: plots/NAME, NAME the path in the run folder without the suffix."""
    found = sorted(p for p in path.rglob("*.png") if p.relative_to(path).parts[0] not in ("wandb", "tb"))
    names = [p.relative_to(path).with_suffix("").as_posix() for p in found]
    return {name if name.startswith("plots/") else f"plots/{name}": p for name, p in zip(names, found)}


def one_line(err: BaseException) -> str:
    """The first line of a library's error message."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def remembered_id(path: Path, tracker: str) -> str | None:
    """The run id a tracker noted in RUN/trackers.json in an earlier session of this run, if any."""
    try:
        ids = json.loads((path / IDS_FILE).read_text())
    except (OSError, ValueError):
        return None
    found = ids.get(tracker) if isinstance(ids, dict) else None
    return found if isinstance(found, str) else None


def remember_id(path: Path, tracker: str, run_id: str) -> None:
    """Note a tracker's run id in RUN/trackers.json (atomically), for --resume."""
    try:
        ids = json.loads((path / IDS_FILE).read_text())
    except (OSError, ValueError):
        ids = {}
    ids = {**(ids if isinstance(ids, dict) else {}), tracker: run_id}
    try:
        atomic_write_text(path / IDS_FILE, json.dumps(ids, indent=2))
    except OSError as err:
        raise RunWriteError.of(path / IDS_FILE, err) from None
