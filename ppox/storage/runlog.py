"""A run's record: the run folder, the metrics CSV, the trackers (TensorBoard, W&B, MLflow), the progress bar."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ppox.agent.metrics import METRIC_NAMES as METRICS  # the CSV's metric columns, in order
from ppox.agent.metrics import weighted_return
from ppox.errors import RunWriteError
from ppox.storage.runfolder import AnyRunConfig, RunLock, run_key, take_run
from ppox.storage.trackers import SAMPLES, SAMPLES_FILE, UPDATE_CLOCKS, check_trackers, close_tracker, open_trackers
from ppox.utils.files import atomic_write_bytes, atomic_write_text


class RunLog:
    """The run's record: config.json, metrics.csv and TensorBoard events in the run folder (written by a
    background thread, so that formatting overlaps the next chunk of training), and the progress bar.

    A write that fails (a full disk) stops the run at the next ``write`` or ``flush`` with a RunWriteError
    naming the file; nothing ever waits on a writer that cannot write."""

    def __init__(self, config: AnyRunConfig, path: Path | None, resume_from: int | None = None, names=METRICS):
        """``resume_from``: a resumed run's first update; metrics.csv keeps the rows before it and appends.
        ``names``: the metric columns (a driver's ``metric_names``; every one has episode_return and _count)."""
        self.config, self.path = config, path
        if path is not None:
            check_trackers(config)  # (a tracker's library missing: a ConfigError before the folder is taken)
        held = path is not None and run_key(path) in RunLock.held  # (a new run's, claimed with its folder)
        self.lock = take_run(path) if path is not None else None
        try:
            self.files = RunFiles(config, path, resume_from, tuple(names)) if path is not None else None
        except BaseException:
            if self.lock is not None and not held:  # (a claimed folder: its run's cleanup releases it)
                self.lock.release()
            raise
        self.progress = ProgressBar(config, resume_from) if config.progress else None

    def write(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float) -> None:
        """Record updates first_update .. first_update + n - 1; metrics are [seeds, n]."""
        if self.files is not None:
            self.files.put(metrics, first_update, steps_per_second)
        if self.progress is not None:
            self.progress.update(metrics, first_update, steps_per_second)

    def flush(self) -> None:
        """Wait until every row so far is on disk (before a checkpoint, so that none is lost to a kill)."""
        if self.files is not None:
            self.files.flush()

    def close(self, release: bool = True, failed: bool | None = None) -> None:
        """Finish writing everything queued, then close the files; raises a write error not yet reported.
        ``release``: give up the run's lock too (else ``release()`` does, once the run's last files are written).
        ``failed``: the run ends with an error (trackers record it); None: so when called while an exception is
        being handled and not every update was written."""
        try:
            if self.progress is not None:
                self.progress.stop()
            if self.files is not None:
                self.files.close(failed)
        finally:
            if release:
                self.release()

    def release(self) -> None:
        """Give up the run's lock (again: nothing)."""
        if self.lock is not None:
            self.lock.release()

    def write_summary(self, summary: dict) -> None:
        if self.path is not None:
            write_summary(self.path, summary)


def write_summary(path: Path, summary: dict) -> None:
    """RUN/summary.json, atomically."""
    atomic_write_text(Path(path) / "summary.json", json.dumps(summary, indent=2))


class ProgressBar:
    """A rich progress bar over the run's env steps, with the recent pace and return."""

    def __init__(self, config: AnyRunConfig, resume_from: int | None):
        self.config = config
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            transient=False,
            refresh_per_second=1,  # its figures change once a chunk, its clock once a second (rich's default 10
        )  # redraws a second took 14 ms of CPU a second on a terminal, beside the training: docs/results.md)
        self.task = self.bar.add_task(
            f"{config.env} x{config.seeds}",
            total=config.num_updates * config.batch_size,
            status="compiling...",
            completed=(resume_from or 0) * config.batch_size,
        )
        self.bar.start()

    def update(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float) -> None:
        n = metrics["episode_return"].shape[1]
        recent = float(weighted_return(metrics["episode_return"], metrics["episode_count"]))
        status = f"{steps_per_second * self.config.seeds:,.0f} steps/s  return {recent:.1f}"
        self.bar.update(self.task, completed=(first_update + n) * self.config.batch_size, status=status)

    def stop(self) -> None:
        self.bar.stop()


class RunFiles:
    """config.json (atomic), metrics.csv and the config's trackers (``ppox.storage.trackers``: TensorBoard
    event files, W&B, MLflow), all written by one thread."""

    def __init__(self, config: AnyRunConfig, path: Path, resume_from: int | None, names=METRICS):
        self.config, self.path, self.start, self.names = config, path, time.perf_counter(), names
        atomic_write_text(path / "config.json", config.to_json())
        header = ["update", "global_step", "seed", *names, "steps_per_second", "wall_time"]
        if resume_from is not None:
            _keep_rows_before(path / "metrics.csv", header, resume_from)
            _keep_samples_before(path / SAMPLES_FILE, resume_from)
        self.csv_file = self._open(path / "metrics.csv", "a" if resume_from is not None else "w")
        self.csv = csv.writer(self.csv_file)
        if resume_from is None:
            self.csv.writerow(header)
        try:
            self.trackers = open_trackers(config, path, names)
        except BaseException:
            self.csv_file.close()
            raise
        self.written = resume_from or 0  # updates queued so far
        self.queue: queue.Queue = queue.Queue()
        self.error: Exception | None = None
        self.worker = threading.Thread(target=self._drain, name="ppox-run-files", daemon=True)
        self.worker.start()

    @staticmethod
    def _open(path: Path, mode: str):
        try:
            return open(path, mode, newline="")
        except OSError as err:
            raise RunWriteError.of(path, err) from None

    def put(self, metrics, first_update: int, steps_per_second: float) -> None:
        self._raise_error()
        self.written = first_update + metrics["episode_return"].shape[1]
        self.queue.put((metrics, first_update, steps_per_second, time.perf_counter() - self.start))

    def flush(self) -> None:
        self.queue.join()
        self._raise_error()

    def close(self, failed: bool | None = None) -> None:
        """Drain the queue, then close metrics.csv and every tracker (each, whatever the others raise)."""
        self.queue.put(None)
        self.worker.join()
        if failed is None:
            failed = sys.exc_info()[0] is not None and self.written < self.config.num_updates
        closers = [self.csv_file.close, *(functools.partial(close_tracker, t, failed) for t in self.trackers)]
        for close in closers:
            try:
                close()
            except RunWriteError as err:
                self.error = self.error or err
            except OSError as err:
                self.error = self.error or RunWriteError.of(self.path, err)
            except Exception as err:  # noqa: BLE001  (a bug: raised once every file is closed)
                self.error = self.error or err
        self._raise_error()

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    self._write_rows(*item)
                    for tracker in self.trackers:
                        tracker.write(*item)
            except RunWriteError as err:  # e.g. a full disk: the run stops at its next write or flush
                self.error = err
            except OSError as err:
                self.error = RunWriteError.of(self.path, err)
            except Exception as err:  # noqa: BLE001  (a bug: raised in the training thread, never lost)
                self.error = err
            finally:
                self.queue.task_done()

    def _write_rows(self, metrics, first_update: int, steps_per_second: float, wall: float) -> None:
        """metrics.csv rows; wall_time: seconds since this session's start when each update ended, where the
        driver says (UPDATE_CLOCKS), else when the chunk was queued. Then the chunk's SAMPLES, if any."""
        n, batch = metrics["episode_return"].shape[1], self.config.batch_size
        clocks = metrics.get(UPDATE_CLOCKS)
        try:
            for j in range(n):
                if clocks is not None:
                    wall = float(clocks[j]) - self.start
                for s in range(self.config.seeds):
                    values = [metrics[m][s, j].item() for m in self.names]
                    self.csv.writerow(
                        [
                            first_update + j,
                            (first_update + j + 1) * batch,
                            self.config.seed + s,
                            *values,
                            f"{steps_per_second:.1f}",
                            f"{wall:.3f}",
                        ]
                    )
            self.csv_file.flush()
            os.fsync(self.csv_file.fileno())
        except OSError as err:
            raise RunWriteError.of(self.path / "metrics.csv", err) from None
        if metrics.get(SAMPLES):
            self._write_samples(metrics[SAMPLES], first_update + n - 1)

    def _write_samples(self, samples: list[dict], update: int) -> None:
        """Append the samples to RUN/samples.jsonl: {"update", "prompt", "completion", "reward", ...} each."""
        try:
            with open(self.path / SAMPLES_FILE, "a") as f:
                for sample in samples:
                    f.write(json.dumps({"update": update, **sample}) + "\n")
        except OSError as err:
            raise RunWriteError.of(self.path / SAMPLES_FILE, err) from None


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


def _keep_samples_before(path: Path, first_update: int) -> None:
    """Rewrite RUN/samples.jsonl (atomically, where it exists) with only the samples of updates before
    ``first_update`` (as ``_keep_rows_before``)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            update = json.loads(line).get("update")
        except (ValueError, AttributeError):
            continue
        if isinstance(update, int) and update < first_update:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def append_evaluation(run_path: Path, update: int, global_step: int, returns: list[float], first_seed: int) -> None:
    """One row of RUN/evaluations.csv: the mean evaluation return after ``update`` updates, then each seed's."""
    log_file = Path(run_path) / "evaluations.csv"
    new = not log_file.exists()
    try:
        with open(log_file, "a") as f:
            if new:
                f.write(
                    "update,global_step,mean_return,"
                    + ",".join(f"seed_{first_seed + i}" for i in range(len(returns)))
                    + "\n"
                )
            f.write(
                f"{update - 1},{global_step},{np.mean(returns):.4f}," + ",".join(f"{r:.4f}" for r in returns) + "\n"
            )
    except OSError as err:
        raise RunWriteError.of(log_file, err) from None
