"""Which program difference makes ppox's MAPPO learn less than JaxMARL's on MPE simple_spread: ppox with one
difference at a time changed to JaxMARL's choice (issue 36), at benchmarks/jaxmarl.py's settings and budget.

    python benchmarks/jaxmarl_ablation.py --variants relu post_memory --timesteps 102400 --seeds 3 \
        --out benchmarks/results/jaxmarl_mappo_mpe_ablation.json

Each variant runs in a fresh process (``--one``): ppox's make_train with JaxMARL's mappo_homogenous_rnn_mpe.yaml
settings (benchmarks/jaxmarl.py's ``ppox_train``), the variant's Config fields changed, 3 seeds vmapped (the same
keys as benchmarks/jaxmarl.py's runs, so "baseline" reproduces its ppox returns). Results accumulate in ``--out``
(a variant run again replaces its row). The variants (what JaxMARL's mappo_rnn_mpe.py does):

- relu: ReLU activations (its recurrent networks use ReLU whatever the yaml's ACTIVATION says; ppox's side took
  the yaml's tanh);
- post_memory: one 128-unit layer after the GRU in each head (--post-memory-sizes 128);
- per_network_clip: actor and critic gradients clipped to max_grad_norm each (--grad-clip per_network);
- vf_quarter: value loss coefficient 0.25 (its critic loss is VF_COEF * 0.5 * MSE; ppox's vf_coef * MSE);
- terminal_limit: the time limit is terminal (no bootstrap from V of the final observation): in this process only,
  ppox.envs.jaxmarl.AgentStack.env_limit is replaced by "never", so MPE's 25-step end is a termination;
- matched: all of the above; matched_bootstrap: all but terminal_limit.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
# benchmarks/jaxmarl.py by its path (its module name is the jaxmarl package's)
_spec = importlib.util.spec_from_file_location("jaxmarl_benchmark", HERE / "jaxmarl.py")
_benchmark = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_benchmark)  # type: ignore[union-attr]
final, ppox_train = _benchmark.final, _benchmark.ppox_train

RELU = {"activation": "relu"}
POST = {"post_memory_sizes": (128,)}
CLIP = {"grad_clip": "per_network"}
VF = {"vf_coef": 0.25}
VARIANTS: dict[str, tuple[dict, bool]] = {  # name: (Config fields, terminal time limit)
    "baseline": ({}, False),
    "relu": (RELU, False),
    "post_memory": (POST, False),
    "relu_post_memory": (RELU | POST, False),
    "per_network_clip": (CLIP, False),
    "vf_quarter": (VF, False),
    "terminal_limit": ({}, True),
    "matched_bootstrap": (RELU | POST | CLIP | VF, False),
    "matched": (RELU | POST | CLIP | VF, True),
}


def terminal_time_limit() -> None:
    """MPE's step limit as a termination, as JaxMARL's baselines treat it (this process only)."""
    import jax.numpy as jnp

    from ppox.envs import jaxmarl

    jaxmarl.AgentStack.env_limit = lambda self, inner: jnp.zeros((), bool)


def measure(variant: str, args) -> dict:
    """The variant's run in this process: compile and run times, the per-update team returns [seeds, updates]."""
    import jax

    fields, terminal = VARIANTS[variant]
    if terminal:
        terminal_time_limit()
    start = time.perf_counter()
    train = ppox_train("mpe", "mappo", args.timesteps, None, fields, matched=False)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compile_s = time.perf_counter() - start
    cpu0, run0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - run0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    returns = np.asarray(out["episode_return"], np.float64)
    return {
        "variant": variant,
        "fields": {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()},
        "terminal_time_limit": terminal,
        "compile_s": compile_s,
        "run_s": run_s,
        "run_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "returns": returns.tolist(),
        "final_return_per_seed": final(returns),
        "final_return_mean": float(np.mean(final(returns))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--timesteps", type=int, default=102_400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/jaxmarl_mappo_mpe_ablation.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args)), flush=True)
        return
    for variant in args.variants:
        command = [sys.executable, __file__, "--one", variant, "--timesteps", str(args.timesteps)]
        command += ["--seeds", str(args.seeds), "--seed", str(args.seed)]
        done = subprocess.run(command, capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
        row = json.loads(line[len("RESULT ") :])
        row["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        result = json.loads(args.out.read_text()) if args.out.exists() else {"timesteps": args.timesteps, "rows": []}
        result["rows"] = [r for r in result["rows"] if r["variant"] != variant] + [row]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(
            f"{variant}: team return {row['final_return_mean']:.2f} {row['final_return_per_seed']}, run "
            f"{row['run_s']:.0f} s, compile {row['compile_s']:.0f} s; {row['uptime']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
