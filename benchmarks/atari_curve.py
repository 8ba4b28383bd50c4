"""An Atari run's learning curve against random play on the same games.

  .venv/bin/python benchmarks/atari_curve.py RUN [--games 100]
  .venv/bin/python benchmarks/atari_curve.py --plot ALE/Breakout-v5     # redraw from the stored results

RUN is a finished or interrupted host-driver run folder (for example ``ppox train --env ALE/Breakout-v5
--run-dir benchmarks/runs``, stopped with Ctrl-C after an hour). Random play: uniformly random actions in the
training env (the same id, preprocessing and sticky actions, 8 envs) for --games whole games, raw score.
Writes benchmarks/results/atari_curve_ENV.json (ENV_vfC.json where the run's value-loss weight is not today's
preset's, as for runs trained before the Atari presets took 0.25) and docs/curves/atari_ENV.png, which draws
every stored result of that env.
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

import ppox  # noqa: E402
from ppox.envs.atari import make_atari_envs  # noqa: E402
from ppox.experiments.ladder_report import smoothed  # noqa: E402
from ppox.experiments.plots import pyplot  # noqa: E402


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


def slug_of(env_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", env_id).strip("_")


def measure(run: Path, games: int) -> dict:
    """The run's curve, its final score (the last 5% of updates) and random play beside it."""
    config = json.loads((run / "config.json").read_text())
    env_id = config["env"]
    step, score, count = read_curve(run)
    random_scores = random_play(env_id, games)
    window = max(1, len(score) // 20)
    summary = run / "summary.json"
    return {"env": env_id, "run": str(run), "vf_coef": config["vf_coef"], "steps": int(step[-1]) if len(step) else 0,
            "wall_s": json.loads(summary.read_text()).get("wall_time_s") if summary.exists() else None,
            "final_score": float(smoothed(score[None], count[None], window)[0, -1]) if len(score) else None,
            "final_window_updates": window, "random_mean": float(np.mean(random_scores)),
            "random_std": float(np.std(random_scores)), "random_games": len(random_scores),
            "curve": {"step": step.tolist(), "score": np.where(np.isnan(score), None, score).tolist(),
                      "games": count.tolist()}}


def result_path(result: dict) -> Path:
    """results/atari_curve_ENV.json, with _vfC where the run's value-loss weight is not today's preset's."""
    preset_vf, vf = ppox.Config.preset(result["env"]).vf_coef, result["vf_coef"]
    suffix = "" if np.isclose(vf, preset_vf) else f"_vf{vf:g}"
    return HERE / "results" / f"atari_curve_{slug_of(result['env'])}{suffix}.json"


def plot(env_id: str) -> None:
    """docs/curves/atari_ENV.png: every stored result of ``env_id``, with today's preset's random play."""
    files = (HERE / "results").glob(f"atari_curve_{slug_of(env_id)}*.json")
    results = sorted((json.loads(f.read_text()) for f in files), key=lambda r: -r["vf_coef"])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        step, count = np.array(r["curve"]["step"]), np.array(r["curve"]["games"])
        score = np.array([np.nan if x is None else x for x in r["curve"]["score"]])
        name = f"value weight {r['vf_coef']:g}"
        line, = ax.plot(step, smoothed(score[None], count[None], r["final_window_updates"])[0],
                        label=f"ppox, {name} (moving mean over {r['final_window_updates']} updates)")
        ax.plot(step, score, ".", alpha=0.15, color=line.get_color())
    ax.axhline(results[-1]["random_mean"], color="gray", linestyle="--",
               label=f"random play ({results[-1]['random_games']} games)")
    ax.set(xlabel="environment steps", ylabel="game score (all lives, unclipped)",
           title=f"{env_id}, 2-core CPU, one hour")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "curves" / f"atari_{slug_of(env_id)}.png", dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, nargs="?")
    p.add_argument("--games", type=int, default=100)
    p.add_argument("--plot", metavar="ENV", help="only redraw ENV's plot from the stored results")
    args = p.parse_args()
    if args.plot:
        return plot(args.plot)
    if args.run is None:
        p.error("give a RUN folder, or --plot ENV")
    result = measure(args.run, args.games)
    result_path(result).write_text(json.dumps(result, indent=1))
    plot(result["env"])
    print(f"{result['env']}: {result['steps']} steps, final score {result['final_score']:.2f} "
          f"(last {result['final_window_updates']} updates); random play {result['random_mean']:.2f} "
          f"+- {result['random_std']:.2f} over {result['random_games']} games")


if __name__ == "__main__":
    main()
