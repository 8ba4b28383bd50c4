"""ppox IPPO and MAPPO against JaxMARL's own baselines on MPE simple_spread, alternating in one run.

    python benchmarks/jaxmarl.py --algos ippo mappo --timesteps 409600 --seeds 3 --repeats 2 \
        --out benchmarks/results/jaxmarl_mpe.json
    python benchmarks/jaxmarl.py --plot benchmarks/results/jaxmarl_mpe.json   # docs/curves/jaxmarl_mpe.png

Each measurement is a fresh process (``--one``) that builds one implementation's whole training run, jits it with
its seeds vmapped (both libraries' own form: ``jax.jit(jax.vmap(train))``), then times compilation and the run
apart. The processes alternate ppox and JaxMARL, in rotating order.

JaxMARL's side is its own baseline file, fetched from github.com/FLAIROx/JaxMARL (baselines/IPPO/ippo_ff_mpe.py,
baselines/MAPPO/mappo_rnn_mpe.py; --jaxmarl-repo names the checkout), executed with these changes only:
- hydra and omegaconf are not installed here: two stub modules stand in for them (only ``@hydra.main`` is used,
  by ``main``, which is not run); the config dict is built in code from the yaml values below;
- wandb is a stub whose ``log`` does nothing (the io_callback that calls it stays in the program);
- the metrics: each update also returns the mean return of the episodes that ended in its rollout (JaxMARL's
  ``returned_episode_returns`` where ``returned_episode``); mappo_rnn_mpe's ``train`` returns its metrics, which it
  only logged before. JaxMARL's MPELogWrapper logs each agent's reward times the number of agents: with
  simple_spread's shared reward, the team return, which is ppox's ``team_return`` (compared here).
Same hyperparameters on both sides: JaxMARL's yaml (IPPO: ippo_ff_mpe.yaml; MAPPO: mappo_homogenous_rnn_mpe.yaml)
with TOTAL_TIMESTEPS scaled down. ppox's MAPPO is --critic world_state --memory gru --memory-size 128
--hidden-sizes 128: its networks differ from JaxMARL's (which put a 128-unit ReLU layer before and after the GRU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

# (this file's folder comes first on the path when it runs as a script: its name would hide the jaxmarl package)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

IPPO = {  # baselines/IPPO/config/ippo_ff_mpe.yaml
    "LR": 2.5e-4, "NUM_ENVS": 16, "NUM_STEPS": 128, "UPDATE_EPOCHS": 4, "NUM_MINIBATCHES": 4, "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh", "ENV_NAME": "MPE_simple_spread_v3", "ENV_KWARGS": {}, "ANNEAL_LR": True,
}  # fmt: skip
MAPPO = {  # baselines/MAPPO/config/mappo_homogenous_rnn_mpe.yaml
    "LR": 2e-3, "NUM_ENVS": 16, "NUM_STEPS": 128, "FC_DIM_SIZE": 128, "GRU_HIDDEN_DIM": 128, "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "SCALE_CLIP_EPS": False,
    "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh", "ENV_NAME": "MPE_simple_spread_v3",
    "ENV_KWARGS": {}, "ANNEAL_LR": True,
}  # fmt: skip
PEER_FILES = {"ippo": "baselines/IPPO/ippo_ff_mpe.py", "mappo": "baselines/MAPPO/mappo_rnn_mpe.py"}
MASKED_RETURN = (
    "ended = metric['returned_episode']; "
    "ep = jnp.where(ended, metric['returned_episode_returns'], 0.0).sum() / jnp.maximum(ended.sum(), 1); "
    "ep = jnp.where(ended.sum() > 0, ep, jnp.nan)"
)
PATCHES = {
    "ippo": [
        (
            "            metric = jax.tree.map(lambda x: x.mean(), metric)\n",
            f"            {MASKED_RETURN}\n            metric = jax.tree.map(lambda x: x.mean(), metric)\n"
            "            metric['episode_return'] = ep\n",
        )
    ],
    "mappo": [
        (
            "            metric = traj_batch.info\n",
            f"            metric = traj_batch.info\n            {MASKED_RETURN}\n",
        ),
        (
            "            return (runner_state, update_steps), metric\n",
            "            return (runner_state, update_steps), {'episode_return': ep}\n",
        ),
        (
            '        return {"runner_state": runner_state}\n',
            '        return {"runner_state": runner_state, "metrics": metric}\n',
        ),
    ],
}


def stub_modules() -> None:
    """hydra, omegaconf (not installed) and wandb (not wanted) as stubs, before the baseline file is run."""
    hydra = types.ModuleType("hydra")
    hydra.main = lambda **kwargs: lambda f: f  # type: ignore[attr-defined]
    omegaconf = types.ModuleType("omegaconf")
    omegaconf.OmegaConf = types.SimpleNamespace(to_container=lambda c: c)  # type: ignore[attr-defined]
    wandb = types.ModuleType("wandb")
    wandb.log = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    wandb.init = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    sys.modules.update(hydra=hydra, omegaconf=omegaconf, wandb=wandb)


def peer_train(algo: str, repo: Path, timesteps: int):
    """JaxMARL's make_train(config) from its baseline file (patched as the module docstring says)."""
    source = subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"HEAD:{PEER_FILES[algo]}"], capture_output=True, text=True, check=True
    ).stdout
    for old, new in PATCHES[algo]:
        if source.count(old) != 1:
            raise SystemExit(f"{PEER_FILES[algo]}: the patch's anchor {old.strip()!r} is not there once")
        source = source.replace(old, new)
    stub_modules()
    module = types.ModuleType(f"jaxmarl_{algo}")
    sys.modules[module.__name__] = module  # (its dataclasses look their module up)
    exec(compile(source, PEER_FILES[algo], "exec"), module.__dict__)  # noqa: S102 (JaxMARL's own file)
    config = dict(IPPO if algo == "ippo" else MAPPO, TOTAL_TIMESTEPS=timesteps)
    return module.make_train(config)


def ppox_train(algo: str, timesteps: int):
    import ppox
    from ppox.drivers.fused_program import make_train

    settings = IPPO if algo == "ippo" else MAPPO
    fields = dict(
        env=settings["ENV_NAME"],
        total_timesteps=timesteps,
        num_envs=settings["NUM_ENVS"],
        num_steps=settings["NUM_STEPS"],
        update_epochs=settings["UPDATE_EPOCHS"],
        num_minibatches=settings["NUM_MINIBATCHES"],
        learning_rate=settings["LR"],
        gamma=settings["GAMMA"],
        gae_lambda=settings["GAE_LAMBDA"],
        clip_coef=settings["CLIP_EPS"],
        vf_clip_coef=settings["CLIP_EPS"],
        ent_coef=settings["ENT_COEF"],
        vf_coef=settings["VF_COEF"],
        max_grad_norm=settings["MAX_GRAD_NORM"],
        activation=settings["ACTIVATION"],
        anneal_lr=settings["ANNEAL_LR"],
        save=False,
        progress=False,
    )
    if algo == "mappo":
        fields.update(critic="world_state", memory="gru", memory_size=128, hidden_sizes=(128,))
    train = make_train(ppox.Config(**fields))
    return lambda key: {"episode_return": train(key)[1]["team_return"]}


def measure_one(impl: str, algo: str, seed: int, seeds: int, timesteps: int, repo: Path) -> dict:
    """One implementation's run in this process: compile and run times, and the per-update returns."""
    import jax

    start = time.perf_counter()
    train = ppox_train(algo, timesteps) if impl == "ppox" else peer_train(algo, repo, timesteps)
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    program = jax.jit(jax.vmap(train))
    compiled = program.lower(keys).compile()
    compile_s = time.perf_counter() - start
    cpu0, run0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - run0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    metrics = out if impl == "ppox" else out["metrics"]
    returns = np.asarray(metrics["episode_return"], np.float64)  # [seeds, updates]
    return {
        "impl": impl,
        "algo": algo,
        "compile_s": compile_s,
        "run_s": run_s,
        "run_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "steps_per_s": timesteps * seeds / run_s,
        "returns": returns.tolist(),
        "load": os.getloadavg()[0],
    }


def final(returns, fraction: float = 0.1) -> list[float]:
    """Per seed: the mean return of the last ``fraction`` of the updates."""
    r = np.asarray(returns)
    tail = max(1, int(round(r.shape[1] * fraction)))
    return np.nanmean(r[:, -tail:], axis=1).tolist()


def summary(rows: list[dict]) -> dict:
    table = {}
    for algo in sorted({r["algo"] for r in rows}):
        entry = {}
        for impl in ("ppox", "jaxmarl"):
            mine = [r for r in rows if r["algo"] == algo and r["impl"] == impl]
            if not mine:
                continue
            entry[impl] = {
                "steps_per_s_median": float(np.median([r["steps_per_s"] for r in mine])),
                "run_s_median": float(np.median([r["run_s"] for r in mine])),
                "compile_s_median": float(np.median([r["compile_s"] for r in mine])),
                "final_return_per_seed": final(mine[0]["returns"]),
                "final_return_mean": float(np.mean(final(mine[0]["returns"]))),
            }
        if len(entry) == 2:
            entry["ppox_speed_ratio"] = entry["ppox"]["steps_per_s_median"] / entry["jaxmarl"]["steps_per_s_median"]
        table[algo] = entry
    return table


def plot(result: dict, path: Path) -> None:
    """The return curves (mean over seeds, each seed faint) of ppox and JaxMARL, per algorithm, against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        ax.set(xlabel="env steps (per seed)", ylabel="team return", title=f"MPE_simple_spread_v3, {algo.upper()}")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", nargs="+", default=["ippo", "mappo"], choices=["ippo", "mappo"])
    parser.add_argument("--timesteps", type=int, default=409_600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jaxmarl-repo", type=Path, default=Path("/work/.mirror/FLAIROx+JaxMARL/repo"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/jaxmarl_mpe.json"))
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "ALGO"), help=argparse.SUPPRESS)
    parser.add_argument("--plot", type=Path, help="draw the curves of this results file (a PNG beside --out's name)")
    args = parser.parse_args()
    if args.plot:
        plot(json.loads(args.plot.read_text()), Path("docs/curves") / (args.plot.stem + ".png"))
        return
    if args.one:
        row = measure_one(args.one[0], args.one[1], args.seed, args.seeds, args.timesteps, args.jaxmarl_repo)
        print("RESULT " + json.dumps(row), flush=True)
        return
    rows: list[dict] = []
    for repeat in range(args.repeats):
        for algo in args.algos:
            order = ("ppox", "jaxmarl") if repeat % 2 == 0 else ("jaxmarl", "ppox")
            for impl in order:
                command = [sys.executable, __file__, "--one", impl, algo, "--timesteps", str(args.timesteps)]
                command += [
                    "--seeds",
                    str(args.seeds),
                    "--seed",
                    str(args.seed),
                    "--jaxmarl-repo",
                    str(args.jaxmarl_repo),
                ]
                done = subprocess.run(command, capture_output=True, text=True)
                line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    raise SystemExit(f"{impl} {algo} failed:\n{done.stderr[-3000:]}")
                rows.append(json.loads(line[len("RESULT ") :]) | {"repeat": repeat})
                row = rows[-1]
                print(
                    f"{algo} {impl} repeat {repeat}: {row['steps_per_s']:,.0f} steps/s, run {row['run_s']:.1f} s, "
                    f"compile {row['compile_s']:.1f} s, final return {np.mean(final(row['returns'])):.2f}, "
                    f"load {row['load']:.1f}",
                    flush=True,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                result = {
                    "command": "python " + " ".join(sys.argv),
                    "timesteps": args.timesteps,
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
