"""The env ids that ppox trains on and tests, by family: what ``ppox envs`` lists (``ppox.envs.families``)."""

from __future__ import annotations

# gymnax ids that ppox trains on and tests (the others are registered but not presets).
JAX_ENV_IDS = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
    "Seaquest-MinAtar",
)
# ppox's own JAX-native tasks (ppox.envs.jax_tasks): memory tasks and pgx games (pip install "ppox[pgx]")
TASK_IDS = (
    "CartPoleNoVel-v1",
    "PendulumNoVel-v1",
    "RepeatPrevious-v0",
    "TicTacToe-pgx",
    "ConnectFour-pgx",
    "Othello-pgx",
    "Go9x9-pgx",
)
GYMNAX_MEMORY_IDS = ("MemoryChain-bsuite",)  # gymnax's memory tasks, listed with ppox's
# JAX worlds of other packages that ppox trains on and tests (any id of theirs runs, with the prefix)
NAVIX_IDS = ("Navix-Empty-5x5-v0", "Navix-DoorKey-5x5-v0")  # navix's own ids
JUMANJI_IDS = ("Jumanji-Game2048-v1", "Jumanji-Knapsack-v1")  # "Jumanji-" + a jumanji id
XMINIGRID_IDS = ("XLand-MiniGrid-Empty-6x6", "XLand-MiniGrid-DoorKey-5x5")  # "XLand-" + an xminigrid id
# Craftax's four envs (symbolic: an MLP torso; pixels: the CNN torso), their presets with --memory gru
CRAFTAX_IDS = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1", "Craftax-Classic-Pixels-v1", "Craftax-Pixels-v1")
# Brax's locomotion worlds with presets (brax/NAME: the positional backend; brax/NAME/BACKEND for another)
BRAX_NAMES = ("ant", "halfcheetah", "hopper", "walker2d", "humanoid", "inverted_pendulum", "reacher")
BRAX_IDS = tuple(f"brax/{name}" for name in BRAX_NAMES)
# MuJoCo Playground's worlds with presets (playground/NAME: its dm_control suite registry, on MJX's JAX implementation)
PLAYGROUND_IDS = ("playground/CartpoleBalance", "playground/CheetahRun", "playground/WalkerWalk")
# JaxMARL's multi-agent envs (agents stacked on the batch axis; any JaxMARL id, or SMAX- + a SMAX map)
JAXMARL_IDS = ("MPE_simple_spread_v3", "MPE_simple_reference_v3")
JAXMARL_OTHERS = ("hanabi", "overcooked", "switch_riddle", "coin_game")  # JaxMARL's ids without a prefix
PETTINGZOO_IDS = ("pettingzoo/mpe2.simple_spread_v3",)  # "pettingzoo/" + a PettingZoo env module
# Atari games that ppox trains on and tests (any ALE/Name-v5 or NameNoFrameskip-v4 runs)
ATARI_IDS = tuple(
    f"ALE/{game}-v5"
    for game in ("Pong", "Breakout", "BeamRider", "SpaceInvaders", "Seaquest", "Qbert", "MsPacman", "Enduro")
)


def is_entry_point(env_id: str) -> bool:
    return ":" in env_id


def is_atari_id(env_id: str) -> bool:
    """An Atari game of ale-py (ALE/Name-v5, NameNoFrameskip-v4): trained with the standard preprocessing."""
    return isinstance(env_id, str) and (env_id.startswith("ALE/") or env_id.endswith("NoFrameskip-v4"))


def is_playground_id(env_id: str) -> bool:
    return env_id.startswith("playground/")
