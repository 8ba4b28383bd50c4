"""JAX-native environments (gymnax) for the fused driver.

gymnax is imported where an env is made, not with this module: importing it starts JAX's backend, and
under --distributed jax.distributed.initialize() must come first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ppox.envs.gymnax_import import import_gymnax
from ppox.envs.jax_tasks import HiddenObservation, make_task
from ppox.envs.registry import TASK_IDS
from ppox.envs.spec import spec_from_action_space


def make_gymnax(env_id: str, max_episode_steps: int | None = None, hide_obs: tuple[int, ...] = ()):
    """(env, env_params, spec) for a gymnax id or one of ppox's tasks; ``max_episode_steps`` replaces the
    env's time limit, ``hide_obs`` removes observation entries."""
    gymnax = import_gymnax()
    env, params = make_task(env_id) if env_id in TASK_IDS else gymnax.make(env_id)
    if hide_obs:
        env = HiddenObservation(env, tuple(hide_obs))
    if max_episode_steps is not None:
        params = params.replace(max_steps_in_episode=max_episode_steps)
    spec = spec_from_action_space(env.observation_space(params).shape, env.action_space(params))
    return env, params, spec


def make_autoreset_step(env, env_params):
    """step(keys [2], state, action) -> (obs, state, reward, terminated, truncated, final_obs).

    gymnax's own ``step`` with the two keys it would split supplied by the caller, so that a
    rollout can draw all its keys in one call: step_env, the time-limit check, and a reset
    selected where the episode ended. ``final_obs`` is the observation the step reached (the
    terminal or truncated one where the episode ended); ``obs`` is the one the policy sees next.
    """

    def step(keys, state, action):
        obs_st, state_st, reward, terminated, _ = env.step_env(keys[0], state, action, env_params)
        truncated = jnp.logical_and(env.is_truncated(state_st, env_params), jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = env.reset_env(keys[1], env_params)
        state = jax.tree_util.tree_map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        return obs, state, reward, terminated.astype(bool), truncated.astype(bool), obs_st

    return step
