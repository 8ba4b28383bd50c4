"""Multi-agent envs in the fused program: agents stacked on the batch axis (parameter sharing).

A multi-agent env (``ppox.envs.jaxmarl``'s ``AgentStack``, marked by ``stacked_agents``) returns per-agent arrays
[A, ...] per env; vmapped over num_envs copies they are [num_envs, A, ...], folded here into num_envs * A rows
of one batch. The update sees the rows as its envs (``learner_config``); the run logs the team's return (the
agents' returns summed per episode) and each agent's return beside the per-row ``episode_return``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp

from ppox.config.config import Config


def agent_count(env) -> int:
    """The number of agents a multi-agent env stacks; 0 for any other env."""
    return getattr(env, "stacked_agents", 0)


def fold(x, agents: int):
    """[num_envs, agents, ...] -> [num_envs * agents, ...] (unchanged for a single-agent env: agents 0)."""
    return x.reshape((-1,) + x.shape[2:]) if agents else x


def agent_metric_names(env) -> tuple[str, ...]:
    """The multi-agent metrics' names (metrics.csv's columns after METRIC_NAMES): team_return, return_AGENT."""
    return ("team_return",) + tuple(f"return_{a}" for a in env.agents) if agent_count(env) else ()


def agent_metrics(env, finished_return, finished_length) -> dict:
    """Team return (the agents' returns summed per episode) and each agent's return: means over the episodes that
    ended in the rollout (NaN where none did), from the rows' [T, num_envs * A] finished returns and lengths."""
    agents = agent_count(env)
    if not agents:
        return {}
    returns = finished_return.reshape(finished_return.shape[:1] + (-1, agents))
    ended = finished_length.reshape(returns.shape)[..., 0] > 0  # (every agent's row ends with its env's episode)
    count = ended.sum()

    def mean(x):
        return jnp.where(count > 0, jnp.where(ended, x, 0.0).sum() / jnp.maximum(count, 1), jnp.nan)

    return {
        "team_return": mean(returns.sum(-1)),
        **{f"return_{a}": mean(returns[..., i]) for i, a in enumerate(env.agents)},
    }


def learner_config(config: Config, env) -> Config | None:
    """The update's config of a multi-agent run (None for one agent): num_envs * agents rows per step, and the
    timesteps counted per row, so that the batch, minibatches and schedule are those of the rows."""
    agents = agent_count(env)
    if not agents:
        return None
    return dataclasses.replace(
        config, num_envs=config.num_envs * agents, total_timesteps=config.total_timesteps * agents
    )


def stacked_step(env, env_params):
    """A multi-agent env's autoreset step (keys, state, action [A]) -> (obs, state, reward, terminated, truncated,
    final_obs, game_over), or None for any other env."""
    return functools.partial(env.autoreset_step, params=env_params) if agent_count(env) else None


def step_rows(env_step, agents: int, keys, env_state, action):
    """The first eight of the fused program's step_envs values (env_state, next_obs, final_obs, reward,
    game_reward, terminated, truncated, game_over) of a vmapped stacked step, per-agent arrays folded into rows."""
    out = env_step(keys, env_state, action.reshape((-1, agents) + action.shape[1:]))
    return (out[1],) + tuple(fold(x, agents) for x in (out[0], out[5], out[2], out[2], out[3], out[4], out[6]))
