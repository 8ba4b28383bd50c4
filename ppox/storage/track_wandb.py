"""The Weights & Biases tracker (--track wandb; pip install "ppox[wandb]").

A W&B run named as the run folder, in the project WANDB_PROJECT (default "ppox"), its files in RUN/wandb:
the config; every update's metrics at step = global step, named as in TensorBoard (charts/x, losses/x: the
mean over seeds; seed_N/charts/x each seed's, with several); at the end the run folder's PNG plots and, for
a language-model run, a table of sample completions (update, prompt, completion, reward). WANDB_MODE=offline
keeps everything on disk (``wandb sync RUN/wandb/offline-run-*`` uploads it later). A resumed run continues
the same W&B run (its id is kept in RUN/trackers.json).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import wandb

from ppox.errors import ConfigError, RunWriteError
from ppox.storage.runfolder import AnyRunConfig
from ppox.storage.trackers import (
    keep_samples,
    one_line,
    remember_id,
    remembered_id,
    run_plots,
    sample_columns,
    update_values,
)


class WandbTracker:
    def __init__(self, config: AnyRunConfig, path: Path, names: tuple[str, ...]):
        self.config, self.path, self.names = config, path, names
        self.samples: list[list] = []
        self.exit_code = 0
        run_id = remembered_id(path, "wandb")
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "ppox"),
                name=path.name,
                dir=str(path),
                config=json.loads(config.to_json()),
                id=run_id,
                resume="allow" if run_id else None,
                reinit="create_new",  # (a W&B run of the caller's own stays as it is)
            )
        except wandb.Error as err:  # e.g. online without an API key
            raise ConfigError(
                f"--track wandb: W&B did not start a run ({one_line(err)}): run `wandb login`, or set "
                "WANDB_MODE=offline to keep the run on disk"
            ) from None
        remember_id(path, "wandb", self.run.id)

    def write(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float, wall: float) -> None:
        n, batch = metrics["episode_return"].shape[1], self.config.batch_size
        try:
            for j in range(n):
                values = update_values(metrics, self.names, j, self.config.seed, steps_per_second)
                self.run.log(values, step=(first_update + j + 1) * batch)
        except wandb.Error as err:
            raise RunWriteError(f"--track wandb: could not log to W&B: {one_line(err)}") from None
        keep_samples(self.samples, metrics, first_update + n - 1, self.names)

    def mark_failed(self) -> None:
        self.exit_code = 1

    def close(self) -> None:
        """Log the plots and the sample table, then finish the W&B run (exit code 1 after a failed run)."""
        try:
            try:
                media = {name: image for name, plot in run_plots(self.path).items() if (image := _image(plot))}
                if self.samples:
                    media["samples"] = wandb.Table(
                        columns=list[str | int](sample_columns(self.names)), data=self.samples
                    )
                if media:
                    self.run.log(media)
            finally:
                self.run.finish(exit_code=self.exit_code)
        except wandb.Error as err:
            raise RunWriteError(f"--track wandb: could not log to W&B: {one_line(err)}") from None


def _image(plot: Path):
    """A PNG of the run folder as a W&B image; None where it does not read as one (it is left out)."""
    try:
        return wandb.Image(str(plot))
    except (OSError, ValueError):
        return None
