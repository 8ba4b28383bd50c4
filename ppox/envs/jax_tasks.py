"""ppox's own JAX-native tasks, gymnax-style: partially observed versions of gymnax envs, a repeat-previous
memory task, and pgx board games against a random opponent (legal-action masks on the fused driver).

gymnax and pgx are imported where a task is made (gymnax starts JAX's backend on import; pgx is an extra).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ppox.envs.gymnax_import import import_gymnax
from ppox.errors import ConfigError

# id -> (gymnax id, observation entries hidden): the RL Zoo's names for the velocity-hidden classics
HIDDEN_VELOCITY = {"CartPoleNoVel-v1": ("CartPole-v1", (1, 3)), "PendulumNoVel-v1": ("Pendulum-v1", (2,))}
PGX_GAMES = {
    "TicTacToe-pgx": "tic_tac_toe",
    "ConnectFour-pgx": "connect_four",
    "Othello-pgx": "othello",
    "Go9x9-pgx": "go_9x9",
}


class HiddenObservation:
    """A gymnax env whose flattened observation lacks the entries ``hidden`` (kept in order otherwise)."""

    def __init__(self, env, hidden: tuple[int, ...]):
        self.env = env
        size = int(np.prod(env.observation_space(env.default_params).shape))
        if any(i >= size for i in hidden):
            raise ConfigError(f"--hide-obs {list(hidden)}: this env's observation has {size} entries (0 to {size - 1})")
        self.keep = np.array([i for i in range(size) if i not in hidden])
        if not len(self.keep):
            raise ConfigError("--hide-obs hides every observation entry; leave at least one")

    def __getattr__(self, name):
        return getattr(self.env, name)

    def observe(self, obs):
        return obs.reshape(-1)[self.keep]

    def reset_env(self, key, params):
        obs, state = self.env.reset_env(key, params)
        return self.observe(obs), state

    def reset(self, key, params=None):
        return self.reset_env(key, self.env.default_params if params is None else params)

    def step_env(self, key, state, action, params):
        obs, state, reward, done, info = self.env.step_env(key, state, action, params)
        return self.observe(obs), state, reward, done, info

    def observation_space(self, params):
        spaces = gymnax_spaces()

        space = self.env.observation_space(params)
        low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape).reshape(-1)[self.keep]
        high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape).reshape(-1)[self.keep]
        return spaces.Box(jnp.asarray(low), jnp.asarray(high), (len(self.keep),), jnp.float32)


@struct.dataclass
class RepeatState:
    history: jax.Array  # the symbols seen, newest first: history[0] is observed now, history[k] k steps ago
    time: int


@struct.dataclass
class RepeatParams:
    max_steps_in_episode: int = 64


class RepeatPrevious:
    """Each step shows one of ``symbols`` symbols (one-hot); the action must name the symbol shown ``k`` steps
    ago. Reward 1 / (L - k) per correct answer from step k on, so a perfect episode returns 1, a memoryless
    policy about 1 / symbols. Episodes last L = max_steps_in_episode steps (the end is terminal)."""

    def __init__(self, k: int = 3, symbols: int = 4):
        self.k, self.symbols = k, symbols

    @property
    def default_params(self) -> RepeatParams:
        return RepeatParams()

    def reset_env(self, key, params):
        history = jax.random.randint(key, (self.k + 1,), 0, self.symbols)
        state = RepeatState(history=history, time=0)
        return self.observe(state), state

    def reset(self, key, params=None):
        return self.reset_env(key, params)

    def observe(self, state: RepeatState):
        return jax.nn.one_hot(state.history[0], self.symbols)

    def step_env(self, key, state: RepeatState, action, params):
        correct = (action == state.history[self.k]) & (state.time >= self.k)
        reward = correct / (params.max_steps_in_episode - self.k)
        history = jnp.concatenate([jax.random.randint(key, (1,), 0, self.symbols), state.history[:-1]])
        state = RepeatState(history=history, time=state.time + 1)
        done = state.time >= params.max_steps_in_episode
        return self.observe(state), state, reward.astype(jnp.float32), done, {}

    def is_truncated(self, state, params):
        return jnp.zeros((), bool)  # the fixed length is part of the task: its end is terminal

    def observation_space(self, params):
        spaces = gymnax_spaces()

        return spaces.Box(0.0, 1.0, (self.symbols,), jnp.float32)

    def action_space(self, params):
        spaces = gymnax_spaces()

        return spaces.Discrete(self.symbols)


@struct.dataclass
class GameParams:
    max_steps_in_episode: int = 1000


class BoardGame:
    """A two-player pgx game from player 0's side against a uniformly random legal opponent. Reward: the
    game's +1 / -1 / 0 for player 0 at the end. ``action_mask(state)`` is pgx's legal_action_mask (masked
    PPO on the fused driver); observations are pgx's, as float32."""

    def __init__(self, game: str):
        try:
            import pgx
        except ImportError:
            raise ConfigError(f'this task is a pgx game: pip install "ppox[pgx]" (pgx {game})') from None
        self.game = pgx.make(game)

    @property
    def default_params(self) -> GameParams:
        return GameParams()

    def reset_env(self, key, params):
        """A new game; where pgx drew the opponent to start, it has made its first move."""
        init_key, move_key = jax.random.split(key)
        state = self.game.init(init_key)
        moved = self.opponent_moves(move_key, state)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(state.current_player == 0, a, b), state, moved)
        return state.observation.astype(jnp.float32), state

    def reset(self, key, params=None):
        return self.reset_env(key, params)

    def opponent_moves(self, key, state):
        logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
        move = jax.random.categorical(key, logits)
        moved = self.game.step(state, move)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(state.terminated, a, b), state, moved)

    def step_env(self, key, state, action, params):
        state = self.game.step(state, action)
        state = self.opponent_moves(key, state)
        reward = state.rewards[0]  # the agent is player 0 (pgx draws who starts; reset_env lets the opponent go first)
        return state.observation.astype(jnp.float32), state, reward, state.terminated, {}

    def is_truncated(self, state, params):
        return state.truncated

    def action_mask(self, state: Any):
        return state.legal_action_mask

    def observation_space(self, params):
        spaces = gymnax_spaces()

        return spaces.Box(0.0, 1.0, tuple(self.game.observation_shape), jnp.float32)

    def action_space(self, params):
        spaces = gymnax_spaces()

        return spaces.Discrete(self.game.num_actions)


def gymnax_spaces():
    """gymnax's spaces module (gymnax imported as ppox.envs.gymnax_import does it)."""
    import_gymnax()
    from gymnax.environments import spaces

    return spaces


def make_task(env_id: str):
    """(env, params) of one of ppox's own JAX-native task ids (``TASK_IDS``)."""
    gymnax = import_gymnax()

    if env_id in HIDDEN_VELOCITY:
        base, hidden = HIDDEN_VELOCITY[env_id]
        env, params = gymnax.make(base)
        return HiddenObservation(env, hidden), params
    if env_id == "RepeatPrevious-v0":
        env = RepeatPrevious()
        return env, env.default_params
    env = BoardGame(PGX_GAMES[env_id])
    return env, env.default_params
