"""The ablation ladder: PPO built up from REINFORCE one repair at a time, on the user's own env.

Rungs (each adds one thing to the rung above). Value clipping and advantage normalisation stay off
throughout (normalising advantages subtracts the batch mean, itself a baseline, which would blur the
first rungs); everything else (learning rate and its annealing, network, gamma) is the env's preset.

1. REINFORCE: the raw return G_t, one full-batch gradient step per rollout (no critic used).
2. + a learned value baseline: the Monte Carlo advantage G_t - V(s_t).
3. TD(0) advantage r_t + gamma V(s_{t+1}) - V(s_t).
4. n-step advantage (n = 5).
5. GAE(lambda) with the preset's lambda (0.95 by default).
6. + several epochs of minibatch reuse of each batch through the importance-sampled surrogate r A,
   unclipped (the preset's epochs and minibatches).
7. + the clip (the preset's clip range, 0.2 by default): this is PPO.
8. + the entropy bonus (the preset's coefficient, 0.01 if it has none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ppox.config.config import Config
from ppox.envs.registry import driver_for
from ppox.experiments.plots import band, pyplot
from ppox.run.training import train
from ppox.utils import signals

# steps-to-threshold defaults: the return at which an env counts as learned
THRESHOLDS = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "Pendulum-v1": -300.0,
    "LunarLander-v3": 200.0,
    "HalfCheetah-v5": 1500.0,
    "Hopper-v5": 2000.0,
    "Walker2d-v5": 2000.0,
}


@dataclasses.dataclass(frozen=True)
class Rung:
    name: str
    changes: dict


def rungs(preset: Config) -> list[Rung]:
    single_step = dict(
        update_epochs=1, num_minibatches=1, clip_coef=None, ent_coef=0.0, vf_clip_coef=None, norm_adv=False
    )
    reuse = dict(
        update_epochs=preset.update_epochs,
        num_minibatches=preset.num_minibatches,
        clip_coef=None,
        ent_coef=0.0,
        vf_clip_coef=None,
        norm_adv=False,
        advantage="gae",
    )
    clip = preset.clip_coef or 0.2
    return [
        Rung("REINFORCE", dict(single_step, advantage="mc", baseline=False)),
        Rung("+ value baseline (MC advantage)", dict(single_step, advantage="mc")),
        Rung("TD(0) advantage", dict(single_step, advantage="td")),
        Rung("n-step advantage (n=5)", dict(single_step, advantage="nstep", nstep_n=5)),
        Rung(f"GAE({preset.gae_lambda:g})", dict(single_step, advantage="gae")),
        Rung(f"+ {preset.update_epochs} epochs x {preset.num_minibatches} minibatches, unclipped", reuse),
        Rung(f"+ clip {clip:g} (PPO)", dict(reuse, clip_coef=clip)),
        Rung(
            f"+ entropy bonus {preset.ent_coef or 0.01:g}",
            dict(reuse, clip_coef=clip, ent_coef=preset.ent_coef or 0.01),
        ),
    ]


def smoothed(returns: np.ndarray, counts: np.ndarray, window: int = 10) -> np.ndarray:
    """[seeds, updates]: episode-weighted mean return over a trailing window of updates (NaN before any)."""
    r, c = np.nan_to_num(returns.astype(np.float64)), np.nan_to_num(counts.astype(np.float64))
    kernel = np.ones(window)
    num = np.array([np.convolve(x, kernel)[: len(x)] for x in r * c])
    den = np.array([np.convolve(x, kernel)[: len(x)] for x in c])
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def run_ladder(
    env: str,
    seeds: int,
    out: Path | None = None,
    total_timesteps: int | None = None,
    threshold: float | None = None,
    progress: bool = True,
) -> Path:
    """Train every rung with ``seeds`` seeds; write the report folder and return its path.

    A signal stops the ladder: the rungs that finished are reported (results.json says "interrupted")."""
    preset = Config.preset(env, seeds=1, save=False, progress=False)
    if total_timesteps is not None:
        preset = preset.replace(total_timesteps=total_timesteps)
    threshold = THRESHOLDS.get(env) if threshold is None else threshold
    out = Path(out) if out else Path("ladders") / f"{env}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    ladder = rungs(preset)
    results = []
    display = _Display(len(ladder), progress)
    cancel = signals.on_hard_exit(lambda: out.rmdir() if not any(out.iterdir()) else None)
    writing = threading.Lock()  # one report writer: this thread, or the signal watcher's

    def report_on_signal() -> int:
        """Under the command line, a signal after a finished rung: the report now (the rung in flight would
        be dropped anyway, and may be compiling for seconds), then exit 0."""
        with writing:
            display.stop()
            write_report(out, env, preset, seeds, list(results), threshold, interrupted=True)
        print((out / "table.md").read_text(), flush=True)
        print("ppox ladder: stopped by a signal; the report holds the rungs that finished", file=sys.stderr)
        print(f"report: {out}/ (curves.png, kl_and_clip_fraction.png, table.md, results.json)")
        return 0

    try:
        with contextlib.ExitStack() as at_stake:
            for i, rung in enumerate(ladder):
                display.start(i, rung.name)
                result = None if signals.STATE.requested else _run_rung(preset, rung, seeds)
                if result is None:
                    break
                results.append(result)
                if len(results) == 1:  # from now on a signal stops the ladder with a report
                    at_stake.enter_context(signals.work_at_stake(save=report_on_signal))
                display.done(i, rung.name, float(np.nanmean(result["final"])), result["wall_s"])
    finally:
        display.stop()
        cancel()
    if not results:
        out.rmdir()
        raise KeyboardInterrupt
    with writing:
        return write_report(out, env, preset, seeds, results, threshold, interrupted=len(results) < len(ladder))


def _run_rung(preset: Config, rung: Rung, seeds: int) -> dict | None:
    """Train one rung (seeds vmapped on the fused driver, one run per seed on the host); None if a signal
    stopped it."""
    config = preset.replace(**rung.changes)
    start = time.perf_counter()
    if driver_for(preset.env, preset.driver, preset.ray) == "fused":
        runs = [train(config.replace(seeds=seeds))]
    else:
        runs = []
        for s in range(seeds):
            runs.append(train(config.replace(seed=preset.seed + s)))
            if runs[-1].interrupted:
                break
    if any(r.interrupted for r in runs):
        return None
    metrics = {k: np.concatenate([r.metrics[k] for r in runs], axis=0) for k in runs[0].metrics}
    return {
        "rung": rung.name,
        "changes": rung.changes,
        "config": json.loads(config.to_json()),
        "metrics": metrics,
        "final": np.concatenate([r.final_return() for r in runs]),
        "wall_s": time.perf_counter() - start,
    }


class _Display:
    """A rich progress bar over the rungs, naming the one that is running."""

    def __init__(self, total: int, enabled: bool):
        self.progress = None
        if enabled:
            self.progress = Progress(
                TextColumn("[bold]ladder"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
            )
            self.task = self.progress.add_task("", total=total)
            self.progress.start()

    def start(self, i: int, name: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"rung {i + 1}: {name} ...")

    def done(self, i: int, name: str, final: float, wall: float) -> None:
        line = f"rung {i + 1}: {name}: final return {final:.1f} ({wall:.0f} s)"
        if self.progress is not None:
            self.progress.console.print(line)
            self.progress.update(self.task, advance=1)
        else:
            print(line, flush=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


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
    np.savez_compressed(
        out / "metrics.npz",
        **{
            f"rung{i + 1}/{k}": np.asarray(v, np.float32)
            for i, res in enumerate(results)
            for k, v in res["metrics"].items()
        },
    )
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
