"""A run's record: the run folder, the metrics CSV, TensorBoard event files, the progress bar."""

from __future__ import annotations

import csv
import io
import json
import math
import queue
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from tensorboardX import SummaryWriter

from ppox.config import Config
from ppox.files import atomic_write_bytes
from ppox.metrics import METRIC_NAMES as METRICS  # the CSV's metric columns, in order
from ppox.metrics import weighted_return


def make_run_path(config: Config) -> Path:
    """runs/ENV__SEED__YYYYmmdd-HHMMSS (or --run-name), created; a clear error if it cannot be."""
    name = config.run_name or f"{config.env}__{config.seed}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path = Path(config.run_dir) / name
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OSError(f"cannot write the run folder {path}: {err.strerror}; choose another --run-dir") from None
    return path


class RunLog:
    """Writes config.json, metrics.csv and TensorBoard events into the run folder, and shows progress.

    The files are written by a background thread, so that formatting thousands of rows and
    TensorBoard events overlaps with the next chunk of training instead of delaying it.
    """

    def __init__(self, config: Config, path: Path | None, resume_from: int | None = None):
        """``resume_from``: a resumed run's first update; metrics.csv keeps the rows before it and appends."""
        self.config = config
        self.path = path
        self.start = time.perf_counter()
        self._csv_file = self._csv = None
        self._writers = []
        header = ["update", "global_step", "seed", *METRICS, "steps_per_second", "wall_time"]
        if path is not None:
            (path / "config.json").write_text(config.to_json())
            if resume_from is None:
                self._csv_file = open(path / "metrics.csv", "w", newline="")
                self._csv = csv.writer(self._csv_file)
                self._csv.writerow(header)
            else:
                _keep_rows_before(path / "metrics.csv", header, resume_from)
                self._csv_file = open(path / "metrics.csv", "a", newline="")
                self._csv = csv.writer(self._csv_file)
            if config.tensorboard:
                self._writers = [SummaryWriter(str(path / "tb" / f"seed_{config.seed + i}"), flush_secs=30)
                                 for i in range(config.seeds)]
        self._queue: queue.Queue = queue.Queue()
        self._error: OSError | None = None
        self._worker = None
        if self._csv is not None:
            self._worker = threading.Thread(target=self._drain, name="ppox-run-log", daemon=True)
            self._worker.start()
        self._progress = None
        if config.progress:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._task = self._progress.add_task(
                f"{config.env} x{config.seeds}", total=config.num_updates * config.batch_size, status="compiling...",
                completed=(resume_from or 0) * config.batch_size,
            )
            self._progress.start()

    def write(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float) -> None:
        """Record updates first_update .. first_update + n - 1; metrics are [seeds, n]."""
        n = metrics["episode_return"].shape[1]
        if self._worker is not None:
            self._queue.put((metrics, first_update, steps_per_second, time.perf_counter() - self.start))
        if self._progress is not None:
            recent = float(weighted_return(metrics["episode_return"], metrics["episode_count"]))
            status = f"{steps_per_second * self.config.seeds:,.0f} steps/s  return {recent:.1f}"
            self._progress.update(self._task, completed=(first_update + n) * self.config.batch_size, status=status)

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write_files(*item)
                except OSError as err:  # e.g. a full disk: reported by close(), training goes on
                    self._error = err

    def _write_files(self, metrics, first_update: int, steps_per_second: float, wall: float) -> None:
        n = metrics["episode_return"].shape[1]
        batch = self.config.batch_size
        for j in range(n):
            update = first_update + j
            step = (update + 1) * batch
            for s in range(self.config.seeds):
                values = [metrics[m][s, j].item() for m in METRICS]
                if self._csv is not None:
                    self._csv.writerow([update, step, self.config.seed + s, *values, f"{steps_per_second:.1f}",
                                        f"{wall:.3f}"])
                if self._writers:
                    writer = self._writers[s]
                    for name, value in zip(METRICS, values):
                        if math.isfinite(value):
                            writer.add_scalar(f"{'charts' if name.startswith('episode') else 'losses'}/{name}",
                                              value, step)
                    writer.add_scalar("charts/steps_per_second", steps_per_second, step)
        self._csv_file.flush()

    def close(self) -> None:
        """Finish writing everything queued, then close the files."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
        if self._progress is not None:
            self._progress.stop()
        for writer in self._writers:
            writer.close()
        if self._csv_file is not None:
            self._csv_file.close()
        if self._error is not None:
            raise OSError(f"could not write the metrics in {self.path}: {self._error}")

    def write_summary(self, summary: dict) -> None:
        if self.path is not None:
            (self.path / "summary.json").write_text(json.dumps(summary, indent=2))


def _keep_rows_before(path: Path, header: list[str], first_update: int) -> None:
    """Rewrite metrics.csv (atomically) with only the rows of updates before ``first_update``.

    A run that crashed after its last checkpoint may have logged later updates; the resumed run
    logs them again."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = list(csv.reader(f))[1:]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(r for r in rows if r and r[0].isdigit() and int(r[0]) < first_update)
    atomic_write_bytes(path, out.getvalue().encode())


def append_evaluation(run_path: Path, update: int, global_step: int, returns: list[float], first_seed: int) -> None:
    """One row of RUN/evaluations.csv: the mean evaluation return after ``update`` updates, then each seed's."""
    log_file = Path(run_path) / "evaluations.csv"
    new = not log_file.exists()
    with open(log_file, "a") as f:
        if new:
            f.write("update,global_step,mean_return," + ",".join(f"seed_{first_seed + i}"
                                                                   for i in range(len(returns))) + "\n")
        f.write(f"{update - 1},{global_step},{np.mean(returns):.4f}," + ",".join(f"{r:.4f}" for r in returns) + "\n")
