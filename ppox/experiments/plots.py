"""Figures as image files: the clipped objective explained, run folders' curves overlaid, an Optuna study's
history and parameter importances.

Everything here draws with matplotlib's Agg backend (no display needed) and writes PNG and SVG.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import warnings
from pathlib import Path

import matplotlib
import numpy as np

from ppox.utils.files import atomic_write_bytes

matplotlib.use("Agg")  # no display needed; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

# metrics.csv column -> panel title, in the order the panels are drawn
PANELS = {
    "episode_return": ("episodic return", "return per episode"),
    "policy_loss": ("policy loss", "-clipped surrogate"),
    "value_loss": ("value loss", "(V - G)^2"),
    "entropy": ("entropy", "nats"),
    "approx_kl": ("approx KL", "KL(pi_old || pi), nats"),
    "clip_fraction": ("clip fraction", "fraction of samples"),
    "explained_variance": ("explained variance", "1 - Var[G - V] / Var[G]"),
}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    return plt


def _save(fig, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    return paths


def save_png(fig, path: Path) -> None:
    """``fig`` as a PNG file at ``path``, written atomically: a link in its place is replaced, never followed."""
    data = io.BytesIO()
    fig.savefig(data, format="png", dpi=120)
    atomic_write_bytes(path, data.getvalue())


def clipped_objective(ratio: np.ndarray, advantage: float, eps: float) -> np.ndarray:
    """min(r A, clip(r, 1 - eps, 1 + eps) A): PPO's per-sample surrogate."""
    return np.minimum(ratio * advantage, np.clip(ratio, 1 - eps, 1 + eps) * advantage)


def explain_clip(eps: float, out: Path) -> list[Path]:
    """The clipped surrogate against the ratio r for A = +1 and A = -1, written to ``out`` (.png, .svg).

    Dashed: the unclipped r A. Solid: min(r A, clip(r, 1-eps, 1+eps) A). Shaded: the trust band
    [1-eps, 1+eps]. Hatched: where the objective is flat in r, so the sample gives no gradient (for
    A > 0 once r > 1+eps, for A < 0 once r < 1-eps)."""
    plt = pyplot()
    r = np.linspace(0.0, 2.0, 801)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, advantage in zip(axes, (1.0, -1.0)):
        ax.axvspan(1 - eps, 1 + eps, color="tab:green", alpha=0.15, label=f"[1-eps, 1+eps], eps={eps:g}")
        ax.plot(r, r * advantage, "--", color="gray", label="unclipped r A")
        ax.plot(r, clipped_objective(r, advantage, eps), color="tab:blue", lw=2.2, label="clipped min(r A, clip(r) A)")
        flat = (r > 1 + eps) if advantage > 0 else (r < 1 - eps)
        lo, hi = (1 + eps, 2.0) if advantage > 0 else (0.0, 1 - eps)
        ax.axvspan(
            lo, hi, facecolor="none", edgecolor="tab:red", hatch="//", alpha=0.5, lw=0, label="zero gradient (clipped)"
        )
        ax.plot(
            r[flat],
            clipped_objective(r[flat], advantage, eps),
            color="tab:red",
            lw=2.2,
            label="clipped segment: flat in r, no gradient",
        )
        ax.axvline(1.0, color="black", lw=0.6)
        ax.set_xlabel("probability ratio r = pi(a|s) / pi_old(a|s)")
        ax.set_ylabel("objective")
        ax.set_title(f"A {'>' if advantage > 0 else '<'} 0 (A = {advantage:+g})")
        ax.legend(loc="upper left" if advantage > 0 else "lower left", fontsize=8)
    fig.suptitle("PPO's clipped surrogate for one sample")
    fig.tight_layout()
    paths = _save(fig, out)
    plt.close(fig)
    return paths


def read_run(run: Path) -> dict[str, np.ndarray]:
    """metrics.csv of a run folder as columns [seeds, updates] (``global_step`` and ``update``: [updates])."""
    path = Path(run) / "metrics.csv" if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no metrics.csv (is it a ppox run folder?)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no updates recorded yet")

    def number(x: str) -> float:
        try:
            return float(x)
        except (TypeError, ValueError):
            return math.nan

    columns = {k: np.array([number(r[k]) for r in rows]) for k in rows[0]}
    updates, seeds = np.unique(columns["update"]), np.unique(columns["seed"])
    u_index, s_index = np.searchsorted(updates, columns["update"]), np.searchsorted(seeds, columns["seed"])
    out = {"update": updates, "global_step": np.unique(columns["global_step"])}
    for name, values in columns.items():
        if name not in out and name != "seed":
            grid = np.full((len(seeds), len(updates)), math.nan)
            grid[s_index, u_index] = values
            out[name] = grid
    return out


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and its 95% confidence band (normal approximation: 1.96 standard errors)."""
    with np.errstate(invalid="ignore"), quiet_nan_warnings():
        mean = np.nanmean(curves, axis=0)
        n = np.maximum(np.sum(np.isfinite(curves), axis=0), 1)
        half = 1.96 * np.nanstd(curves, axis=0, ddof=1 if curves.shape[0] > 1 else 0) / np.sqrt(n)
    return mean, mean - half, mean + half


@contextlib.contextmanager
def quiet_nan_warnings():
    """Silence NumPy's 'mean of empty slice' warnings: all-NaN columns are expected (no episode ended)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def plot_runs(runs: list[Path], out: Path, labels: list[str] | None = None) -> list[Path]:
    """Every panel of PANELS for each run, overlaid, against env steps; written to ``out`` (.png, .svg).
    A multi-seed run is drawn as its mean over seeds with a 95% band."""
    plt = pyplot()
    data = [read_run(r) for r in runs]
    labels = labels or [Path(r).name for r in runs]
    cols = 4
    rows = math.ceil(len(PANELS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows))
    for ax, (name, (title, unit)) in zip(axes.ravel(), PANELS.items()):
        for d, label in zip(data, labels):
            if name in d:
                mean, lo, hi = band(d[name])
                seeds = d[name].shape[0]
                (line,) = ax.plot(
                    d["global_step"],
                    mean,
                    lw=1.2,
                    label=label if seeds == 1 else f"{label} (mean of {seeds} seeds, 95% band)",
                )
                if seeds > 1:
                    ax.fill_between(d["global_step"], lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(unit)
    for ax in axes.ravel()[len(PANELS) :]:
        ax.axis("off")
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    spare = axes.ravel()[len(PANELS)] if len(PANELS) < axes.size else None
    (spare or fig).legend(handles, names, loc="center" if spare else "lower right", fontsize=8)
    fig.tight_layout()
    paths = _save(fig, out)
    plt.close(fig)
    return paths


def plot_study(study, folder: Path) -> None:
    """Optuna's optimisation history and parameter importances, as PNG files (importances need two finished
    trials and a varied parameter)."""
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    for name, draw in (
        ("history", optuna_plots.plot_optimization_history),
        ("importance", optuna_plots.plot_param_importances),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
        fig = ax.get_figure(root=True)
        if fig is None:
            continue
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
        save_png(fig, folder / f"{name}.png")
        plt.close(fig)
