"""Tuned starting points per environment: only the Config fields that differ from the defaults.

``Config.preset(env)`` applies them; flags and keyword arguments override them.
"""

from __future__ import annotations

# Tuned starting points per environment (only the fields that differ from the defaults).
PRESETS: dict[str, dict] = {
    "CartPole-v1": {},
    "Acrobot-v1": {"num_envs": 8},
    # the RL Zoo's PPO hyperparameters (VecNormalize: observations and rewards normalised)
    "MountainCar-v0": {
        "total_timesteps": 1_000_000,
        "num_envs": 16,
        "num_steps": 16,
        "update_epochs": 4,
        "num_minibatches": 4,
        "learning_rate": 3e-4,
        "gae_lambda": 0.98,
        "ent_coef": 0.0,
        "norm_obs": True,
        "norm_reward": True,
    },
    "Pendulum-v1": {
        "total_timesteps": 200_000,
        "num_envs": 8,
        "num_steps": 256,
        "update_epochs": 10,
        "num_minibatches": 32,
        "learning_rate": 1e-3,
        "gamma": 0.9,
        "ent_coef": 0.0,
        "norm_obs": True,
        "norm_reward": True,
        "vf_clip_coef": None,
    },
    "MountainCarContinuous-v0": {
        "total_timesteps": 1_000_000,
        "num_envs": 8,
        "num_steps": 256,
        "update_epochs": 10,
        "num_minibatches": 32,
        "learning_rate": 3e-4,
        "ent_coef": 0.0,
        "norm_obs": True,
        "norm_reward": True,
    },
}
# MuJoCo (host driver, pip install "ppox[mujoco]"): CleanRL's continuous-control hyperparameters. vf_coef 0.25 is
# CleanRL's 0.5 on its halved value loss 0.5 (V - G)^2 (ppox's is (V - G)^2); with separate actor and critic it
# acts through the one gradient-norm clip.
for _mujoco in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "InvertedPendulum-v5"):
    PRESETS[_mujoco] = {
        "total_timesteps": 1_000_000,
        "num_envs": 1,
        "num_steps": 2048,
        "update_epochs": 10,
        "num_minibatches": 32,
        "learning_rate": 3e-4,
        "ent_coef": 0.0,
        "vf_coef": 0.25,
        "norm_obs": True,
        "norm_reward": True,
    }
# Box2D (host driver, pip install "ppox[box2d]"): the RL Zoo's PPO hyperparameters for LunarLander, with
# reward scaling and no value clipping (returns in the hundreds: a 0.2 clip on V starves the critic).
PRESETS["LunarLander-v3"] = {
    "total_timesteps": 1_000_000,
    "num_envs": 16,
    "num_steps": 1024,
    "update_epochs": 4,
    "num_minibatches": 256,
    "learning_rate": 3e-4,
    "gamma": 0.999,
    "gae_lambda": 0.98,
    "ent_coef": 0.01,
    "norm_reward": True,
    "vf_clip_coef": None,
}
# MinAtar (fused, gymnax): gymnax-blines' PPO settings (agents/GAME-MinAtar/ppo.yaml: 64 envs x 128 steps, 4 epochs x 8
# minibatches, gamma 0.999, lr 5e-4 constant (their lr_warmup runs a linear schedule from lr_begin to lr_end, both
# 5e-4), clip 0.2, entropy 0.01, 10M steps), an MLP (256, 256) on the flattened 10x10xC grid by default as they
# publish; --network cnn picks NETWORK_PRESETS' variant: MinAtar's own small CNN (16 3x3 filters) and one
# 128-unit layer (not tuned).
# vf_coef 0.25 is their critic_coeff 0.5: their value loss is 0.5 (V - G)^2, ppox's (V - G)^2. With separate actor
# and critic networks the weight still acts through the one gradient-norm clip (docs/pixels.md).
NETWORK_PRESETS: dict[tuple[str, str | None], dict] = {}
for _game in ("Asterix", "Breakout", "Freeway", "SpaceInvaders", "Seaquest"):
    PRESETS[f"{_game}-MinAtar"] = {
        "total_timesteps": 10_000_000,
        "num_envs": 64,
        "num_steps": 128,
        "learning_rate": 5e-4,
        "anneal_lr": False,
        "gamma": 0.999,
        "num_minibatches": 8,
        "vf_coef": 0.25,
        "activation": "relu",
        "hidden_sizes": (256, 256),
        "network": "mlp",
    }
    NETWORK_PRESETS[(f"{_game}-MinAtar", "cnn")] = {"network": "cnn", "hidden_sizes": (128,)}

# Atari (host driver, pip install "ppox[atari]"): CleanRL's PPO hyperparameters for Atari (value clip = surrogate
# clip 0.1), its network (Nature CNN -> 512 ReLU, shared by actor and critic), ale-py's threaded vector env.
# vf_coef 0.25 is CleanRL's 0.5: its value loss is 0.5 (V - G)^2, ppox's (V - G)^2 (docs/design-notes.md), and
# with one trunk for actor and critic the weight sets how much the value term shapes the shared layers.
for _game in ("Pong", "Breakout", "BeamRider", "SpaceInvaders", "Seaquest", "Qbert", "MsPacman", "Enduro"):
    PRESETS[f"ALE/{_game}-v5"] = {
        "total_timesteps": 10_000_000,
        "num_envs": 8,
        "num_steps": 128,
        "update_epochs": 4,
        "num_minibatches": 4,
        "learning_rate": 2.5e-4,
        "clip_coef": 0.1,
        "vf_clip_coef": 0.1,
        "vf_coef": 0.25,
        "ent_coef": 0.01,
        "gae_lambda": 0.95,
        "network": "cnn",
        "shared_trunk": True,
        "hidden_sizes": (512,),
        "activation": "relu",
        "vec": "ale",
        "checkpoint_every": 1_000_000,
    }

# Memory tasks (--memory): partially observed; memoryless PPO cannot solve them (docs/memory.md).
# CartPoleNoVel-v1: close to the RL Zoo's RecurrentPPO settings (8 envs x 32 steps, one minibatch, lr 1e-3,
# gamma 0.98, GAE 0.8, no entropy bonus, one 64-unit ReLU layer) with 10 epochs instead of 20 and a 64-unit
# GRU. 300k steps, 2 seeds: 500 / 482; with CartPole's own settings and a 128-unit GRU: 171-331 at 500k.
PRESETS["CartPoleNoVel-v1"] = {
    "memory": "gru",
    "memory_size": 64,
    "num_envs": 8,
    "num_steps": 32,
    "num_minibatches": 1,
    "update_epochs": 10,
    "learning_rate": 1e-3,
    "gamma": 0.98,
    "gae_lambda": 0.8,
    "ent_coef": 0.0,
    "hidden_sizes": (64,),
    "activation": "relu",
}
PRESETS["MemoryChain-bsuite"] = {"memory": "gru", "total_timesteps": 100_000}
# the answer is due 3 steps after its symbol and paid at once: a short horizon (gamma 0.5) and a higher step
# size learn it in 100k steps (1.00 at 100k; with CartPole's settings 0.49)
PRESETS["RepeatPrevious-v0"] = {
    "memory": "gru",
    "total_timesteps": 100_000,
    "learning_rate": 1e-3,
    "gamma": 0.5,
    "ent_coef": 0.0,
}
PRESETS["PendulumNoVel-v1"] = {**PRESETS["Pendulum-v1"], "memory": "gru", "num_minibatches": 4}


# Brax (fused, pip install "ppox[brax]"): Brax's published PPO settings (the train_fn of its training notebook), mapped
# to ppox's fields (docs/jax-envs.md, Brax): unroll_length * batch_size * num_minibatches env steps per update are
# num_envs envs x num_steps; num_updates_per_batch -> update_epochs; discounting -> gamma; entropy_cost -> ent_coef;
# reward_scaling -> reward_scale; normalize_observations -> norm_obs; num_timesteps / action_repeat -> total_timesteps
# (ppox counts the policy's steps). Brax's PPO: clip 0.3, GAE 0.95, no value clip, no gradient clip, a constant
# learning rate, value loss 0.5 * 0.5 (V - G)^2 (vf_coef 0.25 on ppox's (V - G)^2). Brax publishes SAC, not PPO,
# for hopper and walker2d: their presets take ant's PPO settings.
def _brax(steps, envs, batch, unroll, minibatches, epochs, lr, entropy, gamma, reward_scale, repeat=1) -> dict:
    return {
        "total_timesteps": steps // repeat,
        "num_envs": envs,
        "num_steps": unroll * batch * minibatches // envs,
        "num_minibatches": minibatches,
        "update_epochs": epochs,
        "learning_rate": lr,
        "anneal_lr": False,
        "ent_coef": entropy,
        "gamma": gamma,
        "gae_lambda": 0.95,
        "clip_coef": 0.3,
        "vf_clip_coef": None,
        "max_grad_norm": None,
        "vf_coef": 0.25,
        "norm_obs": True,
        "reward_scale": float(reward_scale),
        "action_repeat": repeat,
        "checkpoint_every": 5_000_000,
    }


BRAX_PRESETS = {
    "ant": _brax(50_000_000, 4096, 2048, 5, 32, 4, 3e-4, 1e-2, 0.97, 10),
    "humanoid": _brax(50_000_000, 2048, 1024, 10, 32, 8, 3e-4, 1e-3, 0.97, 0.1),
    "halfcheetah": _brax(50_000_000, 2048, 512, 20, 32, 8, 3e-4, 1e-3, 0.95, 1),
    "inverted_pendulum": _brax(2_000_000, 2048, 1024, 5, 32, 4, 3e-4, 1e-2, 0.97, 10),
    "reacher": _brax(50_000_000, 2048, 256, 50, 32, 8, 3e-4, 1e-3, 0.95, 5, repeat=4),
}
BRAX_PRESETS["hopper"] = BRAX_PRESETS["walker2d"] = BRAX_PRESETS["ant"]
for _name, _preset in BRAX_PRESETS.items():
    for _id in (f"brax/{_name}", f"brax/{_name}/positional", f"brax/{_name}/generalized", f"brax/{_name}/spring"):
        PRESETS[_id] = _preset
# MuJoCo Playground (fused, pip install "ppox[playground]"): Playground's own Brax PPO settings for its dm_control suite
# (mujoco_playground.config.dm_control_suite_params.brax_ppo_config), mapped as Brax's above: 2048 envs x 480 steps
# (unroll 30 x batch 1024 x 32 minibatches), 16 epochs, lr 1e-3, entropy 1e-2, discount 0.995, reward scaling 10,
# 60M steps. Its networks are Brax's defaults, not mapped (as for Brax; docs/jax-envs.md).
for _name in ("CartpoleBalance", "CheetahRun", "WalkerWalk"):
    PRESETS[f"playground/{_name}"] = _brax(60_000_000, 2048, 1024, 30, 32, 16, 1e-3, 1e-2, 0.995, 10)
# pgx games against a random opponent, masks from the game's legal_action_mask (pip install "ppox[pgx]")
PRESETS["TicTacToe-pgx"] = {"total_timesteps": 200_000}
PRESETS["ConnectFour-pgx"] = {"total_timesteps": 1_000_000, "num_envs": 16, "hidden_sizes": (128, 128)}
# Craftax (fused, pip install "ppox[craftax]"): the Craftax baselines' PPO-RNN defaults (Craftax_Baselines
# ppo_rnn.py: 1024 envs x 64 steps, 4 epochs x 8 minibatches, lr 2e-4 annealed, gamma 0.99, GAE 0.8, clip 0.2 on
# ratio and value, entropy 0.01, gradient norm 1.0, 1e9 steps; a 512-unit ReLU layer, then a 512-unit GRU shared by
# actor and critic). vf_coef 0.25 is their 0.5 on the halved value loss 0.5 (V - G)^2. Their heads add two 512-unit
# layers after the GRU; ppox's heads are linear (docs/jax-envs.md). The pixel ids take the CNN torso.
for _craftax in (
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
    "Craftax-Pixels-v1",
):
    PRESETS[_craftax] = {
        "total_timesteps": 1_000_000_000,
        "num_envs": 1024,
        "num_steps": 64,
        "update_epochs": 4,
        "num_minibatches": 8,
        "learning_rate": 2e-4,
        "gamma": 0.99,
        "gae_lambda": 0.8,
        "clip_coef": 0.2,
        "vf_clip_coef": 0.2,
        "ent_coef": 0.01,
        "vf_coef": 0.25,
        "max_grad_norm": 1.0,
        "memory": "gru",
        "memory_size": 512,
        "hidden_sizes": (512,),
        "activation": "relu",
        "shared_trunk": True,
        "checkpoint_every": 10_000_000,
    }
# PettingZoo (host driver, pip install "ppox[pettingzoo]"): every agent of every game is a row, so num_envs counts
# agents (8 games of simple_spread's 3); one policy for all (IPPO with parameter sharing, agent ids). Measured here:
# 96k agent steps take the per-agent return from a random policy's -26.4 to about -21 (tests/envs/test_pettingzoo.py).
PRESETS["pettingzoo/mpe2.simple_spread_v3"] = {
    "total_timesteps": 1_000_000,
    "num_envs": 24,
    "num_steps": 50,
    "update_epochs": 4,
    "num_minibatches": 2,
    "learning_rate": 3e-3,
    "ent_coef": 0.01,
    "norm_obs": True,
    "agent_id": True,
}

# JaxMARL's MPE (fused, pip install "ppox[marl]"): its IPPO baseline's published settings (baselines/IPPO/config/
# ippo_ff_mpe.yaml; the rest are ppox's defaults: lr 2.5e-4 annealed, 4 epochs x 4 minibatches, clip 0.2, ent 0.01,
# 64x64 tanh). Its MAPPO (mappo_homogenous_rnn_mpe.yaml) is these with --critic world_state --memory gru
# --memory-size 128 --hidden-sizes 128 --learning-rate 2e-3, and as mappo_rnn_mpe.py builds it --post-memory-sizes 128
# --activation relu --grad-clip per_network (docs/multi-agent.md). JaxMARL's value loss is VF_COEF * 0.5 * MSE: its
# VF_COEF 0.5 is ppox's --vf-coef 0.25 (ppox's default 0.5 here weighs the critic's loss twice as much).
PRESETS["MPE_simple_spread_v3"] = {"total_timesteps": 10_000_000, "num_envs": 16, "num_steps": 128}
