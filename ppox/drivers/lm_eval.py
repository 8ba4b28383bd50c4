"""A held-out prompt set scored every N updates (``--eval-prompts FILE --eval-every N``).

After every N-th update the policy completes each held-out prompt once, greedily (the most likely token at
each step, so the figure moves only with the policy), and the run's reward scores the completions (a data
set's extra columns go to it as in training). Logged as ``eval/reward`` (the mean score) and
``eval/length`` (the mean completion length in tokens); on the other updates both are NaN (not measured).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppox.drivers.lm import LMDriver, LMState, RewardError, TextTask, call_reward, checked_scores, with_columns
from ppox.language.reward_model import RewardModel
from ppox.language.sampling import Sampling, make_sampler

EVAL_METRICS = ("eval/reward", "eval/length")


class EvalLMDriver(LMDriver):
    """The LM driver with ``eval_task`` (held-out prompts) scored after every ``config.eval_every`` updates."""

    def __init__(self, config, model, task, critic=None, mesh=None, eval_task: TextTask | None = None):
        super().__init__(config, model, task, critic=critic, mesh=mesh)
        if eval_task is None:
            raise ValueError("EvalLMDriver needs eval_task")
        self.eval_task = eval_task
        self.metric_names = tuple(self.metric_names) + EVAL_METRICS
        greedy = Sampling(config.max_new_tokens, task.eos_ids, task.pad_id, config.temperature, greedy=True)
        self.eval_sample = make_sampler(model.config, greedy)

    def one_update(self, state: LMState) -> tuple[LMState, dict]:
        state, row = super().one_update(state)
        due = int(state.update) % self.config.eval_every == 0
        row.update(self.evaluate(state) if due else dict.fromkeys(EVAL_METRICS, math.nan))
        return state, row

    def pending(self, rows: list[dict]) -> dict:
        pending = super().pending(rows)
        for name in EVAL_METRICS:
            pending[name] = np.array([[row[name] for row in rows]], np.float64)
        return pending

    def evaluate(self, state: LMState) -> dict[str, float]:
        """Greedy completions of every held-out prompt, in batches of at most one update's completions (the
        last batch filled up with its first rows, which are not counted twice), and their mean score."""
        task, size = self.eval_task, self.config.batch_size
        scores, lengths = [], []
        for start in range(0, len(task.ids), size):
            rows = np.arange(start, min(start + size, len(task.ids)))
            padded = np.resize(rows, size) if len(rows) < size and len(task.ids) > size else rows
            out = self.eval_sample(
                self.policy_params(state), self.split(task.ids[padded]), self.split(task.mask[padded]), state.key
            )
            tokens, mask = np.asarray(out.tokens)[: len(rows)], np.asarray(out.mask)[: len(rows)]
            scores.append(self.eval_scores(rows, tokens, mask))
            lengths.append(mask.sum(-1))
        reward, length = np.concatenate(scores).mean(), np.concatenate(lengths).mean()
        return {"eval/reward": float(reward), "eval/length": float(length)}

    def eval_scores(self, rows: np.ndarray, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The run's reward of the held-out completions: each function (weighted, where there are several)."""
        task = self.eval_task
        prompts, completions = task.show(task.ids[rows], task.mask[rows]), task.show(tokens, mask)
        reward = task.reward
        parts: list[tuple[Any, float]] = [(reward, 1.0)]
        if hasattr(reward, "functions"):  # (several rewards, weighted)
            parts = list(zip(reward.functions, reward.weights))
        total = np.zeros(len(rows))
        for function, weight in parts:
            name = None if isinstance(function, RewardModel) else "the reward (held-out prompts)"
            got = call_reward(
                with_columns(function, task, rows), prompts, completions, self.config.reward_timeout, name
            )
            total += weight * checked_scores(got, len(rows))
        return total


def driver_class(config) -> type[LMDriver]:
    """EvalLMDriver for a run with --eval-prompts, else LMDriver."""
    return EvalLMDriver if config.eval_prompts else LMDriver


__all__ = ["EVAL_METRICS", "EvalLMDriver", "RewardError", "driver_class"]
