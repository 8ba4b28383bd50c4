"""sb3-contrib's MaskablePPO on Taxi-v4 (masks from Taxi's own action_mask(state)), the hyperparameters of
benchmarks/masks.py's TASK. Prints one JSON line; run with bench-envs/sb3contrib/bin/python."""

from __future__ import annotations

import argparse
import json
import time

from masks import TASK


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.wrappers import ActionMasker
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)

    def make():
        env = Monitor(gym.make("Taxi-v4"))
        return ActionMasker(env, lambda e: e.unwrapped.action_mask(e.unwrapped.s).astype(bool))

    vec = DummyVecEnv([make] * TASK["num_envs"])
    batch = TASK["num_envs"] * TASK["num_steps"]
    model = MaskablePPO("MlpPolicy", vec, n_steps=TASK["num_steps"], batch_size=batch // TASK["num_minibatches"],
                        n_epochs=TASK["update_epochs"], learning_rate=lambda progress: TASK["learning_rate"] * progress,
                        gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=TASK["ent_coef"], vf_coef=0.5,
                        max_grad_norm=0.5, seed=args.seed, verbose=0, device="cpu")
    steps = TASK["total_timesteps"] // batch * batch
    start = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - start
    finals = []
    for monitor in (e.env for e in vec.envs):  # ActionMasker -> Monitor
        lengths, rewards = np.cumsum(monitor.get_episode_lengths()), monitor.get_episode_rewards()
        finals += [r for r, end in zip(rewards, lengths) if end > 0.9 * steps / TASK["num_envs"]]
    print(json.dumps({"library": "sb3-contrib MaskablePPO", "seed": args.seed, "wall_s": wall,
                      "steps_per_s": steps / wall, "final_return": float(np.mean(finals)) if finals else None}))


if __name__ == "__main__":
    main()
