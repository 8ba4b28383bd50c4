"""sb3-contrib's RecurrentPPO (MlpLstmPolicy) on CartPole-v1 without its velocities, the hyperparameters of
benchmarks/recurrent.py's TASK. Prints one JSON line; run with bench-envs/sb3contrib/bin/python."""

from __future__ import annotations

import argparse
import json
import time

from recurrent import TASK


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)

    class NoVelocity(gym.ObservationWrapper):  # the same entries hidden as ppox's --hide-obs 1 3
        def __init__(self, env):
            super().__init__(env)
            low, high = env.observation_space.low[[0, 2]], env.observation_space.high[[0, 2]]
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

        def observation(self, obs):
            return obs[[0, 2]]

    vec = DummyVecEnv([lambda: Monitor(NoVelocity(gym.make("CartPole-v1")))] * TASK["num_envs"])
    batch = TASK["num_envs"] * TASK["num_steps"]
    model = RecurrentPPO("MlpLstmPolicy", vec, n_steps=TASK["num_steps"],
                         batch_size=batch // TASK["num_minibatches"], n_epochs=TASK["update_epochs"],
                         learning_rate=lambda progress: TASK["learning_rate"] * progress, gamma=0.99, gae_lambda=0.95,
                         clip_range=0.2, ent_coef=TASK["ent_coef"], vf_coef=0.5, max_grad_norm=0.5, seed=args.seed,
                         policy_kwargs={"lstm_hidden_size": TASK["memory_size"], "net_arch": [64, 64]},
                         verbose=0, device="cpu")
    steps = TASK["total_timesteps"] // batch * batch
    start = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - start
    finals = []
    for monitor in vec.envs:
        lengths, rewards = np.cumsum(monitor.get_episode_lengths()), monitor.get_episode_rewards()
        finals += [r for r, end in zip(rewards, lengths) if end > 0.9 * steps / TASK["num_envs"]]
    print(json.dumps({"library": "sb3-contrib RecurrentPPO", "seed": args.seed, "wall_s": wall,
                      "steps_per_s": steps / wall, "final_return": float(np.mean(finals)) if finals else None}))


if __name__ == "__main__":
    main()
