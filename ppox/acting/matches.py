"""Matches of a two-player pgx game between a saved policy and an opponent: the uniformly random legal player or
another saved policy of the same game (self-play's evaluation, docs/self-play.md). Each game draws who moves first
at even odds; the policy's result counts +1 / 0 / -1 as the game's reward does."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ppox.acting.policy import Policy
from ppox.envs.jax_envs import make_jax_env
from ppox.envs.jax_tasks import gymnax_spaces
from ppox.envs.selfplay import SelfPlayGame, SelfPlayParams
from ppox.errors import ConfigError

MAX_PLIES = 1_000  # a game longer than this counts as a draw (pgx's own limits end every game it ships sooner)


class Record(NamedTuple):
    """A policy's results over ``games`` games against one opponent."""

    wins: int
    draws: int
    losses: int

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def score(self) -> float:
        """(wins + draws / 2) / games: 1 beats the opponent every game, 1/2 is even."""
        return (self.wins + 0.5 * self.draws) / max(self.games, 1)

    def __str__(self) -> str:
        return f"{self.wins} wins, {self.draws} draws, {self.losses} losses of {self.games} (score {self.score:.3f})"


def player(opponent: Policy | str, deterministic: bool = False):
    """An opponent as SelfPlayGame's policy: "random" (uniform over the legal moves) or a saved policy."""
    if isinstance(opponent, str):
        if opponent != "random":
            raise ConfigError(f"an opponent is 'random' or a policy (ppox.load(RUN)), got {opponent!r}")
        return lambda row, shared, obs, mask, key: jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf))
    return lambda row, shared, obs, mask, key: opponent.act_jax(obs[None], key, deterministic, mask=mask[None])[0]


def play_match(
    policy: Policy, opponent: Policy | str = "random", games: int = 200, seed: int = 0, deterministic: bool = False
) -> Record:
    """``policy`` against ``opponent`` for ``games`` games, all at once; both sample their moves (or take the mode
    where ``deterministic``: then only who starts varies, and the games repeat)."""
    env_id = policy.config.env
    if not env_id.endswith("-pgx"):
        raise ConfigError(f"matches are for two-player pgx games (TicTacToe-pgx, ConnectFour-pgx, ...); not {env_id}")
    if isinstance(opponent, Policy) and opponent.config.env != env_id:
        raise ConfigError(f"the opponent plays {opponent.config.env}, the policy {env_id}: one game for both")
    base, _, _ = make_jax_env(env_id)
    env = SelfPlayGame(base.game, player(opponent, deterministic), gymnax_spaces())
    params = SelfPlayParams(opponents=jnp.zeros(1), draw_logits=jnp.zeros(1))
    results = jax.device_get(_play(policy, env, params, games, seed, deterministic))
    return Record(int((results > 0).sum()), int((results == 0).sum()), int((results < 0).sum()))


def _play(policy: Policy, env: SelfPlayGame, params: SelfPlayParams, games: int, seed: int, deterministic: bool):
    """Each game's result for the policy ([games]: +1, 0, -1), the games played in one while loop."""

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        obs, matches = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, games), params)

        def body(carry: Any):
            obs, matches, result, alive, key, plies = carry
            key, act_key, env_key = jax.random.split(key, 3)
            action = policy.act_jax(obs, act_key, deterministic, mask=matches.game.legal_action_mask)
            step = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))
            obs, after, reward, terminated, _ = step(jax.random.split(env_key, games), matches, action, params)
            over = terminated | after.game.truncated
            result = jnp.where(alive & over, reward, result)
            matches = jax.tree_util.tree_map(lambda a, b: jnp.where(_rows(alive, a), a, b), after, matches)
            return obs, matches, result, alive & ~over, key, plies + 1

        def going(carry: Any):
            return jnp.any(carry[3]) & (carry[5] < MAX_PLIES)

        init = (obs, matches, jnp.zeros(games), jnp.ones(games, bool), key, 0)
        return jax.lax.while_loop(going, body, init)[2]

    return run(jax.random.PRNGKey(seed))


def _rows(alive: jax.Array, leaf: jax.Array) -> jax.Array:
    """``alive`` [games] shaped to broadcast against ``leaf`` [games, ...]."""
    return alive.reshape(alive.shape + (1,) * (leaf.ndim - 1))
