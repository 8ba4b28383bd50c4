"""Evaluation episodes of a PettingZoo run: the loaded policy acts for every agent of one game, as in training.

The game is the rows of training for one game (the family's host maker: padded observation, agent id, and for
MAPPO the world state); the policy acts on all of them at once. An episode ends when the game's rows end (every
agent terminated or truncated, the rows of training's rule), or at the step cap. Returns: the team return (every
agent's rewards summed) and each agent's. With ``video_folder`` the game is made with ``render_mode="rgb_array"``
and each episode's frames (one before each step) are written as one mp4 (``ppox.acting.videos``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from ppox.acting.policy import Policy
from ppox.acting.videos import require_writer, write_clip
from ppox.envs.families import family_for, make_host_envs
from ppox.envs.gym_envs import ObsEncoder
from ppox.errors import ConfigError
from ppox.utils.naming import named


class AgentReturns(NamedTuple):
    team: np.ndarray  # [episodes]: every agent's rewards summed
    by_agent: dict[str, np.ndarray]  # agent -> [episodes], its own rewards summed


def is_pettingzoo_env(env: Any) -> bool:
    """Whether ``env`` (an id) is a PettingZoo env (the host family that makes games of agents as rows)."""
    return getattr(family_for(env, "host"), "name", None) == "pettingzoo"


def evaluate_agents(
    policy: Policy,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int = 0,
    video_folder: str | Path | None = None,
    max_episode_steps: int | None = None,
) -> AgentReturns:
    """Play ``episodes`` whole games of the run's PettingZoo env, the policy acting for every agent."""
    if not 1 <= episodes < 2**31 or not 0 <= seed < 2**31:
        raise ConfigError(f"{named('--episodes', 'episodes')} >= 1 and {named('--seed', 'seed')} >= 0, below 2^31")
    c, agents = policy.config, list(policy.spec.agents)
    render = "rgb_array" if video_folder is not None else None
    if render:
        require_writer()
    try:
        game = make_host_envs(c.env, len(agents), "sync", agent_id=c.agent_id, critic=c.critic, render_mode=render)
    except TypeError as err:  # (a PettingZoo maker without render_mode)
        raise ConfigError(f"--video: {c.env} does not take render_mode ({err}); evaluate it without --video") from None
    try:
        encoder = ObsEncoder(game.single_observation_space)
        if encoder.shape != tuple(policy.spec.obs_shape) or list(game.agents) != agents:
            raise ConfigError(
                f"{c.env}: its rows are {list(encoder.shape)} for agents {list(game.agents)}, the policy's "
                f"{list(policy.spec.obs_shape)} for {agents}: evaluate it on the env it trained on"
            )
        cap = max_episode_steps or c.max_episode_steps or 10_000
        key, totals, capped = jax.random.PRNGKey(seed), [], 0
        for episode in range(episodes):
            key, play_key = jax.random.split(key)
            total, frames, whole = play_game(policy, game, encoder, seed + episode, deterministic, play_key, cap)
            totals.append(total)
            capped += not whole
            if video_folder is not None:
                name = f"{c.env.replace('/', '_')}-episode-{episode}.mp4"
                write_clip(frames, Path(video_folder) / name, game.games[0].metadata.get("render_fps", 10))
    finally:
        game.close()
    if capped:
        print(f"ppox: {capped} of {episodes} episodes were cut at the step cap of {cap:,}", file=sys.stderr)
    returns = np.asarray(totals)
    return AgentReturns(returns.sum(1), {a: returns[:, i] for i, a in enumerate(agents)})


def play_game(policy: Policy, game, encoder: ObsEncoder, seed: int, deterministic: bool, key, cap: int):
    """(each agent's return [agents], frames, whether the game ended before ``cap``) of one game's rows."""
    obs, _ = game.reset(seed=seed)
    video = getattr(game.games[0], "render_mode", None) == "rgb_array"
    total, frames, state = np.zeros(game.num_envs), [], policy.initial_state(game.num_envs)
    for _ in range(cap):
        if video:
            frames.append(game.games[0].render())
            if not isinstance(frames[-1], np.ndarray):
                raise ConfigError(f"--video: {policy.config.env}'s render() gave no rgb_array frame; leave --video out")
        masked = isinstance(obs, dict)  # (an observation and its action mask: the policy reads both, the mask masks)
        mask = np.asarray(obs["action_mask"], bool) if masked else None
        key, act_key = jax.random.split(key)
        actions, state = policy.act(encoder(obs), state, deterministic=deterministic, key=act_key, mask=mask)
        obs, reward, terminated, truncated, _ = game.step(actions)
        total += reward
        if (terminated | truncated).any():
            return total, frames, True
    return total, frames, False


def film_stacked_agents(policy: Policy, env, params, episodes: int, deterministic: bool, seed: int, folder: Path):
    """Team returns of ``episodes`` episodes of a JaxMARL env (``ppox.envs.jaxmarl.AgentStack``), played one step
    at a time with every agent's row acted on as in training, each episode filmed into ``folder`` as one mp4 (the
    env's ``render_frames``: JaxMARL's MPE drawing); the episodes end as ``ppox eval``'s batched ones do."""
    env.check_filmable()
    require_writer()
    reset, step = jax.jit(env.reset_env), jax.jit(env.step_env)
    key, returns, agents = jax.random.PRNGKey(seed), [], env.stacked_agents
    for episode in range(episodes):
        key, reset_key = jax.random.split(key)
        obs, state = reset(reset_key, params)
        states, memory, total = [state.inner], policy.initial_state(agents), 0.0
        for _ in range(int(params.max_steps_in_episode)):
            key, act_key, env_key = jax.random.split(key, 3)
            mask = np.asarray(env.action_mask(state)) if hasattr(env, "action_mask") and policy.masked else None
            action, memory = policy.act(np.asarray(obs), memory, deterministic=deterministic, key=act_key, mask=mask)
            obs, state, reward, _, _, over = step(env_key, state, np.asarray(action), params)
            states.append(state.inner)
            total += float(np.sum(reward))
            if bool(over[0]):
                break
        returns.append(total)
        write_clip(env.render_frames(states), folder / f"{env.name}-episode-{episode}.mp4", fps=10)
    return np.asarray(returns)
