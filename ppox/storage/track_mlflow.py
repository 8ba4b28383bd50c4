"""The MLflow tracker (--track mlflow; pip install "ppox[mlflow]").

An MLflow run named as the run folder, in the experiment MLFLOW_EXPERIMENT_NAME (default "ppox"): the config as
parameters (flat, dotted keys), every update's metrics at step = global step, named as in TensorBoard
(charts/x, losses/x: the mean over seeds; seed_N/charts/x each seed's, with several), at the end the run
folder's PNG plots (artifacts plots/) and, for a language-model run, sample completions (samples.json:
columns and data), then the status FINISHED, or FAILED after a run that ended with an error.

The store is MLFLOW_TRACKING_URI, else the local file store ./mlruns. MLflow 3 keeps its file store behind
MLFLOW_ALLOW_FILE_STORE=true, which a file store here sets unless it is set already (``mlflow ui`` reading
./mlruns needs it too). A resumed run continues the same MLflow run (its id is kept in RUN/trackers.json).
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.parse
from pathlib import Path

import numpy as np
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ppox.errors import ConfigError, RunWriteError
from ppox.storage.runfolder import AnyRunConfig
from ppox.storage.trackers import (
    flat_config,
    keep_samples,
    one_line,
    remember_id,
    remembered_id,
    run_plots,
    sample_columns,
    update_values,
)

PARAM_LENGTH = 6000  # MLflow's longest parameter value


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else ./mlruns (as a file: URI); a file store is allowed (MLFLOW_ALLOW_FILE_STORE)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
    if urllib.parse.urlparse(uri).scheme in ("", "file"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


class MlflowTracker:
    def __init__(self, config: AnyRunConfig, path: Path, names: tuple[str, ...]):
        self.config, self.path, self.names, self.uri = config, path, names, tracking_uri()
        self.samples: list[list] = []
        self.status = "FINISHED"
        try:
            self.client = MlflowClient(self.uri)
            self.run_id = self._resumed(remembered_id(path, "mlflow")) or self._new_run()
        except MlflowException as err:
            raise ConfigError(f"--track mlflow: no run could be started in {self.uri}: {one_line(err)}") from None
        remember_id(path, "mlflow", self.run_id)

    def _resumed(self, run_id: str | None) -> str | None:
        """The earlier session's MLflow run, running again (None: there is none in this store)."""
        if run_id is None:
            return None
        try:
            self.client.update_run(run_id, status="RUNNING")
        except MlflowException:
            return None
        return run_id

    def _new_run(self) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "ppox")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run = self.client.create_run(experiment_id, run_name=self.path.name, tags={"ppox.run_path": str(self.path)})
        params = [Param(key[:250], value[:PARAM_LENGTH]) for key, value in flat_config(self.config).items()]
        self.client.log_batch(run.info.run_id, params=params)
        return run.info.run_id

    def write(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float, wall: float) -> None:
        n, batch, now = metrics["episode_return"].shape[1], self.config.batch_size, int(time.time() * 1000)
        logged = []
        for j in range(n):
            step = (first_update + j + 1) * batch
            values = update_values(metrics, self.names, j, self.config.seed, steps_per_second)
            logged += [Metric(key, value, now, step) for key, value in values.items()]
        with self._errors():
            self.client.log_batch(self.run_id, metrics=logged)
        keep_samples(self.samples, metrics, first_update + n - 1, self.names)

    def mark_failed(self) -> None:
        self.status = "FAILED"

    def close(self) -> None:
        """Log the plots and the samples as artifacts, then end the run with its status."""
        with self._errors():
            try:
                for name, plot in run_plots(self.path).items():
                    self.client.log_artifact(self.run_id, str(plot), name.rpartition("/")[0])
                if self.samples:
                    table = {"columns": sample_columns(self.names), "data": self.samples}
                    self.client.log_dict(self.run_id, table, "samples.json")
            finally:
                self.client.set_terminated(self.run_id, self.status)

    @contextlib.contextmanager
    def _errors(self):
        """MLflow's errors (a store that went away) as a RunWriteError: the run stops, its checkpoints kept."""
        try:
            yield
        except MlflowException as err:
            raise RunWriteError(f"--track mlflow: could not log to {self.uri}: {one_line(err)}") from None
