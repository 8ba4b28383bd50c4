"""The TensorBoard tracker: one event file per seed in RUN/tb/seed_N, tags charts/* and losses/*.

The files are written synchronously on the run log's thread with tensorboardX's EventsWriter (not its
SummaryWriter, whose own queue blocks for ever once its thread has died on a full disk)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import text

from ppox.config.config import Config
from ppox.errors import RunWriteError

SAMPLES = "completion_samples"  # trackers.SAMPLES (this module lies below trackers: tested equal)


def chart_name(metric: str) -> str:
    """charts/episode_*, a name with its own section as it is (rewards/<name>), losses/the rest: as
    ``trackers.chart_name`` (tested equal)."""
    return metric if "/" in metric else f"{'charts' if metric.startswith('episode') else 'losses'}/{metric}"


class TensorBoardTracker:
    def __init__(self, config: Config, path: Path, names: tuple[str, ...]):
        self.config, self.names = config, names
        self.events = [_event_file(path / "tb" / f"seed_{config.seed + i}") for i in range(config.seeds)]

    def write(self, metrics: dict[str, np.ndarray], first_update: int, steps_per_second: float, wall: float) -> None:
        n, batch = metrics["episode_return"].shape[1], self.config.batch_size
        for s, events in enumerate(self.events):
            try:
                for j in range(n):
                    summary = _summary(metrics, self.names, s, j, steps_per_second)
                    events.write_event(
                        Event(wall_time=time.time(), step=(first_update + j + 1) * batch, summary=summary)
                    )
                if _samples(metrics) and s == 0:  # an LM run's sample completions, as a text table
                    step = (first_update + n) * batch
                    events.write_event(Event(wall_time=time.time(), step=step, summary=samples_text(_samples(metrics))))
                events.flush()
            except OSError as err:
                raise RunWriteError.of(events.path, err) from None

    def close(self) -> None:
        for events in self.events:
            events.close()


def _samples(metrics: dict) -> list[dict]:
    """An LM run chunk's sample completions (SAMPLES), [] where it has none."""
    return list(metrics.get(SAMPLES) or [])


def _summary(metrics: dict[str, np.ndarray], names: tuple[str, ...], seed: int, update: int, steps_per_second: float):
    values = {chart_name(m): metrics[m][seed, update].item() for m in names}
    values["charts/steps_per_second"] = steps_per_second
    return Summary(value=[Summary.Value(tag=tag, simple_value=v) for tag, v in values.items() if math.isfinite(v)])


def samples_text(samples: list[dict]) -> Summary:
    """TensorBoard's text summary "samples": a Markdown table of update, prompt, completion and reward."""
    cell = lambda value: str(value).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| update | prompt | completion | reward |", "|---|---|---|---|"]
    lines += [
        f"| {x.get('update', '')} | {cell(x['prompt'])} | {cell(x['completion'])} | {x['reward']:.4g} |"
        for x in samples
    ]
    return text("samples", "\n".join(lines))


class _EventFile(EventsWriter):
    """tensorboardX's synchronous event file writer, remembering its path (for error messages)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(str(folder / "events"))
        self.path = Path(self._file_name)


def _event_file(folder: Path) -> _EventFile:
    try:
        return _EventFile(folder)
    except OSError as err:
        raise RunWriteError.of(folder, err) from None
