"""JAX-native environments for the fused driver: any family of ``ppox.envs.families`` with a fused maker
(gymnax, ppox's own tasks, ...), behind the options every run has (time limit, hidden observations).

gymnax is imported where an env is made, not with this module: importing it starts JAX's backend, and
under --distributed jax.distributed.initialize() must come first.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ppox.envs.episode_metrics import step_values
from ppox.envs.families import family_for, load_maker
from ppox.envs.gymnax_import import import_gymnax
from ppox.envs.jax_tasks import HiddenObservation
from ppox.envs.spec import spec_from_action_space
from ppox.errors import ConfigError


def gymnax_make(env_id: str):
    """(env, env_params) of a gymnax id: the gymnax family's fused maker."""
    return import_gymnax().make(env_id)


def make_jax_env(
    env_id: str,
    max_episode_steps: int | None = None,
    hide_obs: tuple[int, ...] = (),
    agent_id: bool = False,
    critic: str = "local",
):
    """(env, env_params, spec) of a JAX-native id, made by its family; ``max_episode_steps`` replaces the
    env's time limit, ``hide_obs`` removes observation entries; a multi-agent env (``stacked_agents``, ppox.envs.
    jaxmarl) takes ``agent_id`` (one-hot agent index in each row) and ``critic`` ("world_state": MAPPO)."""
    family = family_for(env_id, "fused")
    if family is None or family.pool:
        raise ConfigError(f"--env {env_id}: not a JAX-native env (`ppox envs` lists them); use --driver host")
    env, params = load_maker(family, "fused")(env_id)
    if hasattr(env, "stacked_agents"):
        if hide_obs:
            raise ConfigError(f"--env {env_id}: --hide-obs is not for multi-agent envs (their rows are stacked)")
        env = env.configured(agent_id, critic)
    elif agent_id or critic != "local":
        raise ConfigError(f"--env {env_id}: --agent-id and --critic world_state are for multi-agent envs (JaxMARL)")
    if hide_obs:
        env = HiddenObservation(env, tuple(hide_obs))
    if max_episode_steps is not None:
        params = params.replace(max_steps_in_episode=max_episode_steps)
    spec = spec_from_action_space(env.observation_space(params).shape, env.action_space(params))
    if hasattr(env, "action_mask"):  # (a game's legal moves, recorded with the policy)
        spec = dataclasses.replace(spec, action_mask="state")
    if hasattr(env, "stacked_agents"):
        spec = dataclasses.replace(spec, actor_obs=env.actor_obs, agents=env.agents)
    return env, params, spec


make_gymnax = make_jax_env  # (its name from when gymnax was the only JAX-native family)


def make_autoreset_step(env, env_params, with_episode_values: bool = False):
    """step(keys [2], state, action) -> (obs, state, reward, terminated, truncated, final_obs), then, with
    ``with_episode_values``, the env's per-episode values at this step (``ppox.envs.episode_metrics``).

    gymnax's own ``step`` with the two keys it would split supplied by the caller, so that a
    rollout can draw all its keys in one call: step_env, the time-limit check, and a reset
    selected where the episode ended. ``final_obs`` is the observation the step reached (the
    terminal or truncated one where the episode ended); ``obs`` is the one the policy sees next.
    """

    def step(keys, state, action):
        obs_st, state_st, reward, terminated, info = env.step_env(keys[0], state, action, env_params)
        truncated = jnp.logical_and(env.is_truncated(state_st, env_params), jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = env.reset_env(keys[1], env_params)
        state = jax.tree_util.tree_map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        out = obs, state, reward, terminated.astype(bool), truncated.astype(bool), obs_st
        return out + (step_values(env, state_st, info),) if with_episode_values else out

    return step
