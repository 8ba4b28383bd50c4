"""EnvPool's Atari stepped inside the fused program, through EnvPool's XLA interface (``--vec envpool
--driver fused``, ``pip install "ppox[envpool]"``).

EnvPool's ``xla()`` gives jittable send/recv calls bound to one pool (its address is a constant of the
compiled program): the rollout steps the games from inside ``lax.scan`` with no trip to Python. One pool
cannot be vmapped, so such a run trains one seed. The games are the host driver's (``envpool_maker``: the
standard preprocessing, whole games, raw rewards); ``atari_step`` makes training's episodes from them as
``AtariGames`` does on the host: a lost life ends an episode (terminated), rewards are clipped to their sign,
and whole games (every life, the raw score) are what the run logs.

EnvPool resets a game on the step after it ended (NEXT_STEP): that step ignores its action and returns the
next game's first frames. Inside one compiled step there is no way to reset only the ended games, so that
step stays in the batch as a terminal step with reward 0 from the game's last frames: its value target,
0, is right (nothing follows a game's end); its action, which changed nothing, gets the advantage -V of
those frames, one sample per game.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ppox.envs.atari import STACK, ale_kwargs, envpool_maker
from ppox.envs.spec import EnvSpec, spec_from_action_space


class PoolState(NamedTuple):
    """What the fused program carries for the pool: the ordering token and each game's state."""

    handle: jax.Array  # EnvPool's token: every send/recv takes the last one and returns the next
    lives: jax.Array  # [num_envs] lives after the last step
    game_ended: jax.Array  # [num_envs] the last step ended the game: EnvPool resets it on this one


class Stepped(NamedTuple):
    """One vector step of the games as training sees it."""

    obs: jax.Array  # [num_envs, 84, 84, 4] uint8, what the policy sees next
    reward: jax.Array  # the training reward: the sign of the game's
    game_reward: jax.Array  # the raw score of this step
    terminated: jax.Array  # a life lost, the game over, or EnvPool's reset step
    truncated: jax.Array  # the game hit its frame cap
    game_over: jax.Array  # a whole game ended here (its score is logged)


def atari_step(state: PoolState, obs, reward, terminated, truncated, lives) -> tuple[PoolState, Stepped]:
    """Training's view of one EnvPool step (whole games, NEXT_STEP); ``obs`` [num_envs, 4, 84, 84]."""
    reset_step = state.game_ended  # EnvPool ignored the action: these are the next game's first frames
    game_over = jnp.logical_and(jnp.logical_or(terminated, truncated), jnp.logical_not(reset_step))
    life_lost = jnp.logical_and(lives < state.lives, jnp.logical_not(reset_step))
    episode_end = jnp.logical_or(jnp.logical_or(terminated, life_lost), reset_step)
    stepped = Stepped(
        obs=jnp.moveaxis(obs, 1, -1),
        reward=jnp.where(reset_step, 0.0, jnp.sign(reward)).astype(jnp.float32),
        game_reward=jnp.where(reset_step, 0.0, reward).astype(jnp.float32),
        terminated=episode_end,
        truncated=jnp.logical_and(truncated, jnp.logical_not(episode_end)),
        game_over=game_over,
    )
    return PoolState(state.handle, lives, game_over), stepped


class EnvPoolXla:
    """``num_envs`` games of an Atari id in one EnvPool pool, stepped from compiled code.

    ``reset()`` (host, before the program's init) restarts every game; ``first()`` and ``step(state,
    action)`` are traced into the program."""

    def __init__(self, env_id: str, num_envs: int, max_episode_steps: int | None, seed: int):
        self.pool = envpool_maker(env_id, num_envs, ale_kwargs(env_id), max_episode_steps)(seed)
        self.num_envs = num_envs
        self._handle, self._recv, _, self._step = self.pool.xla()
        self.spec: EnvSpec = spec_from_action_space((84, 84, STACK), self.pool.action_space)

    def reset(self) -> None:
        """Restart every game; the program's ``first`` receives their first frames."""
        self.pool.async_reset()

    def first(self) -> tuple[jax.Array, PoolState]:
        """(obs, state) of the games that ``reset`` started (traced)."""
        handle, (obs, _, _, _, info) = self._recv(jnp.asarray(self._handle))
        state = PoolState(handle, jnp.asarray(info["lives"], jnp.int32), jnp.zeros(self.num_envs, bool))
        return jnp.moveaxis(obs, 1, -1), state

    def step(self, state: PoolState, action) -> tuple[PoolState, Stepped]:
        """One step of every game (traced)."""
        handle, (obs, reward, terminated, truncated, info) = self._step(state.handle, action.astype(jnp.int32))
        return atari_step(
            state._replace(handle=handle), obs, reward, terminated, truncated, jnp.asarray(info["lives"], jnp.int32)
        )

    def close(self) -> None:
        self.pool.close()
