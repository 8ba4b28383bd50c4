"""ppox IPPO and MAPPO against JaxMARL's own baselines on MPE simple_spread and SMAX, alternating in one run.

    python benchmarks/jaxmarl.py --env mpe --algos mappo --timesteps 102400 --seeds 3 --repeats 2 \
        --out benchmarks/results/jaxmarl_mappo_mpe_matched.json
    # the first runs (ppox's settings before issue 36's matching: --unmatched)
    python benchmarks/jaxmarl.py --env mpe --algos ippo --timesteps 409600 --seeds 3 --repeats 2 --unmatched \
        --out benchmarks/results/jaxmarl_ippo_mpe.json
    python benchmarks/jaxmarl.py --env mpe --algos mappo --timesteps 102400 --seeds 3 --repeats 2 --unmatched \
        --out benchmarks/results/jaxmarl_mappo_mpe.json
    python benchmarks/jaxmarl.py --env smax --algos ippo mappo --num-envs 32 --timesteps 61440 --seeds 3 \
        --repeats 2 --unmatched --out benchmarks/results/jaxmarl_smax.json
    python benchmarks/jaxmarl.py --plot benchmarks/results/jaxmarl_smax.json   # summary; docs/curves/jaxmarl_smax.png

Each measurement is a fresh process (``--one``) that builds one implementation's whole training run, jits it with
its seeds vmapped (both libraries' own form: ``jax.jit(jax.vmap(train))``), then times compilation and the run
apart. The processes alternate ppox and JaxMARL, in rotating order.

JaxMARL's side is its own baseline file, fetched from github.com/FLAIROx/JaxMARL (``--jaxmarl-repo`` names the
checkout): ippo_ff_mpe.py, mappo_rnn_mpe.py, ippo_rnn_smax.py, mappo_rnn_smax.py, patched as
benchmarks/_jaxmarl_peer.py says (stubs for hydra, omegaconf and wandb; the ended episodes' returns, and SMAX's
win rate, returned as metrics). Same hyperparameters on both sides: JaxMARL's yaml, with TOTAL_TIMESTEPS (and with
``--num-envs``, NUM_ENVS) scaled down.

What is compared: on MPE, JaxMARL's MPELogWrapper logs each agent's reward times the number of agents, which with
simple_spread's shared reward is the team return: ppox's ``team_return``. On SMAX, JaxMARL's SMAXLogWrapper logs
each agent's own return: ppox's ``episode_return`` (the mean return of an agent's row). The win rate is JaxMARL's
only (ppox logs no win flag).

ppox's networks: IPPO on MPE 64x64 tanh (as JaxMARL's). The recurrent runs are ``--memory gru --memory-size 128
--hidden-sizes 128 --post-memory-sizes 128 --activation relu``: a 128-unit layer, the GRU, a 128-unit layer in each
head, then the heads, with ReLU, as JaxMARL's recurrent networks (which use ReLU whatever the yaml's ACTIVATION
says). MAPPO has ``--grad-clip per_network`` (JaxMARL's actor and critic each have an optimiser clipping its own
gradient norm). ``vf_coef`` is half the yaml's VF_COEF (JaxMARL's value loss is VF_COEF * 0.5 * MSE, ppox's
vf_coef * MSE). SMAX IPPO also has ``--shared-trunk`` (JaxMARL's IPPO shares its layer and GRU between actor and
critic); MAPPO on SMAX has ``--agent-id`` (JaxMARL's OBS_WITH_AGENT_ID puts the id in the critic's world state;
ppox puts it in the actor's observation too). Still different: ppox bootstraps time-limited episodes from V of
their final observation (JaxMARL treats the limit as terminal), its GAE uses each agent's done (JaxMARL's recurrent
baselines the episode's), and the layers after the GRU start orthogonal with gain sqrt(2) (JaxMARL's 2).
``--unmatched`` gives ppox's side as first measured (tanh on MPE, no layer after the GRU, one joint gradient clip,
vf_coef = VF_COEF): benchmarks/results/jaxmarl_mappo_mpe.json and jaxmarl_smax.json were measured so;
benchmarks/jaxmarl_ablation.py changes those differences one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# (this file's folder comes first on the path when it runs as a script: its name would hide the jaxmarl package;
# it goes last instead, where _jaxmarl_peer is found and jaxmarl is not)
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

from _jaxmarl_peer import peer_train, settings  # noqa: E402

PPOX_ENV = {"mpe": "MPE_simple_spread_v3", "smax": "SMAX-2s3z"}


def ppox_train(
    env: str, algo: str, timesteps: int, num_envs: int | None, overrides: dict | None = None, matched: bool = True
):
    """ppox's fused make_train with the baseline's settings (and ``overrides``: Config fields, for
    benchmarks/jaxmarl_ablation.py); its per-update return (the compared metric). ``matched``: the network, value
    loss scale and gradient clipping of JaxMARL's program (module docstring); False: the first runs' settings."""
    import ppox
    from ppox.drivers.fused_program import make_train

    values = settings(env, algo, num_envs)
    fields = dict(
        env=PPOX_ENV[env],
        total_timesteps=timesteps,
        num_envs=values["NUM_ENVS"],
        num_steps=values["NUM_STEPS"],
        update_epochs=values["UPDATE_EPOCHS"],
        num_minibatches=values["NUM_MINIBATCHES"],
        learning_rate=values["LR"],
        gamma=values["GAMMA"],
        gae_lambda=values["GAE_LAMBDA"],
        clip_coef=values["CLIP_EPS"],
        vf_clip_coef=values["CLIP_EPS"],
        ent_coef=values["ENT_COEF"],
        vf_coef=values["VF_COEF"] * (0.5 if matched else 1.0),  # (JaxMARL's value loss is VF_COEF * 0.5 * MSE)
        max_grad_norm=values["MAX_GRAD_NORM"],
        activation=values["ACTIVATION"],
        anneal_lr=values["ANNEAL_LR"],
        save=False,
        progress=False,
    )
    if "GRU_HIDDEN_DIM" in values:
        fields.update(memory="gru", memory_size=values["GRU_HIDDEN_DIM"], hidden_sizes=(values["FC_DIM_SIZE"],))
        if matched:  # their recurrent networks: ReLU whatever ACTIVATION says, a layer after the GRU in each head
            fields.update(activation="relu", post_memory_sizes=(values["GRU_HIDDEN_DIM"],))
    if algo == "mappo":
        fields.update(critic="world_state", agent_id=values.get("OBS_WITH_AGENT_ID", False))
        fields.update(grad_clip="per_network" if matched else "joint")  # (an optimiser per network, each clipped)
    elif env == "smax":
        fields.update(shared_trunk=True)
    train = make_train(ppox.Config(**(fields | (overrides or {}))))
    name = "team_return" if env == "mpe" else "episode_return"
    return lambda key: {"episode_return": train(key)[1][name]}


def measure_one(impl: str, env: str, algo: str, args) -> dict:
    """One implementation's run in this process: compile and run times, and the per-update returns."""
    import jax

    start = time.perf_counter()
    if impl == "ppox":
        train = ppox_train(env, algo, args.timesteps, args.num_envs, matched=not args.unmatched)
    else:
        train = peer_train(env, algo, args.jaxmarl_repo, args.timesteps, args.num_envs)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    program = jax.jit(jax.vmap(train))
    compiled = program.lower(keys).compile()
    compile_s = time.perf_counter() - start
    cpu0, run0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - run0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    metrics = out if impl == "ppox" else out["metrics"]
    row = {
        "impl": impl,
        "env": env,
        "algo": algo,
        "compile_s": compile_s,
        "run_s": run_s,
        "run_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "steps_per_s": args.timesteps * args.seeds / run_s,
        "returns": np.asarray(metrics["episode_return"], np.float64).tolist(),  # [seeds, updates]
        "load": os.getloadavg()[0],
    }
    if "win_rate" in metrics:
        row["win_rates"] = np.asarray(metrics["win_rate"], np.float64).tolist()
    return row


def final(returns, fraction: float = 0.1) -> list[float]:
    """Per seed: the mean return of the last ``fraction`` of the updates."""
    r = np.asarray(returns)
    tail = max(1, int(round(r.shape[1] * fraction)))
    return np.nanmean(r[:, -tail:], axis=1).tolist()


def summary(rows: list[dict]) -> dict:
    """Per algorithm and implementation: median speed and times, and the first run's final returns per seed."""
    table = {}
    for algo in sorted({r["algo"] for r in rows}):
        entry = {}
        for impl in ("ppox", "jaxmarl"):
            mine = [r for r in rows if r["algo"] == algo and r["impl"] == impl]
            if not mine:
                continue
            entry[impl] = {
                "runs": len(mine),
                "steps_per_s_median": float(np.median([r["steps_per_s"] for r in mine])),
                "steps_per_s_runs": [r["steps_per_s"] for r in mine],
                # env steps per second of the process's CPU time (user + system): less sensitive to the load
                "steps_per_cpu_s_median": float(
                    np.median([r["steps_per_s"] * r["run_s"] / r["run_cpu_s"] for r in mine])
                ),
                "run_s_median": float(np.median([r["run_s"] for r in mine])),
                "compile_s_median": float(np.median([r["compile_s"] for r in mine])),
                "final_return_per_seed": final(mine[0]["returns"]),
                "final_return_mean": float(np.mean(final(mine[0]["returns"]))),
            }
            if "win_rates" in mine[0]:
                entry[impl]["final_win_rate_per_seed"] = final(mine[0]["win_rates"])
                entry[impl]["final_win_rate_mean"] = float(np.mean(final(mine[0]["win_rates"])))
        if len(entry) == 2:
            entry["ppox_speed_ratio"] = entry["ppox"]["steps_per_s_median"] / entry["jaxmarl"]["steps_per_s_median"]
            entry["ppox_cpu_speed_ratio"] = (
                entry["ppox"]["steps_per_cpu_s_median"] / entry["jaxmarl"]["steps_per_cpu_s_median"]
            )
        table[algo] = entry
    return table


def plot(result: dict, path: Path) -> None:
    """The return curves (mean over seeds, each seed faint) of ppox and JaxMARL, per algorithm, against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = PPOX_ENV[result.get("env", "mpe")]
    ylabel = "team return" if env.startswith("MPE") else "return of an agent"
    algos = sorted({r["algo"] for r in result["runs"]})
    fig, axes = plt.subplots(1, len(algos), figsize=(6 * len(algos), 4), squeeze=False)
    for ax, algo in zip(axes[0], algos):
        for impl, colour in (("ppox", "tab:blue"), ("jaxmarl", "tab:orange")):
            run = next((r for r in result["runs"] if r["algo"] == algo and r["impl"] == impl), None)
            if run is None:
                continue
            returns = np.asarray(run["returns"], np.float64)
            steps = np.arange(1, returns.shape[1] + 1) * result["timesteps"] / returns.shape[1]
            for seed in returns:
                ax.plot(steps, seed, color=colour, alpha=0.2, linewidth=0.8)
            ax.plot(steps, np.nanmean(returns, axis=0), color=colour, label=f"{impl} {algo.upper()}")
        ax.set(xlabel="env steps (per seed)", ylabel=ylabel, title=f"{env}, {algo.upper()}")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def run_one(impl: str, algo: str, args) -> dict:
    """``measure_one`` in a fresh process; its result row."""
    command = [sys.executable, __file__, "--one", impl, algo, "--env", args.env, "--timesteps", str(args.timesteps)]
    command += ["--seeds", str(args.seeds), "--seed", str(args.seed), "--jaxmarl-repo", str(args.jaxmarl_repo)]
    command += ["--num-envs", str(args.num_envs)] if args.num_envs else []
    command += ["--unmatched"] if args.unmatched else []
    done = subprocess.run(command, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{impl} {algo} failed:\n{done.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="mpe", choices=sorted(PPOX_ENV))
    parser.add_argument("--algos", nargs="+", default=["ippo", "mappo"], choices=["ippo", "mappo"])
    parser.add_argument("--timesteps", type=int, default=409_600, help="env steps per seed")
    parser.add_argument("--num-envs", type=int, default=None, help="NUM_ENVS on both sides (default: the yaml's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jaxmarl-repo", type=Path, default=Path("/work/.mirror/FLAIROx+JaxMARL/repo"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/jaxmarl_mpe.json"))
    parser.add_argument(
        "--unmatched",
        action="store_true",
        help="ppox as first measured: tanh on MPE, no layer after the GRU, one joint gradient clip, vf_coef = VF_COEF",
    )
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "ALGO"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--plot", type=Path, help="redo the summary of this results file, and draw its curves (docs/curves/NAME.png)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.plot:  # (the summary is computed again from the runs, by this version of ``summary``)
        result = json.loads(args.plot.read_text())
        args.plot.write_text(json.dumps(result | {"summary": summary(result["runs"])}, indent=1))
        plot(result, Path("docs/curves") / (args.plot.stem + ".png"))
        return
    if args.one:
        print("RESULT " + json.dumps(measure_one(args.one[0], args.env, args.one[1], args)), flush=True)
        return
    rows: list[dict] = []
    for repeat in range(args.repeats):
        for algo in args.algos:
            for impl in ("ppox", "jaxmarl") if repeat % 2 == 0 else ("jaxmarl", "ppox"):
                row = run_one(impl, algo, args) | {"repeat": repeat}
                rows.append(row)
                print(
                    f"{args.env} {algo} {impl} repeat {repeat}: {row['steps_per_s']:,.0f} steps/s, run "
                    f"{row['run_s']:.1f} s, compile {row['compile_s']:.1f} s, final return "
                    f"{np.mean(final(row['returns'])):.3f}, load {row['load']:.1f}",
                    flush=True,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                result = {
                    "command": "python " + " ".join(sys.argv),
                    "ppox_settings": "unmatched" if args.unmatched else "matched",
                    "env": args.env,
                    "timesteps": args.timesteps,
                    "num_envs": args.num_envs,
                    "seeds": args.seeds,
                    "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
                    "summary": summary(rows),
                    "runs": rows,
                }
                args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(summary(rows), indent=1))
    plot(json.loads(args.out.read_text()), Path("docs/curves") / (args.out.stem + ".png"))


if __name__ == "__main__":
    main()
