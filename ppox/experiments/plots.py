"""Figures as image files: the clipped objective explained, run folders' curves overlaid, an Optuna study's
history and parameter importances.

Everything here draws with matplotlib's Agg backend (no display needed) and writes PNG and SVG.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import warnings
from pathlib import Path

import matplotlib
import numpy as np

from ppox.experiments.intervals import MIN_SEEDS, bootstrap_band
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
SELF_PLAY_PANELS = {  # columns only self-play runs write (ppox.drivers.selfplay)
    "selfplay_elo": ("Elo against its past selves", "rating (self-play)"),
    "selfplay_pool_score": ("score against the pool", "(wins + draws / 2) / games"),
}
LM_PANELS = {  # columns only LM runs write
    "kl_ref": ("KL to the reference", "KL(pi || pi_ref), nats"),
    "eos_fraction": ("completions that end", "fraction ending in end-of-sequence"),
}
REWARD_PREFIX = "rewards/"  # an LM run's columns of each of several rewards (ppox.language.rewards)
LM_NAMES = {"episode_return": ("score", "reward per completion")}  # what a panel shows for LM runs
NOT_SHOWN = {  # settings a legend leaves out: what names the run, and what does not change its curves
    *("kind", "env", "model", "run_dir", "run_name", "save", "progress", "tensorboard", "track"),
    *("checkpoint_every", "keep_checkpoints"),
}
BAND_RESAMPLES = 1000  # (a drawn band; a report's numbers take intervals.RESAMPLES)


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
    """Mean over seeds (axis 0) and its 95% percentile-bootstrap band (``intervals.bootstrap_band``: within the
    seeds' range; NaN where fewer than 3 seeds have a value)."""
    return bootstrap_band(curves, BAND_RESAMPLES)


@contextlib.contextmanager
def quiet_nan_warnings():
    """Silence NumPy's 'mean of empty slice' warnings: all-NaN columns are expected (no episode ended)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def plot_runs(runs: list[Path], out: Path, labels: list[str] | None = None) -> list[Path]:
    """``draw_runs`` written to ``out`` (.png, .svg); the paths written."""
    fig = draw_runs(runs, labels)
    paths = _save(fig, out)
    plt.close(fig)
    return paths


def draw_runs(runs: list[Path], labels: list[str] | None = None):
    """The figure of each panel (PANELS, SELF_PLAY_PANELS, then LM_PANELS) that some run has values for, the runs
    overlaid against env steps (completions for LM runs); a multi-seed run is its mean over seeds with a 95% band.
    Each run is labelled by its env and the settings that differ among the plotted runs of its kind."""
    data = [read_run(r) for r in runs]
    settings = [read_settings(r) for r in runs]
    kinds = ["lm" if s.get("kind") == "lm" or "kl_ref" in d else "rl" for s, d in zip(settings, data)]
    labels = labels or run_labels(runs, settings, kinds)
    components = sorted({n for d in data for n in d if n.startswith(REWARD_PREFIX)})  # (an LM run's several rewards)
    names = [
        n
        for n in [*PANELS, *SELF_PLAY_PANELS, *LM_PANELS, *components]
        if any(n in d and np.isfinite(d[n]).any() for d in data)
    ]
    cols, rows = 4, max(1, math.ceil(len(names) / 4))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, names):
        drawn = [i for i, d in enumerate(data) if name in d]
        panel_kinds = {kinds[i] for i in drawn}
        title, unit = _panel_names(name, panel_kinds)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_xlabel("completions" if panel_kinds == {"lm"} else "environment steps")
        lm_ax = ax.twiny() if panel_kinds == {"rl", "lm"} else ax  # (completions on a second x axis, on top)
        if lm_ax is not ax:
            lm_ax.set_xlabel("completions (LM runs)")
        for i in drawn:
            _draw_run(lm_ax if kinds[i] == "lm" else ax, data[i][name], data[i]["global_step"], labels[i], f"C{i % 10}")
    for ax in axes[len(names) :]:
        ax.axis("off")
    shown: dict = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            shown.setdefault(label, handle)
    spare = axes[len(names)] if len(names) < axes.size else None
    (spare or fig).legend(list(shown.values()), list(shown), loc="center" if spare else "lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _draw_run(ax, values: np.ndarray, steps: np.ndarray, label: str, color: str) -> None:
    """One run's curve on ``ax``: its mean over seeds, with the 95% band where it has 3 seeds or more."""
    mean, low, high = band(values)
    seeds = values.shape[0]
    if seeds >= MIN_SEEDS:
        label = f"{label} (mean of {seeds} seeds, 95% band)"
    elif seeds > 1:
        label = f"{label} (mean of {seeds} seeds; too few for a band)"
    ax.plot(steps, mean, lw=1.2, label=label, color=color)
    if seeds >= MIN_SEEDS:
        with quiet_nan_warnings():
            ax.fill_between(steps, low, high, color=color, alpha=0.2)


def _panel_names(name: str, kinds: set) -> tuple[str, str]:
    """(title, y label) of a panel: PANELS' names, LM_PANELS' names, LM_NAMES where only LM runs are drawn,
    both where RL and LM runs share it."""
    if name.startswith(REWARD_PREFIX):
        return f"reward {name[len(REWARD_PREFIX) :]}", "mean score per completion"
    rl = {**PANELS, **SELF_PLAY_PANELS, **LM_PANELS}[name]
    lm = LM_NAMES.get(name, rl)
    if kinds == {"lm"}:
        return lm
    return rl if "lm" not in kinds or lm == rl else (f"{rl[0]}; LM: {lm[0]}", f"{rl[1]}; LM: {lm[0]}")


def read_settings(run) -> dict:
    """RUN/config.json (beside a metrics.csv given as a file) as a dict; {} where there is none or it is not a
    JSON object."""
    path = Path(run) / "config.json" if Path(run).is_dir() else Path(run).parent / "config.json"
    try:
        if path.stat().st_size > 1_000_000:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def run_labels(runs: list[Path], settings: list[dict], kinds: list[str]) -> list[str]:
    """Each run's legend text: its env (lm-MODEL for an LM run; the folder name without config.json) and the
    settings, as flags, whose values differ among the plotted runs of its kind; the folder name is added to
    labels that are still alike."""
    labels = []
    for i, config in enumerate(settings):
        peers = [s for s, kind in zip(settings, kinds) if kind == kinds[i] and s]
        keys = [k for k in config if k not in NOT_SHOWN and len({_text(s.get(k)) for s in peers}) > 1]
        name = _run_name(config, Path(runs[i]))
        labels.append(" ".join([name] + [_setting(k, config[k]) for k in keys]))
    return [
        f"{label} ({_folder(Path(run)).name})" if labels.count(label) > 1 else label for label, run in zip(labels, runs)
    ]


def _run_name(config: dict, run: Path) -> str:
    if config.get("kind") == "lm" and isinstance(config.get("model"), str):
        return "lm-" + (config["model"].rstrip("/").split("/")[-1] or "model")
    return config["env"] if isinstance(config.get("env"), str) else _folder(run).name


def _folder(run: Path) -> Path:
    return run if run.is_dir() else run.parent


def _setting(key: str, value) -> str:
    """A setting as its flag: --learning-rate 0.001, --norm-obs / --no-norm-obs, --hidden-sizes 64x64."""
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + key.replace("_", "-")
    return f"{flag} {_text(value)}"


def _text(value) -> str:
    if isinstance(value, list):
        return "x".join(map(_text, value))
    text = "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 32 else "..." + text[-29:]


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
