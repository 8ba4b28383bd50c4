"""Callbacks: the user's code that sees each update and evaluation of a run, and may stop it (SB3's callbacks).

    class Show(ppox.Callback):
        def on_update(self, info):
            print(info.update, info.metrics["episode_return"])

    ppox.train(config, callbacks=[Show(), ppox.StopOnReturn(475)])

``on_update`` runs once per update, in order, when the loop fetches the metrics of a chunk of updates;
``on_evaluation`` once per evaluation (``--eval-episodes``: at each checkpoint). Either returns False to stop
the run (SB3's ``_on_step`` convention); None or True lets it go on. The rest of the chunk of updates that
holds the update finishes first (at most about two seconds of work); then a checkpoint and the policy are saved
(with callbacks, the loop queues no chunk ahead, so that none runs past the stop). A run
stopped so is finished, not interrupted: ``TrainResult.stopped_by`` says why, and ``--resume`` does not
continue it (SB3 does not go on after a stopping rule either). A callback that raises ends the run as an error
of the user's code does (``ppox.errors.UserCodeError``), with the last completed update checkpointed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ppox.errors import ConfigError, as_users
from ppox.utils.naming import named


@dataclasses.dataclass(frozen=True)
class UpdateInfo:
    """One update, as ``Callback.on_update`` sees it."""

    update: int  # its index: 0 for the first update of the run (as metrics.csv counts)
    num_updates: int  # the updates the run plans
    global_step: int  # env steps per seed once it is done: (update + 1) * num_envs * num_steps
    metrics: dict[str, float]  # each metric, the mean over the seeds that have it (NaN where none has)
    per_seed: dict[str, np.ndarray]  # each metric per seed [seeds]; episode_return is NaN where no episode ended


@dataclasses.dataclass(frozen=True)
class EvaluationInfo:
    """One evaluation (``--eval-episodes`` episodes per seed, at a checkpoint), as ``on_evaluation`` sees it."""

    update: int  # the index of the update after which it ran
    global_step: int  # env steps per seed by then
    mean_return: float  # over seeds
    returns: tuple[float, ...]  # each seed's mean return


class Callback:
    """Subclass it and override what you need. ``reason``: why it stopped the run, for ``stopped_by`` (set it
    before returning False; default: the method that returned False)."""

    reason: str | None = None

    def on_start(self, config: Any) -> None:
        """Once, before the run folder is made: raise ConfigError for a run it cannot work with."""

    def on_update(self, info: UpdateInfo) -> bool | None:
        """After each update; False stops the run."""
        return None

    def on_evaluation(self, info: EvaluationInfo) -> bool | None:
        """After each evaluation; False stops the run."""
        return None


def _threshold(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: a finite number, got {value!r}")
    return float(value)


class StopOnReturn(Callback):
    """Stop once the mean return over seeds reaches ``threshold`` (SB3's StopTrainingOnRewardThreshold): the
    evaluation return where the run evaluates (``eval_episodes``), else the mean return of the episodes that
    ended in an update (a language-model run: the mean score of an update's completions)."""

    def __init__(self, threshold: float, name: str | None = None):
        self.name = name or f"StopOnReturn({threshold!r})"
        self.threshold = _threshold(threshold, name or "StopOnReturn(threshold)")
        self.on_evaluations = False

    def on_start(self, config: Any) -> None:
        self.on_evaluations = bool(getattr(config, "eval_episodes", 0))

    def on_update(self, info: UpdateInfo) -> bool | None:
        value = info.metrics.get("episode_return", math.nan)
        if self.on_evaluations or not value >= self.threshold:
            return None
        self.reason = f"the mean episode return {value:.4g} of update {info.update} reached {self.name}"
        return False

    def on_evaluation(self, info: EvaluationInfo) -> bool | None:
        if not (self.on_evaluations and info.mean_return >= self.threshold):
            return None
        self.reason = (
            f"the mean evaluation return {info.mean_return:.4g} after update {info.update} reached {self.name}"
        )
        return False


class StopOnNoImprovement(Callback):
    """Stop when the best mean evaluation return has not improved for more than ``max_no_improvement_evals``
    evaluations in a row, counting from evaluation ``min_evals`` on (SB3's StopTrainingOnNoModelImprovement).
    Needs evaluations: ``eval_episodes`` (--eval-episodes N)."""

    def __init__(self, max_no_improvement_evals: int, min_evals: int = 0):
        for name, value in (("max_no_improvement_evals", max_no_improvement_evals), ("min_evals", min_evals)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"StopOnNoImprovement({name}={value!r}): a whole number >= 0")
        self.max_no_improvement_evals, self.min_evals = max_no_improvement_evals, min_evals
        self.best, self.evaluations, self.stale = -math.inf, 0, 0

    def on_start(self, config: Any) -> None:
        if not getattr(config, "eval_episodes", 0):
            raise ConfigError("StopOnNoImprovement watches evaluations: set eval_episodes (--eval-episodes N)")

    def on_evaluation(self, info: EvaluationInfo) -> bool | None:
        self.evaluations += 1
        improved = info.mean_return > self.best
        self.best = max(self.best, info.mean_return)
        if self.evaluations > self.min_evals:
            self.stale = 0 if improved else self.stale + 1
        if self.stale <= self.max_no_improvement_evals:
            return None
        self.reason = (
            f"the best mean evaluation return ({self.best:.4g}) did not improve in {self.stale} evaluations "
            f"(StopOnNoImprovement({self.max_no_improvement_evals}))"
        )
        return False


def config_callbacks(config: Any) -> list[Callback]:
    """The stopping rules a config asks for: ``stop_at_return`` (--stop-at-return R) as a StopOnReturn."""
    threshold = config.stop_at_return if hasattr(config, "stop_at_return") else None  # (an LM run has none)
    if threshold is None:
        return []
    flag = named("--stop-at-return", "stop_at_return")
    return [
        StopOnReturn(
            _threshold(threshold, flag), named(f"--stop-at-return {threshold:g}", f"stop_at_return={threshold:g}")
        )
    ]


def started_callbacks(callbacks: Sequence[Callback], config: Any) -> Callbacks:
    """The user's callbacks and the config's stopping rule (--stop-at-return), each asked whether it can work
    with this run (ConfigError before any work where it cannot)."""
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Sequence):
        callbacks = [callbacks]  # (one callback, not in a list: as SB3 takes it)
    hooks = Callbacks([*callbacks, *config_callbacks(config)])
    hooks.start(config)
    return hooks


class Callbacks:
    """The run's callbacks, called by the run loop: who stopped the run and why, and a callback's error."""

    def __init__(self, callbacks: Sequence[Any]):
        for callback in callbacks:
            methods = [getattr(callback, m, None) for m in ("on_update", "on_evaluation")]
            if isinstance(callback, type) or not any(callable(m) for m in methods):
                raise ConfigError(
                    f"callbacks: {callback!r} is not a callback; pass ppox.Callback objects (instances, with "
                    "on_update or on_evaluation)"
                )
        self.callbacks = list(callbacks)
        self.stopped_by: str | None = None  # the reason of the first callback that stopped the run
        self.failure: Exception | None = None  # the first error a callback raised (the loop raises it once saved)

    @property
    def stopping(self) -> bool:
        return self.stopped_by is not None or self.failure is not None

    def start(self, config: Any) -> None:
        for callback in self.callbacks:
            self.call(callback, "on_start", config)
        if self.failure is not None:
            raise self.failure

    def updates(self, metrics: dict[str, np.ndarray], first: int, config: Any) -> None:
        """on_update for each update of a chunk (metrics [seeds, n]), from update index ``first`` on."""
        if not self.callbacks or self.failure is not None:
            return
        arrays = {name: v for name, v in metrics.items() if isinstance(v, np.ndarray) and v.ndim == 2}  # [seeds, n]
        for j in range(arrays["episode_return"].shape[1]):
            per_seed = {name: values[:, j] for name, values in arrays.items()}
            means = {name: _mean(values) for name, values in per_seed.items()}
            info = UpdateInfo(first + j, config.num_updates, (first + j + 1) * config.batch_size, means, per_seed)
            self.each("on_update", info)

    def evaluation(self, done: int, returns: list[float], config: Any) -> None:
        if self.callbacks and self.failure is None:
            info = EvaluationInfo(done - 1, done * config.batch_size, float(np.mean(returns)), tuple(returns))
            self.each("on_evaluation", info)

    def each(self, method: str, info: Any) -> None:
        for callback in self.callbacks:
            if self.call(callback, method, info) is False and self.stopped_by is None:
                self.stopped_by = getattr(callback, "reason", None) or (
                    f"{type(callback).__name__}.{method} returned False at update {info.update}"
                )
            if self.failure is not None:
                return

    def call(self, callback: Any, method: str, info: Any) -> Any:
        function = getattr(callback, method, None)
        try:
            return None if function is None else function(info)
        except Exception as err:  # noqa: BLE001  (the user's code may raise anything: the run stops and says so)
            self.failure = as_users(err, f"the callback {type(callback).__name__}.{method}")
            return None


def _mean(values: np.ndarray) -> float:
    """The mean of the finite values of ``values`` (NaN where there is none)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan
