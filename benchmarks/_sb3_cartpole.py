"""Stable-Baselines3 PPO on Gymnasium CartPole-v1 with the CleanRL/PureJaxRL CartPole hyperparameters.

Run with the SB3 virtualenv (bench-envs/sb3/bin/python, made by setup_envs.sh).
Prints one JSON line on stdout; everything else goes to stderr.

What is measured:
  wall_s        seconds of ``model.learn(...)`` (rollouts + updates; torch has no compile step).
                Env construction (DummyVecEnv of 4 Monitor-wrapped envs) and model construction
                happen before the timer starts.
  final_return  mean return of the training episodes (Monitor records) that finished during the
                last tenth of the updates, collected by a callback together with the timestep at
                which each episode finished.

Hyperparameters that SB3 cannot match exactly (see benchmarks/README.md):
  * value clipping: SB3's default ``clip_range_vf=None`` (no value clipping) is kept; SB3's
    optional form clips the prediction without the max(unclipped, clipped) of CleanRL, so it is
    not the same loss either (``--clip-range-vf 0.2`` switches it on for comparison);
  * the learning-rate schedule is SB3's progress-based one, ``lr * progress_remaining``, where
    progress is updated after each rollout: update i uses lr*(1 - i/N) instead of lr*(1 - (i-1)/N);
  * SB3 bootstraps the value at time-limit truncations (500 steps), CleanRL/PureJaxRL do not.

Threads: torch runs with 1 intra-op thread by default here (--torch-threads). Its default pool
(one thread per core) made SB3 10-25x slower on the shared 2-core machine, because tiny 64x64
matmuls gain nothing from threads and the pool threads spin against other processes. One thread
was the faster setting in every measurement here, so it is the fairer comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

NUM_ENVS = 4
NUM_STEPS = 128
UPDATE_EPOCHS = 4
NUM_MINIBATCHES = 4
LR = 2.5e-4


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-timesteps", type=int, default=500_000)
    p.add_argument("--clip-range-vf", type=float, default=None,
                   help="SB3 value clipping (default None = SB3's default, off)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads (default 1; 0 = torch's default, one per core). "
                        "With the default pool, on a loaded 2-core machine SB3 ran 10-25x slower "
                        "(threads spinning against each other for tiny 64x64 matmuls)")
    args = p.parse_args()

    import gymnasium as gym
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    batch = NUM_ENVS * NUM_STEPS
    num_updates = args.total_timesteps // batch
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
            env = Monitor(gym.make("CartPole-v1"))
            env.reset(seed=args.seed * 1000 + i)
            return env

        return thunk

    venv = DummyVecEnv([make_env(i) for i in range(NUM_ENVS)])
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=lambda progress_remaining: LR * progress_remaining,
        n_steps=NUM_STEPS,
        batch_size=batch // NUM_MINIBATCHES,
        n_epochs=UPDATE_EPOCHS,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=args.clip_range_vf,
        normalize_advantage=True,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        # SB3's defaults, spelled out: separate 64x64 tanh actor and critic, orthogonal init,
        # Adam eps=1e-5.
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                           ortho_init=True),
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
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
                "library": "sb3",
                "wall_s": wall,
                "final_return": final_return,
                "final_episodes": len(last),
                "steps": int(model.num_timesteps),
                "num_updates": num_updates,
                "seed": args.seed,
                "clip_range_vf": args.clip_range_vf,
                "torch_threads": torch.get_num_threads(),
                "versions": {
                    "stable_baselines3": stable_baselines3.__version__,
                    "torch": torch.__version__,
                    "gymnasium": gym.__version__,
                },
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
