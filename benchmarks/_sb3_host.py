"""Stable-Baselines3 PPO on a Gymnasium env (CartPole-v1 or HalfCheetah-v5), hyperparameters of
benchmarks/host.py's TASKS (CleanRL's).

Run with the SB3 virtualenv (bench-envs/sb3/bin/python, made by setup_envs.sh).
Prints one JSON line on stdout; everything else goes to stderr. ``_sbx_host.py`` runs the same
code with SBX's PPO (``run(...)`` below).

What is measured:
  wall_s        seconds of ``model.learn(...)``: rollouts + updates (SBX: JIT compilation
                included). Env construction (DummyVecEnv of Monitor-wrapped envs, VecNormalize
                for HalfCheetah) and model construction happen before the timer starts.
  final_return  mean return of the training episodes (Monitor records, raw rewards: Monitor sits
                inside VecNormalize) that finished during the last tenth of the updates,
                collected by a callback together with the timestep at which each episode finished.

Hyperparameters that SB3 cannot match exactly (see benchmarks/README.md): no value clipping
(SB3's default ``clip_range_vf=None``), ``lr * progress_remaining`` with progress updated after
each rollout, VecNormalize updating its statistics every step, bootstrapping at time-limit
truncations.

Threads: torch runs with 1 intra-op thread (--torch-threads), as in _sb3_cartpole.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version

from host import TASKS


def parse_args(description: str):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--env", choices=sorted(TASKS), default="CartPole-v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-timesteps", type=int, default=None,
                   help="env steps (default: the task's, 500000 CartPole / 100000 HalfCheetah)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads (default 1; 0 = torch's default, one per core)")
    return p.parse_args()


def run(library: str, args, make_model, versions: dict) -> None:
    """Build the vec env, ``make_model(venv, task, batch)``, time ``learn``, print the JSON line."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    task = TASKS[args.env]
    total = args.total_timesteps or task["total_timesteps"]
    batch = task["num_envs"] * task["num_steps"]
    num_updates = total // batch
    steps = num_updates * batch  # SB3 collects whole rollouts while num_timesteps < total

    class EpisodeRecorder(BaseCallback):
        """Records (timestep at which the episode finished, return) for every finished episode."""

        def __init__(self):
            super().__init__()
            self.episodes: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                ep = info.get("episode")
                if ep is not None:
                    self.episodes.append((self.num_timesteps, float(ep["r"])))
            return True

    def make_env(i):
        def thunk():
            # disable_env_checker=True: the same wrapper stack as ppox's host driver
            # (TimeLimit + OrderEnforcing, no PassiveEnvChecker)
            env = Monitor(gym.make(args.env, disable_env_checker=True))
            env.reset(seed=args.seed * 1000 + i)
            return env

        return thunk

    venv = DummyVecEnv([make_env(i) for i in range(task["num_envs"])])
    if task["norm_obs"] or task["norm_reward"]:
        venv = VecNormalize(venv, norm_obs=task["norm_obs"], norm_reward=task["norm_reward"],
                            clip_obs=10.0, clip_reward=10.0, gamma=task["gamma"], epsilon=1e-8)
    model = make_model(venv, task, batch)
    recorder = EpisodeRecorder()

    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=recorder)
    wall = time.perf_counter() - t0

    k = max(1, num_updates // 10)
    threshold = (num_updates - k) * batch  # episodes finishing after this step: last k updates
    last = [r for t, r in recorder.episodes if t > threshold]
    final_return = sum(last) / len(last) if last else float("nan")

    print(
        json.dumps(
            {
                "library": library,
                "env": args.env,
                "wall_s": wall,
                "final_return": final_return,
                "final_episodes": len(last),
                "episodes": len(recorder.episodes),
                "steps": int(model.num_timesteps),
                "num_updates": num_updates,
                "seed": args.seed,
                "torch_threads": torch.get_num_threads(),
                "versions": {**versions, "torch": torch.__version__, "gymnasium": gym.__version__,
                             **({"mujoco": version("mujoco")} if "HalfCheetah" in args.env else {})},
            }
        ),
        flush=True,
    )


def main():
    args = parse_args(__doc__.split("\n")[0])

    import stable_baselines3
    import torch
    from stable_baselines3 import PPO

    def make_model(venv, task, batch):
        lr = task["learning_rate"]
        return PPO(
            "MlpPolicy",
            venv,
            learning_rate=lambda progress_remaining: lr * progress_remaining,
            n_steps=task["num_steps"],
            batch_size=batch // task["num_minibatches"],
            n_epochs=task["update_epochs"],
            gamma=task["gamma"],
            gae_lambda=task["gae_lambda"],
            clip_range=task["clip_coef"],
            clip_range_vf=None,  # SB3's default; its optional form is not CleanRL's max(...) loss
            normalize_advantage=True,
            ent_coef=task["ent_coef"],
            vf_coef=task["vf_coef"],
            max_grad_norm=task["max_grad_norm"],
            # SB3's defaults, spelled out: separate 64x64 tanh actor and critic, orthogonal init,
            # Adam eps=1e-5, state-independent log std initialised to 0 (continuous actions).
            policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                               ortho_init=True, log_std_init=0.0),
            seed=args.seed,
            device="cpu",
            verbose=0,
        )

    run("sb3", args, make_model, {"stable_baselines3": stable_baselines3.__version__})


if __name__ == "__main__":
    sys.exit(main())
