"""The report of a sweep folder: a table, final return against each swept field, best and worst curves, and
the best configuration as a config file (``ppox train --config REPORT/best_config.json``).

Final return: per seed, the mean return of the training episodes that ended in the last tenth of the run.
Per configuration: the mean over seeds and its 95% percentile-bootstrap interval (``ppox.experiments.intervals``:
within the seeds' range; none below 3 seeds).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ppox.config.config import Config
from ppox.experiments.intervals import RESAMPLES, interval, too_few
from ppox.experiments.ladder import THRESHOLDS
from ppox.experiments.ladder_report import smoothed, steps_to
from ppox.experiments.plots import band, pyplot, quiet_nan_warnings, save_png
from ppox.experiments.sweep_folder import finished, read_plan
from ppox.experiments.sweep_space import describe, flag_name
from ppox.utils.files import atomic_write_text


def read_records(folder: Path) -> tuple[dict, list[dict]]:
    """(sweep.json as ppox writes it, the done records of its configurations by index): each file checked
    (ConfigError, one line, naming one that is not as ppox wrote it); other files in done/ are not read."""
    plan = read_plan(folder)
    return json.loads(json.dumps(plan.to_json())), finished(folder, plan)


def write_report(folder: Path, threshold: float | None = None) -> Path:
    """Write FOLDER/report/ (table.md, results.json, final_vs_FIELD.png, heatmap.png, best_worst.png,
    best_config.json) from the configurations done so far; returns the report folder."""
    folder = Path(folder)
    spec, records = read_records(folder)
    if not records:
        raise FileNotFoundError(f"{folder}: no configuration has finished yet")
    out = folder / "report"
    out.mkdir(exist_ok=True)
    env = spec["base"]["env"]
    threshold = THRESHOLDS.get(env) if threshold is None else threshold
    rows = [row_of(r, threshold) for r in records]
    ranked = sorted(rows, key=rank_key)
    best, worst = ranked[0], ranked[-1]
    best_config = Config.from_dict(spec["base"]).replace(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in best["overrides"].items()}
    )
    atomic_write_text(out / "best_config.json", best_config.to_json())
    axes = [a["name"] for a in spec["axes"]]
    for name in axes:
        plot_against(out, name, spec, rows)
    if len(axes) == 2 and all(a["low"] is None for a in spec["axes"]):
        heatmap(out, spec, rows)
    plot_best_worst(out, env, records, best, worst, threshold)
    write_table(out, spec, ranked, threshold, len(records))
    summary = {
        "env": env,
        "threshold": threshold,
        "configurations": len(spec["combos"]),
        "done": len(records),
        "seeds": spec["seeds"],
        "interval": f"95% percentile bootstrap over seeds ({RESAMPLES:,} resamples); null below 3 seeds",
        "best": best,
        "worst": worst,
        "rows": ranked,
    }
    atomic_write_text(out / "results.json", json.dumps(_clean(summary), indent=1))
    return out


def rank_key(row: dict) -> tuple:
    """Best first: the higher mean final return; on a tie (e.g. every seed at CartPole's 500), the fewer steps to
    the threshold, then the higher lower end of the interval."""
    mean, low = row["final_mean"], row["ci95"][0]
    return (
        math.inf if math.isnan(mean) else -round(mean, 6),
        math.inf if row["steps_to_threshold"] is None else row["steps_to_threshold"],
        math.inf if math.isnan(low) else -low,
    )


def row_of(record: dict, threshold: float | None) -> dict:
    mean, low, high = interval(record["final_return"])
    with quiet_nan_warnings():
        seed_mean = np.nanmean(curve_of(record), axis=0)
    return {
        "index": record["index"],
        "overrides": record["overrides"],
        "final_mean": mean,
        "ci95": [low, high],
        "final_per_seed": record["final_return"],
        "wall_s": record["wall_s"],
        "steps_to_threshold": steps_to(seed_mean, steps_of(record), threshold),
    }


def curve_of(record: dict) -> np.ndarray:
    """[seeds, updates]: the episode-weighted return over a trailing window of 10 updates."""
    returns, counts = (np.array(record["curves"][k], np.float64) for k in ("episode_return", "episode_count"))
    return smoothed(returns, counts)


def steps_of(record: dict) -> np.ndarray:
    return (np.arange(len(record["curves"]["episode_return"][0])) + 1) * record["batch_size"]


def plot_against(out: Path, name: str, spec: dict, rows: list[dict]) -> None:
    """Final return against one swept field: the mean over seeds and over the other fields' values, with its 95%
    band (lists), or each configuration's mean and interval (ranges); log axis for positive ranges of values."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    values = sorted({_key(r["overrides"][name]) for r in rows}, key=_order)
    numeric = all(isinstance(v, (int, float)) for v in values)
    xs = values if numeric else list(range(len(values)))
    if len(values) <= 12:
        pooled = [
            interval([f for r in rows if _key(r["overrides"][name]) == v for f in r["final_per_seed"]]) for v in values
        ]
        mean, low, high = (np.array(c, np.float64) for c in zip(*pooled))
        ax.plot(xs, mean, "o-", color="black", lw=2, label="all configurations with this value")
        with quiet_nan_warnings():
            ax.fill_between(xs, low, high, color="gray", alpha=0.3, label="95% bootstrap interval")
        _lines_per_other(ax, name, spec, rows, xs, values)
    else:
        for r in rows:
            x = r["overrides"][name]
            mean, (low, high) = r["final_mean"], r["ci95"]
            ax.errorbar(
                [x],
                [mean],
                yerr=[[mean - low], [high - mean]],
                fmt="o",
                color="tab:blue",
                alpha=0.7,
                capsize=2,
                label="a configuration: mean and 95% bootstrap interval" if r is rows[0] else None,
            )
    if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(xs, [str(v) for v in values])
    ax.set_xlabel(flag_name(name))
    ax.set_ylabel("final return (mean over seeds)")
    ax.set_title(f"{spec['base']['env']}: final return against {flag_name(name)}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out / f"final_vs_{name}.png")
    plt.close(fig)


def _lines_per_other(ax, name: str, spec: dict, rows: list[dict], xs, values) -> None:
    """With exactly two swept lists: one thin line (and band) per value of the other field."""
    others = [a["name"] for a in spec["axes"] if a["name"] != name]
    if len(others) != 1 or any(a["low"] is not None for a in spec["axes"]):
        return
    other = others[0]
    for w in sorted({_key(r["overrides"][other]) for r in rows}, key=_order):
        stats = [
            interval(
                [
                    f
                    for r in rows
                    if _key(r["overrides"][name]) == v and _key(r["overrides"][other]) == w
                    for f in r["final_per_seed"]
                ]
            )
            for v in values
        ]
        mean, low, high = (np.array(c, np.float64) for c in zip(*stats))
        (line,) = ax.plot(xs, mean, ".-", lw=1, label=f"{flag_name(other)} {w}")
        with quiet_nan_warnings():
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.12)


def heatmap(out: Path, spec: dict, rows: list[dict]) -> None:
    """Mean final return over the grid of the two swept fields."""
    plt = pyplot()
    (a, b) = (x["name"] for x in spec["axes"])
    av = sorted({_key(r["overrides"][a]) for r in rows}, key=_order)
    bv = sorted({_key(r["overrides"][b]) for r in rows}, key=_order)
    grid = np.full((len(av), len(bv)), np.nan)
    for r in rows:
        grid[av.index(_key(r["overrides"][a])), bv.index(_key(r["overrides"][b]))] = r["final_mean"]
    fig, ax = plt.subplots(figsize=(1.3 * len(bv) + 3, 0.9 * len(av) + 2))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < np.nanmean(grid) else "black")
    ax.set_xticks(range(len(bv)), [str(v) for v in bv])
    ax.set_yticks(range(len(av)), [str(v) for v in av])
    ax.set_xlabel(flag_name(b))
    ax.set_ylabel(flag_name(a))
    ax.set_title(f"{spec['base']['env']}: mean final return over {spec['seeds']} seeds")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    save_png(fig, out / "heatmap.png")
    plt.close(fig)


def plot_best_worst(out: Path, env: str, records: list[dict], best: dict, worst: dict, threshold) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    by_index = {r["index"]: r for r in records}
    for row, what in ((best, "best"), (worst, "worst")):
        record = by_index[row["index"]]
        mean, low, high = band(curve_of(record))
        steps = steps_of(record)
        (line,) = ax.plot(steps, mean, label=f"{what}: {describe(row['overrides'])} ({row['final_mean']:.1f})")
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="gray", ls=":", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episodic return (mean over seeds, 95% band)")
    ax.set_title(f"{env}: the best and the worst configuration")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, out / "best_worst.png")
    plt.close(fig)


def write_table(out: Path, spec: dict, ranked: list[dict], threshold, done: int) -> None:
    lines = [
        f"# Sweep: {spec['base']['env']}, {done} of {len(spec['combos'])} configurations x {spec['seeds']} seeds",
        "",
        "Final return: per seed, the mean return of the training episodes that ended in the last tenth of "
        "the run; mean over seeds [95% interval: percentile bootstrap of the mean, seeds resampled "
        f"{RESAMPLES:,} times; within the seeds' range; with few seeds narrower than a true 95% (about 80% "
        "coverage at 4 seeds); none below 3 seeds]. Steps to threshold "
        f"({threshold if threshold is not None else '-'}): first step where the seed-mean of the smoothed "
        "curve reaches it. Wall: the configuration's share of its batch (fused) or its processes (host), "
        "compilation included.",
        "",
        "| rank | configuration | final return [95% interval] | steps to threshold | wall s |",
        "|---|---|---|---|---|",
    ]
    for rank, row in enumerate(ranked, 1):
        reached = "-" if row["steps_to_threshold"] is None else f"{row['steps_to_threshold']:,}"
        low, high = row["ci95"]
        seeds = sum(1 for v in row["final_per_seed"] if v is not None and math.isfinite(v))
        ci = f" ({too_few(seeds)})" if math.isnan(low) else f" [{low:.1f}, {high:.1f}]"
        lines.append(
            f"| {rank} | {describe(row['overrides'])} | {row['final_mean']:.1f}{ci} | {reached} | {row['wall_s']:.1f} |"
        )
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")


def _key(value):
    return tuple(value) if isinstance(value, list) else value


def _order(value):
    return (0, value, "") if isinstance(value, (int, float)) and value is not None else (1, 0, str(value))


def _clean(x):
    """JSON-able: NumPy numbers as Python ones, NaN as null."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    return None if isinstance(x, float) and math.isnan(x) else x
