"""MinAtar on the fused driver against the published PPO figures (gymnax-blines: MLP, 10M steps).

  .venv/bin/python benchmarks/minatar.py GAME [--network mlp|cnn] [--weight-init lecun] [--steps 10000000] [--seeds 3]
                                           [--first-seed 0] [--learning-rate LR] [--vf-coef C]
  .venv/bin/python benchmarks/minatar.py --report
  .venv/bin/python benchmarks/minatar.py --from-run RUN     # a stopped run's folder: what it reached
  .venv/bin/python benchmarks/minatar.py --resume RUN       # continue a stopped run to its planned end
  .venv/bin/python benchmarks/minatar.py [GAME] --evaluate 100   # each seed's final policy, 100 games each

A run trains GAME-MinAtar's preset (``--network cnn``: its CNN variant) with the seeds vmapped in one compiled
program, saves its run folder under benchmarks/runs/ (a checkpoint every 1M steps, so a stopped run keeps its
curve), and writes benchmarks/results/minatar/GAME_NETWORK.json: the final return per seed (the mean episodic
return of the last 10% of training, raw game score), the wall time and the curve. ``--report`` gathers those
files into the table of docs/pixels.md (printed) and docs/curves/minatar_GAME.png, beside the curves of
gymnax-blines' own stored runs where benchmarks/gymnax_blines_logs.py has read them. ``--evaluate N`` plays N
games with each seed's final policy (sampled actions, one whole game per env in one jitted loop: the measure
gymnax-blines reports) and adds the mean per seed to each result file (a file already played with N
games at its final step is skipped).

Variants: ``--weight-init lecun`` trains with gymnax-blines' own initialisation (flax's LeCun normal kernels, biases
uniform in [0, 0.05); the presets' is orthogonal), ``--learning-rate LR`` and ``--vf-coef C`` replace the preset's
(gymnax-blines stored runs at lr 1e-3 and 1e-4 beside its 5e-4 preset). A result's name says where its config
differs from today's preset: GAME_NETWORK_lecun_lrLR_vfC.json (results trained before the MinAtar presets took
vf_coef 0.25 are GAME_NETWORK_vf0.5.json). ``--first-seed K`` trains seeds K.. instead of 0.. (more seeds of a
variant already run; the file name ends _seedsK-L and ``--report`` adds a row pooling every seed of the variant).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import ppox  # noqa: E402
from ppox.agent.metrics import final_return  # noqa: E402
from ppox.experiments.plots import band, pyplot, read_run  # noqa: E402

# gymnax-blines' PPO (MLP, 10M steps), the returns its README reports
PUBLISHED = {"Breakout": 28, "SpaceInvaders": 131, "Asterix": 15, "Freeway": 58}
OUT = HERE / "results" / "minatar"
REFERENCE = OUT / "reference" / "gymnax_blines.json"  # benchmarks/gymnax_blines_logs.py writes it


def variant(r: dict) -> str:
    """The result's name after the game: the network, then the initialisation, the learning rate and the
    value-loss weight where its config differs from today's preset (so a result trained before a preset changed
    says what it ran with)."""
    config = r["config"]
    preset = ppox.Config.preset(config["env"], network=config["network"])
    init, lr, vf = config.get("weight_init", "orthogonal"), config["learning_rate"], config["vf_coef"]
    return (config["network"] + ("" if init == "orthogonal" else f"_{init}")
            + ("" if np.isclose(lr, preset.learning_rate) else f"_lr{lr:g}")
            + ("" if np.isclose(vf, preset.vf_coef) else f"_vf{vf:g}"))


def label(r: dict) -> str:
    """The variant for people: "mlp preset", "mlp, lr0.001, vf0.5"."""
    name = variant(r)
    return f"{name} preset" if name == r["config"]["network"] else name.replace("_", ", ")


def file_name(r: dict) -> str:
    """GAME_VARIANT.json, with the seeds' range where the first is not 0."""
    first = r["config"].get("seed", 0)
    return f"{r['game']}_{variant(r)}" + (f"_seeds{first}-{first + r['seeds'] - 1}" if first else "") + ".json"


def run(game: str, network: str, steps: int, seeds: int, weight_init: str, first_seed: int = 0,
        learning_rate: float | None = None, vf_coef: float | None = None) -> dict:
    config = ppox.Config.preset(f"{game}-MinAtar", network=network, weight_init=weight_init)
    if learning_rate is not None:
        config = config.replace(learning_rate=learning_rate)
    if vf_coef is not None:
        config = config.replace(vf_coef=vf_coef)
    name = variant({"config": json.loads(config.to_json())})
    config = config.replace(total_timesteps=steps, seeds=seeds, seed=first_seed, progress=False,
                            run_dir=str(HERE / "runs"), run_name=f"minatar_{game}_{name}_{int(time.time())}",
                            checkpoint_every=1_000_000)
    start = time.perf_counter()
    result = ppox.train(config)
    wall = time.perf_counter() - start
    curves = np.asarray(result.metrics["episode_return"], np.float64)
    return {"game": game, "network": network, "weight_init": weight_init,
            "steps": int(curves.shape[1] * config.batch_size), "planned_steps": steps, "interrupted": result.interrupted, "seeds": seeds,
            "final_return": [round(float(x), 3) for x in result.final_return()],
            "published_ppo_mlp": PUBLISHED[game], "wall_s": round(wall, 1), "batch": config.batch_size,
            "run_path": str(result.run_path), "config": json.loads(config.to_json()),
            "curves": [[round(float(x), 3) for x in c] for c in curves]}


def from_run(run: Path) -> dict:
    """The result of a run folder (one this script started, stopped before its end): what it reached."""
    config = json.loads((run / "config.json").read_text())
    metrics = read_run(run)
    summary = run / "summary.json"
    game = config["env"].removesuffix("-MinAtar")
    batch = config["num_envs"] * config["num_steps"]
    curves = metrics["episode_return"]
    return {"game": game, "network": config["network"], "weight_init": config.get("weight_init", "orthogonal"),
            "steps": int(curves.shape[1] * batch),
            "planned_steps": config["total_timesteps"], "seeds": int(curves.shape[0]),
            "final_return": [round(float(x), 3) for x in final_return(metrics)], "published_ppo_mlp": PUBLISHED[game],
            "wall_s": json.loads(summary.read_text())["wall_time_s"] if summary.exists() else None,
            "batch": batch, "run_path": str(run), "config": config,
            "curves": [[round(float(x), 3) for x in c] for c in curves]}


def resume(run: Path) -> dict:
    """Continue a stopped run from its newest checkpoint; the wall time adds the part before the stop."""
    before = json.loads((run / "summary.json").read_text())["wall_time_s"] if (run / "summary.json").exists() else 0.0
    start = time.perf_counter()
    ppox.resume(run)
    r = from_run(run)
    r["wall_s"] = round(before + time.perf_counter() - start, 1)
    r["interrupted"] = r["steps"] < r["planned_steps"] - r["batch"]
    return r


def evaluate_final_policies(episodes: int, game: str | None) -> None:
    """Each result file's run (GAME's only, if given): N games per seed with its final policy, sampled actions."""
    from ppox.acting.evaluation import evaluate
    from ppox.acting.policy import load

    for f in sorted(OUT.glob(f"{game or '*'}_*.json")):
        r = json.loads(f.read_text())
        if r.get("eval_episodes") == episodes and r.get("eval_steps") == r["steps"]:
            continue  # already played with these parameters
        if not Path(r["run_path"], "policy.safetensors").exists():
            print(f"{f.name}: no final policy in {r['run_path']}; skipped")
            continue
        first = r["config"].get("seed", 0)
        r["eval_return"] = [round(float(np.mean(evaluate(load(r["run_path"], seed_index=i), episodes=episodes,
                                                         deterministic=False, seed=10_000 + first + i))), 3)
                            for i in range(r["seeds"])]
        r["eval_episodes"], r["eval_steps"] = episodes, r["steps"]
        f.write_text(json.dumps(r, indent=1))
        print(f"{r['game']} {variant(r)}: final policies, {episodes} games each: {r['eval_return']}", flush=True)


def pooled(rows: list[dict]) -> list[dict]:
    """One result per (game, variant): the seeds of every file of a variant together (files from --first-seed)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["game"], variant(r)), []).append(r)
    out = []
    for parts in groups.values():
        if len(parts) == 1:
            out.append(parts[0])
            continue
        length = min(len(r["curves"][0]) for r in parts)
        played = all(r.get("eval_return") for r in parts) and len({r.get("eval_episodes") for r in parts}) == 1
        out.append({**parts[0], "seeds": sum(r["seeds"] for r in parts), "pooled": len(parts),
                    "steps": min(r["steps"] for r in parts),
                    "final_return": [x for r in parts for x in r["final_return"]],
                    "eval_return": [x for r in parts for x in r["eval_return"]] if played else None,
                    "wall_s": None, "curves": [c[:length] for r in parts for c in r["curves"]]})
    return out


def reference_logs() -> dict:
    """gymnax-blines' stored runs ({game: {log: {learning_rate, steps, returns}}}), if
    benchmarks/gymnax_blines_logs.py has read them."""
    return json.loads(REFERENCE.read_text())["logs"] if REFERENCE.exists() else {}


def reference_run(logs: dict, r: dict) -> dict | None:
    """The stored gymnax-blines run at this result's learning rate (MLP results only; theirs are MLPs)."""
    runs = logs.get(r["game"], {}).values() if r["network"] == "mlp" else ()
    return next((run for run in runs if np.isclose(run["learning_rate"], r["config"]["learning_rate"])), None)


def report_row(r: dict, logs: dict) -> str:
    finals, evals = r["final_return"], r.get("eval_return")
    played = (f"{r['eval_episodes']}: {', '.join(f'{x:.1f}' for x in evals)} | {np.mean(evals):.1f}" if evals
              else "not played | ")
    wall = (f"{r['pooled']} runs" if r.get("pooled") else "?" if r["wall_s"] is None
            else f"{round(r['wall_s'] / 60)} min")
    first = r["config"].get("seed", 0)
    which = (", all seeds" if r.get("pooled") else f", seeds {first}-{first + r['seeds'] - 1}" if first else "")
    ref = reference_run(logs, r)
    stored = f"{ref['returns'][-1]:.1f}" if ref else "-"
    return (f"| {r['game']} | {label(r)}{which} | {r['steps'] / 1e6:.1f}M x {r['seeds']} | "
            f"{', '.join(f'{x:.1f}' for x in finals)} | {np.mean(finals):.1f} | {played} | {r['published_ppo_mlp']} | "
            f"{stored} | {wall} |")


def report() -> None:
    rows, logs = [json.loads(f.read_text()) for f in sorted(OUT.glob("*.json"))], reference_logs()
    print("| game | network | steps x seeds | final return per seed | mean | final policy, games per seed: mean "
          "per seed | mean | published PPO (MLP) | gymnax-blines' stored run, final | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(report_row(r, logs))
    for r in pooled(rows):
        if r.get("pooled"):
            print(report_row(r, logs))
    plt = pyplot()
    for game in sorted({r["game"] for r in rows}):
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in (r for r in pooled(rows) if r["game"] == game):
            curves = np.asarray(r["curves"], np.float64)
            mean, lo, hi = band(curves)
            x = (np.arange(curves.shape[1]) + 1) * r["batch"]
            (line,) = ax.plot(x, mean, label=f"ppox {label(r)} ({r['seeds']} seeds, 95% band)")
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
            preset_lr = ppox.Config.preset(r["config"]["env"], network=r["network"]).learning_rate
            ref = None if np.isclose(r["config"]["learning_rate"], preset_lr) else reference_run(logs, r)
            if ref:
                ax.plot(ref["steps"], ref["returns"], ":", marker=".", color=line.get_color(),
                        label=f"gymnax-blines' stored run, lr {ref['learning_rate']:g}")
        preset = logs.get(game, {}).get("ppo")  # the log of the run trained with the config's own learning rate
        if preset:
            ax.plot(preset["steps"], preset["returns"], ":", marker=".", color="black",
                    label=f"gymnax-blines' stored run, lr {preset['learning_rate']:g} (1 seed, 164 games a point)")
        ax.axhline(PUBLISHED[game], color="gray", linestyle="--", label="gymnax README: PPO (MLP), 10M")
        ax.set(xlabel="environment steps (per seed)", ylabel="episodic return", title=f"{game}-MinAtar")
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        fig.savefig(ROOT / "docs" / "curves" / f"minatar_{game}.png", dpi=120)
        plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("game", nargs="?", choices=sorted(PUBLISHED))
    p.add_argument("--network", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--weight-init", choices=("orthogonal", "lecun"), default="orthogonal")
    p.add_argument("--steps", type=int, default=10_000_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="train seeds FIRST.. (more seeds of a variant)")
    p.add_argument("--learning-rate", type=float, help="instead of the preset's (the file name gets _lrLR)")
    p.add_argument("--vf-coef", type=float, help="instead of the preset's (the file name gets _vfC)")
    p.add_argument("--report", action="store_true")
    p.add_argument("--from-run", type=Path, help="write GAME_NETWORK.json from a (stopped) run folder")
    p.add_argument("--resume", type=Path, help="continue a stopped run folder to its planned end")
    p.add_argument("--evaluate", type=int, metavar="GAMES", help="play GAMES games with each seed's final policy")
    args = p.parse_args()
    if args.evaluate is not None:
        evaluate_final_policies(args.evaluate, args.game)
        return
    if args.from_run is not None or args.resume is not None:
        result = from_run(args.from_run) if args.resume is None else resume(args.resume)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / file_name(result)).write_text(json.dumps(result, indent=1))
        print(f"{result['game']}: {result['steps']:,} of {result['planned_steps']:,} steps, "
              f"final {result['final_return']}")
        return
    if args.report or args.game is None:
        report()
        return
    result = run(args.game, args.network, args.steps, args.seeds, args.weight_init, args.first_seed,
                 args.learning_rate, args.vf_coef)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / file_name(result)).write_text(json.dumps(result, indent=1))
    print(f"{args.game}-MinAtar {variant(result)}: final {result['final_return']} (published {PUBLISHED[args.game]})"
          f" in {result['wall_s'] / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
