"""A two-player zero-sum pgx game as a one-agent env whose opponent is a policy: the agent's current self or one of
its past selves (self-play, docs/self-play.md).

The opponent's parameters ride in the env's params (``SelfPlayParams.opponents``: a table of parameter sets, one
per row), so the fused program passes new ones each rollout without rebuilding the env. Each game draws its
opponent's row from ``SelfPlayParams.draw_logits`` when it starts; the state records it (``Match.opponent``) and
which pgx player the agent is (``Match.agent``: pgx draws who moves first, and the opponent makes the first move
where it does). The agent always observes the board from its own side (pgx's observation of the player to move).
Reward: the game's +1 / -1 / 0 for the agent at the end. How the table is filled and the rows weighed is the
driver's (``ppox.drivers.selfplay``); this module only plays the games.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

# policy(row, shared, obs, legal_mask, key) -> action of the player to move: ``row`` one row of the table
OpponentPolicy = Callable[[Any, Any, jax.Array, jax.Array, jax.Array], jax.Array]


@struct.dataclass
class SelfPlayParams:
    opponents: Any  # parameter sets, stacked on a leading axis (one row per opponent)
    draw_logits: jax.Array  # [rows]: log-weights of drawing each row as a new game's opponent
    shared: Any = None  # what every opponent's policy also takes (e.g. observation statistics)
    max_steps_in_episode: int = 1000


@struct.dataclass
class Match:
    game: Any  # the pgx state
    agent: jax.Array  # the agent's pgx player id (0 or 1)
    opponent: jax.Array  # the opponent's row in SelfPlayParams.opponents

    def replace(self, **changes: Any) -> Match:
        """A copy with ``changes`` (flax.struct's replace, declared for the type checker)."""
        return dataclasses.replace(self, **changes)


def select(where: jax.Array, a: Any, b: Any) -> Any:
    """``a`` where ``where`` (a scalar), else ``b``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(where, x, y), a, b)


class SelfPlayGame:
    """pgx's ``game`` (a ``pgx.Env``) against ``policy`` playing the row of ``SelfPlayParams.opponents`` each game
    drew; gymnax's API otherwise (``reset_env`` / ``step_env`` / ``is_truncated``, spaces), plus ``action_mask``."""

    def __init__(self, game: Any, policy: OpponentPolicy, spaces: Any):
        self.game, self.policy, self.spaces = game, policy, spaces

    def opponent_moves(self, key, match: Match, params: SelfPlayParams):
        """The game after the opponent's move where it is the opponent's turn (unchanged otherwise)."""
        row = jax.tree_util.tree_map(lambda table: table[match.opponent], params.opponents)
        game = match.game
        action = self.policy(row, params.shared, game.observation.astype(jnp.float32), game.legal_action_mask, key)
        moved = self.game.step(game, action)
        its_turn = jnp.logical_and(game.current_player != match.agent, ~game.terminated)
        return select(its_turn, moved, game)

    def reset_env(self, key, params: SelfPlayParams):
        """A new game against a newly drawn opponent, which moves first where pgx made it the first player."""
        init_key, draw_key, agent_key, move_key = jax.random.split(key, 4)
        game = self.game.init(init_key)
        opponent = jax.random.categorical(draw_key, params.draw_logits)
        agent = jax.random.bernoulli(agent_key).astype(game.current_player.dtype)  # (first or second, even odds)
        match = Match(game=game, agent=agent, opponent=opponent)
        match = match.replace(game=self.opponent_moves(move_key, match, params))
        return self.observe(match), match

    def reset(self, key, params: SelfPlayParams):
        return self.reset_env(key, params)

    def step_env(self, key, match: Match, action, params: SelfPlayParams):
        """The agent's move, then the opponent's reply unless the game ended; reward: the agent's result."""
        game = self.game.step(match.game, action)
        reward = game.rewards[match.agent]
        match = match.replace(game=game)
        game = self.opponent_moves(key, match, params)
        reward = reward + jnp.where(match.game.terminated, 0.0, game.rewards[match.agent])
        match = match.replace(game=game)
        return self.observe(match), match, reward, game.terminated, {}

    def observe(self, match: Match) -> jax.Array:
        return match.game.observation.astype(jnp.float32)

    def is_truncated(self, match: Match, params) -> jax.Array:
        return match.game.truncated

    def action_mask(self, match: Match) -> jax.Array:
        return match.game.legal_action_mask

    def observation_space(self, params):
        return self.spaces.Box(0.0, 1.0, tuple(self.game.observation_shape), jnp.float32)

    def action_space(self, params):
        return self.spaces.Discrete(self.game.num_actions)
