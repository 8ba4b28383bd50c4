"""95% intervals of a mean over seeds, as the reports and plots draw them: the percentile bootstrap.

The seeds' values are resampled with replacement RESAMPLES times; the interval runs from the 2.5th to the
97.5th percentile of the resampled means (as rliable reports). It always lies within the values' range, so
never above a return the env cannot give (CartPole's 500). With few seeds it is too narrow rather than
absurdly wide: for normal returns it holds the true mean about 76% of the time at 3 seeds, 80% at 4 and 90%
at 10. Below MIN_SEEDS there is no interval: with 2 seeds the bootstrap gives their range, and the
t-interval their mean +- 12.7 x half their gap.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SEEDS = 3
RESAMPLES = 10_000  # for the numbers of a report; a plotted band takes fewer (``resamples``)
MAX_DRAWS = 2_000_000  # resamples x values at most (fewer resamples for very many values)
CHUNK = 4_000_000  # resampled means held at once


def resample_weights(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """[resamples, n]: how many times each of n values is drawn in each resample (n draws with replacement)."""
    drawn = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    cells = (np.arange(resamples)[:, None] * n + drawn).ravel()
    return np.bincount(cells, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def bootstrap_band(values, resamples: int = RESAMPLES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``values`` [seeds, ...] (NaN: missing) -> (mean, low, high) over the first axis, of the finite values:
    the mean and its 95% percentile-bootstrap interval; low and high are NaN where fewer than MIN_SEEDS
    values are finite. The same resamples serve every position (whole seeds are resampled)."""
    x = np.asarray(values, np.float64)
    flat = x.reshape(x.shape[0], -1)
    finite = np.isfinite(flat)
    zeroed = np.where(finite, flat, 0.0)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = zeroed.sum(axis=0) / count
    low, high = np.full(mean.shape, math.nan), np.full(mean.shape, math.nan)
    columns = np.flatnonzero(count >= MIN_SEEDS)
    if columns.size:
        weights = resample_weights(x.shape[0], min(resamples, max(1000, MAX_DRAWS // x.shape[0])))
        step = max(1, CHUNK // len(weights))
        for start in range(0, columns.size, step):
            cols = columns[start : start + step]
            with np.errstate(invalid="ignore", divide="ignore"):
                means = (weights @ zeroed[:, cols]) / (weights @ finite[:, cols])  # NaN: only missing seeds drawn
            percentile = np.nanpercentile if np.isnan(means).any() else np.percentile
            low[cols], high[cols] = percentile(means, [2.5, 97.5], axis=0)
    shape = x.shape[1:]
    return mean.reshape(shape), low.reshape(shape), high.reshape(shape)


def interval(values) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite values (None counts as missing) and its 95% percentile-bootstrap
    interval; NaN ends below MIN_SEEDS values, all NaN for none."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean, low, high = bootstrap_band(x[:, None])
    return float(mean[0]), float(low[0]), float(high[0])


def too_few(n: int) -> str:
    """What a report says instead of an interval over ``n`` seeds."""
    return f"n={n}: too few seeds for an interval (at least {MIN_SEEDS})"
