"""An Atari run's learning curve against random play on the same games.

  .venv/bin/python benchmarks/atari_curve.py RUN [--games 100]

RUN is a finished or interrupted host-driver run folder (for example ``ppox train --env ALE/Breakout-v5
--run-dir benchmarks/runs``, stopped with Ctrl-C after an hour). Random play: uniformly random actions in the
training env (the same id, preprocessing and sticky actions, 8 envs) for --games whole games, raw score.
Writes docs/curves/atari_ENV.png and benchmarks/results/atari_curve_ENV.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from ppox.envs.atari import make_atari_envs  # noqa: E402
from ppox.plots import pyplot  # noqa: E402


def random_play(env_id: str, games: int, seed: int = 0) -> list[float]:
    """Raw scores of ``games`` whole games of uniformly random actions."""
    venv = make_atari_envs(env_id, 8, "ale")
    venv.reset(seed=seed)
    rng, scores = np.random.default_rng(seed), []
    while len(scores) < games:
        _, _, _, _, info = venv.step(rng.integers(0, venv.single_action_space.n, 8))
        scores.extend(float(x) for x in info["game_return"][info["game_over"]])
    venv.close()
    return scores[:games]


def read_curve(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global step, mean raw game score of the games that ended in that update, games ended) per update."""
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    step = np.array([float(r["global_step"]) for r in rows])
    score = np.array([float(r["episode_return"]) if r["episode_return"] not in ("", "nan") else np.nan for r in rows])
    count = np.array([float(r["episode_count"]) for r in rows])
    return step, score, count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--games", type=int, default=100)
    args = p.parse_args()
    config = json.loads((args.run / "config.json").read_text())
    env_id = config["env"]
    step, score, count = read_curve(args.run)
    random_scores = random_play(env_id, args.games)
    window = max(1, len(score) // 20)
    weights = np.nan_to_num(count)
    smooth = np.array([np.nansum((score * weights)[max(0, i - window + 1):i + 1])
                       / max(1.0, weights[max(0, i - window + 1):i + 1].sum()) for i in range(len(score))])
    last = slice(max(0, len(score) - window), len(score))
    result = {"env": env_id, "run": str(args.run), "steps": int(step[-1]) if len(step) else 0,
              "wall_s": None, "final_score": float(np.nansum((score * weights)[last]) / max(1.0, weights[last].sum())),
              "final_window_updates": window, "random_mean": float(np.mean(random_scores)),
              "random_std": float(np.std(random_scores)), "random_games": len(random_scores),
              "curve": {"step": step.tolist(), "score": np.where(np.isnan(score), None, score).tolist(),
                        "games": count.tolist()}}
    summary = args.run / "summary.json"
    if summary.exists():
        result["wall_s"] = json.loads(summary.read_text()).get("wall_time_s")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(step, score, ".", alpha=0.25, label="mean raw score of the games ended in an update")
    ax.plot(step, smooth, label=f"ppox (moving mean over {window} updates)")
    ax.axhline(result["random_mean"], color="gray", linestyle="--", label=f"random play ({args.games} games)")
    ax.set(xlabel="environment steps", ylabel="game score (all lives, unclipped)", title=f"{env_id}, 2-core CPU")
    ax.legend()
    fig.tight_layout()
    slug = re.sub(r"[^A-Za-z0-9]+", "_", env_id).strip("_")
    fig.savefig(ROOT / "docs" / "curves" / f"atari_{slug}.png", dpi=120)
    (HERE / "results" / f"atari_curve_{slug}.json").write_text(json.dumps(result, indent=1))
    print(f"{env_id}: {result['steps']} steps, final score {result['final_score']:.2f} (last {window} updates); "
          f"random play {result['random_mean']:.2f} +- {result['random_std']:.2f} over {len(random_scores)} games")


if __name__ == "__main__":
    main()
