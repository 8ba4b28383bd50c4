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
from ppox.experiments.ladder_report import write_report
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
    results: list[dict] = []
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
