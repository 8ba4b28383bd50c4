"""The per-update metrics of a run: their names (metrics.csv's columns, in order) and their reductions.

Every driver returns, per update and seed, the mean return and length of the episodes that ended in
the update's rollout and their count, then the learner's ``UpdateMetrics``. A mean return over many
updates is weighted by the episode counts, so that an update in which many episodes ended counts for more.
"""

from __future__ import annotations

import numpy as np

from ppox.agent.learner import UpdateMetrics
from ppox.errors import check_finite

EPISODE_METRICS = ("episode_return", "episode_length", "episode_count")
METRIC_NAMES = EPISODE_METRICS + UpdateMetrics._fields
LOSS_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl")  # a NaN here stops the run


def weighted_return(returns: np.ndarray, counts: np.ndarray, axis=None) -> np.ndarray:
    """sum(return_u * count_u) / sum(count_u) over ``axis``: the mean return of all the episodes that
    ended in those updates (NaN where none did)."""
    r = np.nan_to_num(np.asarray(returns, np.float64))
    c = np.nan_to_num(np.asarray(counts, np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (r * c).sum(axis=axis) / c.sum(axis=axis)


def final_return(metrics: dict[str, np.ndarray], fraction: float = 0.1) -> np.ndarray:
    """Per seed: the mean return of the episodes that ended in the last ``fraction`` of the updates."""
    returns, counts = metrics["episode_return"], metrics["episode_count"]
    tail = max(1, int(round(returns.shape[1] * fraction)))
    return weighted_return(returns[:, -tail:], counts[:, -tail:], axis=1)


def check_finite_metrics(metrics: dict[str, np.ndarray], first_update: int) -> None:
    """Stop on a non-finite loss in metrics [seeds, n] of updates first_update...: the parameters it
    produced are not saved, earlier checkpoints stay."""
    losses = {name.replace("_", " "): metrics[name] for name in LOSS_METRICS}
    check_finite(losses, lambda index: f"in update {first_update + index[1]} (seed index {index[0]})")
