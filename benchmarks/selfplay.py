"""Self-play against training on a random opponent, on a pgx game: who beats whom after the same budget.

    python benchmarks/selfplay.py --env ConnectFour-pgx --timesteps 1000000 --seeds 3 --games 1000 \
        --out benchmarks/results/selfplay_connect_four.json --plot docs/curves/selfplay_connect_four.png

Trains two ppox runs of the env's preset, same seeds and budget: ``--opponent random`` (the game's uniformly
random legal player, what ppox did before self-play) and ``--opponent OPPONENT`` (self-play with a pool of past
selves; prioritised by default). Both evaluate against the random player at every checkpoint (``--eval-episodes``).
Then, per seed, matches of ``--games`` games (sampled moves, who starts drawn at even odds): each policy against
the random player, and the self-play policy against the random-opponent-trained one. A score is
(wins + draws / 2) / games; 0.5 is even. The plot: the evaluation return against the random player (wins minus
losses per game) over training for both, and the self-play run's Elo against its own pool.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from pathlib import Path

import numpy as np

import ppox
from ppox.acting.matches import play_match


def train(env: str, opponent: str, args, run_dir: Path) -> tuple[Path, float]:
    """One ppox run in its own process (its wall time includes imports and compilation)."""
    name = f"{env}_{opponent}"
    if args.reuse and (run_dir / name / "policy.safetensors").exists():  # (a finished run of an earlier call)
        return run_dir / name, float("nan")
    command = ["ppox", "train", "--env", env, "--opponent", opponent, "--seeds", str(args.seeds)]
    command += ["--total-timesteps", str(args.timesteps), "--run-dir", str(run_dir), "--run-name", name]
    command += ["--checkpoint-every", str(args.timesteps // 10), "--eval-episodes", str(args.eval_episodes)]
    command += ["--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return run_dir / name, time.perf_counter() - start


def record(rec) -> dict:
    return {"wins": rec.wins, "draws": rec.draws, "losses": rec.losses, "score": rec.score}


def evaluations(run: Path) -> dict[str, list[float]]:
    """RUN/evaluations.csv as columns (global_step, and the mean return per seed)."""
    with open(run / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def elo(run: Path) -> dict[str, list[float]]:
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["seed"] == "0"]
    return {"global_step": [float(r["global_step"]) for r in rows], "elo": [float(r["selfplay_elo"]) for r in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ConnectFour-pgx")
    parser.add_argument("--opponent", default="prioritised", choices=["self", "latest", "uniform", "prioritised"])
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--games", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--run-dir", default="benchmarks/runs/selfplay")
    parser.add_argument("--out", default="benchmarks/results/selfplay_connect_four.json")
    parser.add_argument("--plot", default=None)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs of the same name (train time NaN)")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    (baseline, base_s), (selfplay, self_s) = (train(args.env, o, args, run_dir) for o in ("random", args.opponent))
    seeds = []
    for i in range(args.seeds):
        a, b = ppox.load(baseline, seed_index=i), ppox.load(selfplay, seed_index=i)
        seeds.append(
            {
                "seed": i,
                "random_trained_vs_random": record(play_match(a, "random", args.games, seed=i)),
                "self_play_vs_random": record(play_match(b, "random", args.games, seed=i)),
                "self_play_vs_random_trained": record(play_match(b, a, args.games, seed=i)),
            }
        )
        print(json.dumps(seeds[-1]))
    summary = {k: float(np.mean([s[k]["score"] for s in seeds])) for k in seeds[0] if k != "seed"}
    out = {
        "command": "python benchmarks/selfplay.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "train_seconds": {"random": base_s, args.opponent: self_s},
        "seeds": seeds,
        "mean_score": summary,
        "evaluations": {"random": evaluations(baseline), args.opponent: evaluations(selfplay)},
        "elo_seed0": elo(selfplay),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))
    if args.plot:
        plot(out, args, Path(args.plot))


def plot(out: dict, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, ev in out["evaluations"].items():
        ax.plot(ev["global_step"], ev["mean_return"], label=f"--opponent {name} (mean of seeds)")
    ax.set(title=f"{args.env}: against the random player", xlabel="env steps", ylabel="wins - losses per game")
    ax.legend()
    bx.plot(out["elo_seed0"]["global_step"], out["elo_seed0"]["elo"])
    bx.set(title=f"--opponent {args.opponent}: Elo against its pool (seed 0)", xlabel="env steps", ylabel="Elo")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
