"""The sweep report's 95% interval over seeds (issue 33 item 8): a percentile bootstrap, so within the seeds'
range (never a band above CartPole's 500), checked against the exact bootstrap distribution (every resample
enumerated) and SciPy's; below 3 seeds the report says that there are too few for an interval."""

import itertools
import math

import numpy as np
import pytest

from ppox.experiments.intervals import MIN_SEEDS, bootstrap_band, interval
from ppox.experiments.plots import band
from ppox.experiments.sweep_report import row_of, write_table


def exact_bootstrap_quantile(values, p: float) -> float:
    """The p-quantile of the mean of n draws with replacement from ``values``: all n^n resamples, equally likely."""
    means = sorted(sum(pick) / len(values) for pick in itertools.product(values, repeat=len(values)))
    return means[max(0, math.ceil(p * len(means)) - 1)]


def record(finals: list[float]) -> dict:
    curves = [[f] * 12 for f in finals]
    return {"index": 0, "overrides": {"learning_rate": 3e-4}, "final_return": finals, "wall_s": 1.0,
            "batch_size": 512, "curves": {"episode_return": curves, "episode_count": [[1.0] * 12 for _ in finals]}}


def test_two_seeds_get_no_interval_and_the_table_says_why(tmp_path):
    """The issue's 383.8 [-1018.1, 1785.6]: two CartPole seeds, 273.5 and 494.1, had a t-interval past 500."""
    row = row_of(record([273.5, 494.1]), threshold=475.0)
    assert row["final_mean"] == pytest.approx(383.8) and all(math.isnan(x) for x in row["ci95"])
    write_table(tmp_path, {"base": {"env": "CartPole-v1"}, "combos": [{}], "seeds": 2}, [row], 475.0, 1)
    table = (tmp_path / "table.md").read_text()
    assert "| 383.8 (n=2: too few seeds for an interval (at least 3)) |" in table
    assert "percentile bootstrap" in table


@pytest.mark.parametrize("values", [[500.0, 500.0, 100.0], [273.5, 494.1, 500.0, 12.0], [9.5, 10.0, 10.5, 11.0, 30.0]])
def test_the_interval_lies_within_the_seeds_range_and_matches_the_exact_bootstrap(values):
    mean, low, high = interval(values)
    assert mean == pytest.approx(np.mean(values))
    assert min(values) <= low <= mean <= high <= max(values)
    # 10,000 resamples: each end within a percentile of the exact distribution's 2.5% / 97.5% quantiles
    assert exact_bootstrap_quantile(values, 0.015) <= low <= exact_bootstrap_quantile(values, 0.035)
    assert exact_bootstrap_quantile(values, 0.965) <= high <= exact_bootstrap_quantile(values, 0.985)


def test_the_interval_agrees_with_scipys_percentile_bootstrap():
    stats = pytest.importorskip("scipy.stats")
    values = np.random.default_rng(3).normal(200.0, 50.0, size=16)
    ref = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=20_000, random_state=0)
    _, low, high = interval(values)
    spread = values.std() / math.sqrt(len(values))
    assert abs(low - ref.confidence_interval.low) < 0.1 * spread
    assert abs(high - ref.confidence_interval.high) < 0.1 * spread


def test_a_plotted_band_is_the_same_bootstrap_per_step_and_none_below_three_seeds():
    curves = np.array([[1.0, 5.0, np.nan], [2.0, 6.0, 3.0], [4.0, 9.0, 4.0], [8.0, 1.0, 5.0]])
    mean, low, high = bootstrap_band(curves)
    for j in range(2):
        assert (mean[j], low[j], high[j]) == pytest.approx(interval(curves[:, j]))
        assert curves[:, j].min() <= low[j] <= high[j] <= curves[:, j].max()
    assert mean[2] == pytest.approx(4.0) and 3.0 <= low[2] <= high[2] <= 5.0  # 3 finite seeds
    two = band(curves[:2, :2])
    assert np.allclose(two[0], [1.5, 5.5]) and np.isnan(two[1]).all() and np.isnan(two[2]).all()
    assert MIN_SEEDS == 3 and all(np.isnan(interval([1.0, 2.0])[1:]))
