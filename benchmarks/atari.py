"""Benchmark: Atari throughput of ppox's host driver, the env alone, and Stable-Baselines3 PPO.

    .venv/bin/python benchmarks/atari.py --steps 4096       # table + results/atari.json (about 10 min)

Same work everywhere: BreakoutNoFrameskip-v4 (no sticky actions), 8 envs x 128 steps, 4 epochs x 4
minibatches, the Nature CNN. Rows:
- env alone, random actions, 8 envs: ale-py's AtariVectorEnv (--vec ale), EnvPool (--vec envpool, where it
  is installed) and Gymnasium's AtariPreprocessing + frame stack in ppox's SyncEnvs (--vec sync); with
  --only-env, just these rows, alternated --repeats times (medians);
- ppox parts: one jitted act on 8 observations (per vector step) and one whole update (learn) on a batch;
- ppox host against SB3, alternated --repeats times in one run: `ppox.train` and SB3's `learn` of --steps
  steps each, end to end (ppox's compilation included) and in the steady state (the median time of an
  update cycle, collect + learn, after the first); medians over the repeats, and their ratios;
- with --only-drivers: training through ale-py, EnvPool, and EnvPool stepped inside the fused program
  (--driver fused), alternated;
- SB3: PPO("CnnPolicy") on make_atari_env (AtariWrapper) + VecFrameStack, in the bench env at
  bench-envs/sb3contrib (torch CPU; `ONLY=sb3contrib bash benchmarks/setup_envs.sh`), given ale-py and
  OpenCV from ppox's .venv on PYTHONPATH (that env is not modified). Skipped when it is missing.
A benchmark, not a test: it asserts nothing. Keep --steps small on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_ID = "BreakoutNoFrameskip-v4"
NUM_ENVS, NUM_STEPS = 8, 128
SB3_PYTHON = HERE.parent / "bench-envs" / "sb3contrib" / "bin" / "python"


def env_alone(vec: str, steps: int) -> float:
    """Random-action steps per second (over all envs) of the training vector env."""
    import numpy as np

    from ppox.envs.atari import make_atari_envs

    games = make_atari_envs(ENV_ID, NUM_ENVS, vec)
    games.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps // NUM_ENVS):
        games.step(rng.integers(0, 4, NUM_ENVS))
    elapsed = time.perf_counter() - start
    games.close()
    return steps / elapsed


def ppox_parts(repeats: int = 2) -> dict:
    """Seconds per jitted act (8 envs) and per whole update (learn on 8 x 128)."""
    import jax
    import numpy as np

    import ppox
    from ppox.config.presets import PRESETS
    from ppox.drivers.host import HostDriver

    config = ppox.Config(**{**PRESETS["ALE/Breakout-v5"], "env": ENV_ID, "save": False, "progress": False})
    driver = HostDriver(config, ENV_ID)
    state = driver.init()
    collector, learner = driver.source, state.learner
    collector.actor.load(learner.params, learner.obs_stats)
    obs, rng = collector.first_obs(), np.random.default_rng(0)
    collector.actor.act(obs, rng)
    start = time.perf_counter()
    for _ in range(50):
        collector.actor.act(obs, rng)
    act_s = (time.perf_counter() - start) / 50
    rollout, *_ = collector.collect(learner.params, learner.obs_stats)
    learner, metrics = driver._learn(learner, rollout, 0, driver.hyper)  # (first call: compilation)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for i in range(repeats):
        learner, metrics = driver._learn(learner, rollout, i, driver.hyper)
        jax.block_until_ready(metrics)
    learn_s = (time.perf_counter() - start) / repeats
    driver.close()
    batch_mib = (rollout.obs.nbytes + rollout.next_obs.nbytes) / 2**20
    return {"act_s": act_s, "learn_s": learn_s, "rollout_obs_mib_uint8": batch_mib}


def ppox_train(steps: int) -> dict:
    """`ppox.train` of ``steps``: wall time (compilation included) and the steady state (median update
    cycle after the first, from metrics.csv)."""
    import numpy as np

    import ppox
    from ppox.config.presets import PRESETS

    config = ppox.Config(**{**PRESETS["ALE/Breakout-v5"], "env": ENV_ID, "total_timesteps": steps,
                            "run_dir": tempfile.mkdtemp(), "tensorboard": False, "progress": False})
    start = time.perf_counter()
    result = ppox.train(config)
    wall = time.perf_counter() - start
    rates = np.atleast_1d(np.genfromtxt(result.run_path / "metrics.csv", delimiter=",", names=True)["steps_per_second"])
    steps_done = result.config.num_updates * config.batch_size
    return {"wall_s": wall, "steps": steps_done, "end_to_end": steps_done / wall,
            "steady": float(np.median(rates[1:] if len(rates) > 1 else rates))}


SB3_CODE = """
import sys, time, statistics, gymnasium as gym, ale_py, torch
if {threads}:
    torch.set_num_threads({threads})
gym.register_envs(ale_py)
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack

class Cycles(BaseCallback):  # the time at each rollout's start: one update cycle (collect + train) apart
    def _on_rollout_start(self):
        self.starts = getattr(self, "starts", []) + [time.perf_counter()]
    def _on_step(self):
        return True

env = VecFrameStack(make_atari_env("{env}", n_envs={n}, seed=0), n_stack=4)
# vf_coef 0.25: SB3's value loss is (V - G)^2 as ppox's, so this is the ppox preset's weight (CleanRL's 0.5 x 1/2)
model = PPO("CnnPolicy", env, n_steps={t}, batch_size={mb}, n_epochs=4, learning_rate=2.5e-4, clip_range=0.1,
            ent_coef=0.01, vf_coef=0.25, seed=0, device="cpu")
cycles = Cycles()
start = time.perf_counter()
model.learn({steps}, callback=cycles)
end = time.perf_counter()
marks = cycles.starts + [end]
gaps = [b - a for a, b in zip(marks[1:-1], marks[2:])] or [end - start]
print("SB3", {steps} / (end - start), {n} * {t} / statistics.median(gaps))
"""


def sb3(steps: int, threads: int = 0) -> dict | None:
    """SB3's steps per second, end to end and in the steady state, or None without its bench env; torch on
    ``threads`` threads (0: torch's default, one per core)."""
    if not SB3_PYTHON.exists():
        return None
    import ale_py
    import cv2

    extra = Path(tempfile.mkdtemp())
    site = Path(ale_py.__file__).parent.parent
    for name in ("ale_py", "cv2", "opencv_python_headless.libs", "ale_py.libs", "ale_py-*.dist-info",
                 "opencv_python_headless-*.dist-info"):
        for path in site.glob(name):
            (extra / path.name).symlink_to(path)
    code = SB3_CODE.format(env=ENV_ID, n=NUM_ENVS, t=NUM_STEPS, mb=NUM_ENVS * NUM_STEPS // 4, steps=steps,
                           threads=threads)
    out = subprocess.run([str(SB3_PYTHON), "-c", code], capture_output=True, text=True, timeout=1800,
                         env={**os.environ, "PYTHONPATH": str(extra)})
    lines = [line for line in out.stdout.splitlines() if line.startswith("SB3")]
    if not lines:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    end_to_end, steady = map(float, lines[-1].split()[1:])
    return {"end_to_end": end_to_end, "steady": steady}


DRIVERS = {"host --vec ale": {"vec": "ale"}, "host --vec envpool": {"vec": "envpool"},
           "fused --vec envpool": {"vec": "envpool", "driver": "fused"}}


def driver_rows(steps: int, repeats: int) -> None:
    """Training steps/s of each way to step the games (the same PPO), alternated, medians of the updates after
    the first (compilation apart): results/atari_drivers.json."""
    import statistics

    import numpy as np

    import ppox
    from ppox.config.presets import PRESETS

    runs = {name: [] for name in DRIVERS}
    for _ in range(repeats):
        for name, how in DRIVERS.items():
            config = ppox.Config(**{**PRESETS["ALE/Breakout-v5"], "env": ENV_ID, "total_timesteps": steps,
                                    "run_dir": tempfile.mkdtemp(), "tensorboard": False, "progress": False, **how})
            log = np.genfromtxt(ppox.train(config).run_path / "metrics.csv", delimiter=",", names=True)
            runs[name].append(float(np.median(log["steps_per_second"][1:])))
            print(f"{name}: {runs[name][-1]:.0f} steps/s", flush=True)
    medians = {name: statistics.median(r) for name, r in runs.items()}
    print("training, 8 envs x 128 steps (median steps/s): " + ", ".join(f"{n} {m:.0f}" for n, m in medians.items()))
    out = HERE / "results" / "atari_drivers.json"
    out.write_text(json.dumps({"env": ENV_ID, "num_envs": NUM_ENVS, "steps": steps, "runs": runs, "medians": medians,
                               "load_average": os.getloadavg()}, indent=2))


def env_rows(steps: int, repeats: int) -> None:
    """Env-alone steps/s of each backend, alternated, medians: results/atari_envs.json."""
    import importlib.util
    import statistics

    vecs = ["ale", "sync"] + (["envpool"] if importlib.util.find_spec("envpool") else [])
    runs = {vec: [] for vec in vecs}
    for _ in range(repeats):
        for vec in vecs:
            runs[vec].append(env_alone(vec, steps))
    medians = {vec: statistics.median(r) for vec, r in runs.items()}
    print("env alone, random actions, 8 envs (median steps/s): " + ", ".join(f"{v} {m:.0f}" for v, m in medians.items()))
    out = HERE / "results" / "atari_envs.json"
    out.write_text(json.dumps({"env": ENV_ID, "num_envs": NUM_ENVS, "steps": steps, "runs": runs, "medians": medians,
                               "load_average": os.getloadavg()}, indent=2))


def side_by_side(steps: int, repeats: int, with_sb3: bool, sb3_threads: int = 0) -> dict:
    """ppox and SB3 on the same work, alternated ``repeats`` times; medians of each figure."""
    import statistics

    runs = {"ppox": [], "sb3": []}
    for _ in range(repeats):
        runs["ppox"].append(ppox_train(steps))
        print(f"ppox: {runs['ppox'][-1]}", flush=True)
        if with_sb3 and (result := sb3(steps, sb3_threads)) is not None:
            runs["sb3"].append(result)
            print(f"SB3: {result}", flush=True)
    medians = {name: {key: statistics.median(r[key] for r in rs) for key in ("end_to_end", "steady")}
               for name, rs in runs.items() if rs}
    return {"runs": runs, "medians": medians}


def report(results: dict) -> None:
    split = results["split_per_update_s"]
    print(f"env alone, random actions, {NUM_ENVS} envs: ale {results['env_ale']:.0f} steps/s, "
          f"Gymnasium sync {results['env_sync']:.0f} steps/s")
    print(f"ppox parts: act {results['act_s'] * 1e3:.1f} ms per vector step, learn {results['learn_s']:.1f} s per "
          f"update of {NUM_ENVS * NUM_STEPS}; per update env/act/learn = "
          + " / ".join(f"{v:.2f} s" for v in split.values()) + f" (learn {split['learn'] / sum(split.values()):.0%})")
    medians = results["medians"]
    for name, m in medians.items():
        print(f"{name}: {m['end_to_end']:.1f} steps/s end to end, {m['steady']:.1f} in the steady state "
              f"(median of {len(results['runs'][name])} runs of {results['steps']} steps)")
    if "sb3" in medians:
        print("ppox / SB3: " + ", ".join(f"{key} {medians['ppox'][key] / medians['sb3'][key]:.2f}x"
                                         for key in ("end_to_end", "steady")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4096, help="steps per training run (keep it short)")
    parser.add_argument("--env-steps", type=int, default=4000, help="steps of each env-alone run")
    parser.add_argument("--no-sb3", action="store_true")
    parser.add_argument("--only-env", action="store_true", help="just the env-alone rows (results/atari_envs.json)")
    parser.add_argument("--only-drivers", action="store_true",
                        help="just training through ale, EnvPool and EnvPool on the fused driver (atari_drivers.json)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sb3-threads", type=int, default=0,
                        help="torch threads for SB3 (torch.set_num_threads; 0: torch's default, one per core)")
    parser.add_argument("--out", default="atari.json", help="file name under benchmarks/results/")
    args = parser.parse_args()
    if args.only_drivers:
        driver_rows(args.steps, args.repeats)
        return
    if args.only_env:
        env_rows(args.env_steps, args.repeats)
        return
    results = {"env_ale": env_alone("ale", args.env_steps), "env_sync": env_alone("sync", args.env_steps)}
    print(f"env alone: ale {results['env_ale']:.0f}, sync {results['env_sync']:.0f} steps/s", flush=True)
    results.update(ppox_parts())
    print(f"ppox parts: {results}", flush=True)
    results["split_per_update_s"] = {"env": NUM_STEPS * NUM_ENVS / results["env_ale"],
                                     "act": NUM_STEPS * results["act_s"], "learn": results["learn_s"]}
    results.update(side_by_side(args.steps, args.repeats, not args.no_sb3, args.sb3_threads), steps=args.steps,
                   sb3_threads=args.sb3_threads,
                   command=" ".join(["benchmarks/atari.py"] + sys.argv[1:]), load_average=os.getloadavg())
    report(results)
    out = HERE / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
