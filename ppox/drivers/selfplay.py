"""Self-play on the fused driver: the pool of the agent's past selves (``Pool``, in ``Runner.pool``), which
opponent each new game draws, the match record and the Elo ratings (docs/self-play.md).

The opponents' table holds the pool's K snapshots and, in row K, the current parameters. A new game plays the
current policy with probability 1 - ``pool_share`` and a snapshot otherwise, drawn by ``--opponent``:

- ``latest``: the newest snapshot;
- ``uniform``: every snapshot held alike;
- ``prioritised``: snapshot j weighs (1 - p_j)^2, p_j = (points_j + 1) / (games_j + 2) the agent's smoothed score
  against it (a win 1, a draw 1/2): the opponents it does not beat yet are met more (AlphaStar's PFSP, "hard").

``self`` plays the current policy only. Elo: each snapshot keeps the rating the agent had when it was taken; every
game against a snapshot moves the agent's rating by K_ELO (s - e), e = 1 / (1 + 10^((R_j - R) / 400)), s its score.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ppox.agent.agent import act
from ppox.config.config import Config
from ppox.core.normalize import RunningMeanStd
from ppox.envs.jax_envs import make_autoreset_step
from ppox.envs.jax_tasks import gymnax_spaces
from ppox.envs.optimistic_reset import batched_step
from ppox.envs.selfplay import Match, SelfPlayGame, SelfPlayParams, select

K_ELO = 16.0  # rating points moved per game at a surprise of 1
START_ELO = 1000.0
POOL_METRICS = ("selfplay_elo", "selfplay_pool_score", "selfplay_pool_games", "selfplay_pool_size")


@struct.dataclass
class Pool:
    params: Any  # [K, ...] snapshots of the agent's past parameters
    size: jax.Array  # snapshots held (<= K)
    slot: jax.Array  # where the next snapshot goes (the oldest, once full)
    points: jax.Array  # [K] the agent's points against each snapshot (win 1, draw 1/2)
    games: jax.Array  # [K] games the agent played against each snapshot
    elo: jax.Array  # [K] each snapshot's rating (the agent's when it was taken)
    agent_elo: jax.Array  # the current agent's rating
    update_points: jax.Array  # points and games against snapshots in the current update (for its metrics)
    update_games: jax.Array

    def replace(self, **changes: Any) -> Pool:
        """A copy with ``changes`` (flax.struct's replace, declared for the type checker)."""
        return dataclasses.replace(self, **changes)


def empty_pool(params: Any, size: int) -> Pool:
    zeros = jnp.zeros(size)
    return Pool(
        params=jax.tree_util.tree_map(lambda p: jnp.zeros((size, *p.shape), p.dtype), params),
        size=jnp.zeros((), jnp.int32),
        slot=jnp.zeros((), jnp.int32),
        points=zeros,
        games=zeros,
        elo=jnp.full(size, START_ELO),
        agent_elo=jnp.asarray(START_ELO),
        update_points=jnp.zeros(()),
        update_games=jnp.zeros(()),
    )


def draw_logits(config: Config, pool: Pool) -> jax.Array:
    """[K + 1] log-weights of a new game's opponent: the pool's snapshots, then the current policy (row K)."""
    size = pool.games.shape[0]
    held = jnp.arange(size) < pool.size
    if config.opponent == "latest":
        weights = (jnp.arange(size) == (pool.slot - 1) % size).astype(jnp.float32)
    elif config.opponent == "prioritised":
        weights = (1.0 - (pool.points + 1.0) / (pool.games + 2.0)) ** 2
    else:  # uniform (and self, which never draws from the pool)
        weights = jnp.ones(size)
    share = 0.0 if config.opponent == "self" else config.pool_share
    weights = jnp.where(held, weights, 0.0)
    total = weights.sum()
    from_pool = jnp.where(total > 0, share * weights / jnp.maximum(total, 1e-12), 0.0)
    probs = jnp.append(from_pool, 1.0 - from_pool.sum())
    return jnp.log(probs)


def env_params(config: Config, pool: Pool, params: Any, stats: RunningMeanStd, horizon: int) -> SelfPlayParams:
    """The self-play env's params for one rollout: the table (snapshots, then ``params``) with the statistics the
    opponents normalise by (the current ones: a snapshot sees observations as the agent does now)."""
    table = jax.tree_util.tree_map(lambda snaps, p: jnp.concatenate([snaps, p[None]]), pool.params, params)
    return SelfPlayParams(table, draw_logits(config, pool), shared=stats, max_steps_in_episode=horizon)


def opponent_policy(network, config: Config):
    """The SelfPlayGame's policy: a sample of the network's masked distribution at one observation."""

    def policy(params, stats, obs, mask, key):
        return act(network, config, params, stats, obs[None], key, mask=mask[None]).action[0]

    return policy


def record(pool: Pool, before: Match, game_over: jax.Array, reward: jax.Array) -> Pool:
    """``pool`` with the games that ended at this step ([num_envs]: the matches they were, whether they ended,
    the agent's reward) counted against the snapshots they were played against, and the agent's Elo moved."""
    size = pool.games.shape[0]
    counted = jnp.logical_and(game_over, before.opponent < size).astype(jnp.float32)  # (not the current self)
    score = (jnp.clip(reward, -1.0, 1.0) + 1.0) / 2.0  # win 1, draw 1/2, loss 0
    slot = jnp.minimum(before.opponent, size - 1)
    expected = 1.0 / (1.0 + 10.0 ** ((pool.elo[slot] - pool.agent_elo) / 400.0))
    return pool.replace(
        points=pool.points.at[slot].add(counted * score),
        games=pool.games.at[slot].add(counted),
        agent_elo=pool.agent_elo + K_ELO * (counted * (score - expected)).sum(),
        update_points=pool.update_points + (counted * score).sum(),
        update_games=pool.update_games + counted.sum(),
    )


def after_update(config: Config, pool: Pool, params: Any, updates_done: jax.Array) -> tuple[Pool, dict]:
    """The update's metrics, then ``pool`` with ``params`` added as a snapshot every ``pool_every`` updates
    (the oldest replaced once full, its record cleared) and the update's counts zeroed."""
    metrics = {
        "selfplay_elo": pool.agent_elo,
        "selfplay_pool_score": jnp.where(
            pool.update_games > 0, pool.update_points / jnp.maximum(pool.update_games, 1), jnp.nan
        ),
        "selfplay_pool_games": pool.update_games,
        "selfplay_pool_size": pool.size.astype(jnp.float32),
    }
    take = updates_done % config.pool_every == 0
    slot = pool.slot
    added = pool.replace(
        params=jax.tree_util.tree_map(lambda snaps, p: snaps.at[slot].set(p), pool.params, params),
        size=jnp.minimum(pool.size + 1, pool.games.shape[0]),
        slot=(slot + 1) % pool.games.shape[0],
        points=pool.points.at[slot].set(0.0),
        games=pool.games.at[slot].set(0.0),
        elo=pool.elo.at[slot].set(pool.agent_elo),
    )
    pool = select(take, added, pool)
    return pool.replace(update_points=jnp.zeros(()), update_games=jnp.zeros(())), metrics


def make_game(env: Any, network, config: Config) -> SelfPlayGame:
    """The self-play version of a pgx board game task (``ppox.envs.jax_tasks.BoardGame``)."""
    return SelfPlayGame(env.game, opponent_policy(network, config), gymnax_spaces())


def first_observations(fused: Any, key: jax.Array) -> jax.Array:
    """Observations of new games, as a self-play run's first statistics and its networks' example input."""
    games = jax.vmap(fused.env.game.init)(jax.random.split(key, fused.config.num_envs))
    return games.observation.astype(jnp.float32)


def start(fused: Any, key: jax.Array, params: Any) -> tuple[jax.Array, Match, Pool]:
    """(first observations, matches, empty pool) of a self-play run's ``fused.config.num_envs`` games, whose
    opponent is the current policy (``params``, observations not normalised yet)."""
    config = fused.config
    pool = empty_pool(params, config.pool_size)
    stats = RunningMeanStd.create(fused.spec.obs_shape)
    game_params = env_params(config, pool, params, stats, fused.env_params.max_steps_in_episode)
    obs, matches = jax.vmap(fused.env.reset, in_axes=(0, None))(jax.random.split(key, config.num_envs), game_params)
    return obs, matches, pool


def rollout_program(fused: Any, runner: Any) -> Any:
    """``fused`` whose env step plays this rollout's opponents: the runner's pool and current parameters."""
    config, horizon = fused.config, fused.env_params.max_steps_in_episode
    game_params = env_params(config, runner.pool, runner.params, runner.obs_stats, horizon)
    step = make_autoreset_step(fused.env, game_params, with_episode_values=True)
    return fused._replace(env_step=batched_step(fused.env, game_params, config.num_envs, step))
