"""Learning curves of the ppox presets on the fused driver (a report, not a test).

    .venv/bin/python benchmarks/learning_curves.py [--seeds 4] [--envs CartPole-v1,Acrobot-v1,Pendulum-v1]

For each environment: trains its preset with N vmapped seeds, writes docs/curves/ENV.png (mean
episodic return per update with the min-max band over seeds) and docs/curves/results.json
(final return per seed, wall time, and the mean return at each tenth of training).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ppox  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "curves"


def smoothed_returns(result) -> np.ndarray:
    """[seeds, updates]: episode-weighted mean return over a trailing window of updates."""
    from ppox.experiments.ladder_report import smoothed

    return smoothed(result.metrics["episode_return"], result.metrics["episode_count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1,Pendulum-v1")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results_file = OUT / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for env in args.envs.split(","):
        config = ppox.Config.preset(env, seeds=args.seeds, save=False, progress=False)
        result = ppox.train(config)
        curve = smoothed_returns(result)
        steps = (np.arange(curve.shape[1]) + 1) * config.batch_size
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, np.nanmean(curve, axis=0), label=f"mean of {args.seeds} seeds")
        ax.fill_between(steps, np.nanmin(curve, axis=0), np.nanmax(curve, axis=0), alpha=0.25, label="min-max")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episodic return")
        ax.set_title(f"ppox {env} preset (fused driver)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(OUT / f"{env}.png", dpi=110)
        plt.close(fig)
        tenths = [float(np.nanmean(curve[:, max(0, int(round(f * curve.shape[1])) - 1)])) for f in np.arange(1, 11) / 10]
        results[env] = {
            "seeds": args.seeds,
            "total_timesteps": config.num_updates * config.batch_size,
            "wall_time_s_all_seeds": round(result.wall_time, 2),
            "final_return_per_seed": [round(float(x), 1) for x in result.final_return()],
            "mean_return_at_each_tenth": [round(x, 1) for x in tenths],
        }
        print(env, json.dumps(results[env]))
    results_file.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
