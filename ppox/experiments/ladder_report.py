"""The ladder's report folder: curves.png, kl_and_clip_fraction.png, table.md and results.json, and the curve
helpers the sweep report shares (``smoothed``, ``steps_to``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ppox.config.config import Config
from ppox.experiments.plots import band, pyplot


def smoothed(returns: np.ndarray, counts: np.ndarray, window: int = 10) -> np.ndarray:
    """[seeds, updates]: episode-weighted mean return over a trailing window of updates (NaN before any)."""
    r, c = np.nan_to_num(returns.astype(np.float64)), np.nan_to_num(counts.astype(np.float64))
    kernel = np.ones(window)
    num = np.array([np.convolve(x, kernel)[: len(x)] for x in r * c])
    den = np.array([np.convolve(x, kernel)[: len(x)] for x in c])
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def steps_to(curve: np.ndarray, steps: np.ndarray, threshold: float | None):
    if threshold is None:
        return None
    reached = np.flatnonzero(np.nan_to_num(curve, nan=-np.inf) >= threshold)
    return int(steps[reached[0]]) if reached.size else None


def write_report(
    out: Path,
    env: str,
    preset: Config,
    seeds: int,
    results: list[dict],
    threshold: float | None,
    interrupted: bool = False,
) -> Path:
    """The report folder: curves.png/.svg, kl_and_clip_fraction.png/.svg, table.md, results.json, metrics.npz
    (of the rungs that finished, if a signal stopped the ladder; the drift plot needs rungs 6 and 7)."""
    steps = (np.arange(results[0]["metrics"]["episode_return"].shape[1]) + 1) * preset.batch_size
    rows = _plot_curves(out, env, seeds, results, steps, threshold)
    drift = _plot_drift(out, results[5], results[6], steps) if len(results) >= 7 else {}
    _write_table(out, env, seeds, rows, drift, steps, threshold)
    if interrupted:
        with open(out / "table.md", "a") as f:
            f.write(f"\nStopped by a signal after {len(results)} of 8 rungs.\n")
    # every rung's per-update metrics [seeds, updates], for other plots (np.load(..., allow_pickle=False))
    arrays = {
        f"rung{i + 1}/{k}": np.asarray(v, np.float32)
        for i, res in enumerate(results)
        for k, v in res["metrics"].items()
    }
    np.savez_compressed(out / "metrics.npz", **arrays)  # type: ignore[arg-type]  # (numpy's stub: **kwds)
    (out / "results.json").write_text(
        json.dumps(
            {
                "env": env,
                "seeds": seeds,
                "total_timesteps": int(steps[-1]),
                "threshold": threshold,
                "rungs": rows,
                "drift": drift,
                "interrupted": interrupted,
                "preset": json.loads(preset.to_json()),
            },
            indent=2,
            default=_jsonable,
        )
    )
    return out


def _plot_curves(out: Path, env: str, seeds: int, results: list[dict], steps, threshold) -> list[dict]:
    """Learning curves, one per rung, with 95% bands over seeds; returns the table's rows."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(12, 5.5))
    rows = []
    for res in results:
        curves = smoothed(res["metrics"]["episode_return"], res["metrics"]["episode_count"])
        mean, lo, hi = band(curves)
        (line,) = ax.plot(steps, mean, label=res["rung"], lw=1.5)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
        finals = res["final"]
        rows.append(
            {
                "rung": res["rung"],
                "final_return_mean": float(np.nanmean(finals)),
                "final_return_std": float(np.nanstd(finals)),
                "final_return_per_seed": [round(float(x), 2) for x in finals],
                "steps_to_threshold": steps_to(mean, steps, threshold),
                "wall_s": round(res["wall_s"], 1),
                "changes": res["changes"],
            }
        )
    if threshold is not None:
        ax.axhline(threshold, color="gray", ls=":", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("environment steps")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_ylabel("episodic return (mean over seeds, 95% band)")
    ax.set_title(f"PPO ladder on {env}, {seeds} seeds per rung")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig(out / f"curves{suffix}", dpi=120)
    plt.close(fig)
    return rows


def _plot_drift(out: Path, unclipped: dict, clipped: dict, steps) -> dict:
    """How far the policy moves from the one that collected the batch: unclipped reuse against the clip."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, title) in zip(
        axes,
        (
            ("approx_kl", "approx KL(pi_old || pi) per update"),
            ("clip_fraction", "fraction of samples with |r - 1| > eps"),
        ),
    ):
        for res in (unclipped, clipped):
            mean, lo, hi = band(res["metrics"][name].astype(np.float64))
            if name == "approx_kl":  # a log axis: keep the band's lower edge above zero
                lo = np.maximum(lo, mean / 10)
            (line,) = ax.plot(steps, mean, label=res["rung"], lw=1.3)
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("environment steps")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        if name == "approx_kl":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig(out / f"kl_and_clip_fraction{suffix}", dpi=120)
    plt.close(fig)
    return {
        res["rung"]: {
            "approx_kl_mean": float(np.nanmean(res["metrics"]["approx_kl"])),
            "clip_fraction_mean": float(np.nanmean(res["metrics"]["clip_fraction"])),
        }
        for res in (unclipped, clipped)
    }


def _write_table(out: Path, env: str, seeds: int, rows: list[dict], drift: dict, steps, threshold) -> None:
    table = [
        f"# PPO ladder: {env}, {seeds} seeds per rung, {int(steps[-1]):,} steps each",
        "",
        f"Final return: mean return of the training episodes that ended in the last tenth of the run, "
        f"per seed; mean +- std over seeds. Steps to {threshold if threshold is not None else '-'}: first "
        "step where the seed-mean of the smoothed curve reaches it. Wall: all seeds of the rung, "
        "compilation included.",
        "",
        "| rung | final return | steps to threshold | wall s |",
        "|---|---|---|---|",
    ]
    for row in rows:
        reached = "-" if row["steps_to_threshold"] is None else f"{row['steps_to_threshold']:,}"
        table.append(
            f"| {row['rung']} | {row['final_return_mean']:.1f} +- {row['final_return_std']:.1f} | "
            f"{reached} | {row['wall_s']:.1f} |"
        )
    table += [
        "",
        "Drift from the collecting policy (mean over all updates and seeds):",
        "",
        "| rung | approx KL | clip fraction |",
        "|---|---|---|",
    ]
    for name, d in drift.items():
        table.append(f"| {name} | {d['approx_kl_mean']:.4f} | {d['clip_fraction_mean']:.3f} |")
    (out / "table.md").write_text("\n".join(table) + "\n")


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    raise TypeError(type(x))
