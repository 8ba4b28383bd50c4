"""Optimistic resets: a batch of JAX envs that makes fewer new episodes per step than it has envs.

The fused program's autoreset computes a reset for every env at every step and keeps it where the episode
ended (``make_autoreset_step``, vmapped). Where a reset costs far more than a step (Craftax generates a whole
world), an env may say ``reset_ratio = K``: each step then makes ``num_envs // K`` new episodes and hands them
to the envs whose episodes ended, the i-th such env (in env order) taking start ``i mod (num_envs // K)``.
Where more episodes end in one step than there are new starts, some envs begin the same world (Craftax's
baselines do the same, with ``OptimisticResetVecEnvWrapper``, ratio 16). Everything else (time limit,
truncation, the final observation, per-episode values) is as in ``make_autoreset_step``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ppox.envs.episode_metrics import step_values


def batched_step(env, env_params, num_envs: int, step: Callable) -> Callable:
    """The fused program's step of all envs: ``jax.vmap(step)``, or optimistic resets where the env has
    ``reset_ratio`` > 1 and the batch is larger than one new start."""
    starts = num_envs // max(1, int(getattr(env, "reset_ratio", 1)))
    if starts < 1 or starts >= num_envs:
        return jax.vmap(step)
    return make_optimistic_step(env, env_params, starts)


def reset_slots(done: jax.Array, starts: int) -> jax.Array:
    """Which new start each env takes: the i-th env whose episode ended (in env order) takes i mod ``starts``."""
    return (jnp.cumsum(done) - 1) % starts


def make_optimistic_step(env, env_params, starts: int) -> Callable:
    """step(keys [N, 2], states, actions) -> (obs, states, reward, terminated, truncated, final_obs, values) of N
    envs with ``starts`` resets per step (see the module docstring)."""

    def step_one(key, state, action):
        obs, state, reward, terminated, info = env.step_env(key, state, action, env_params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(env.is_truncated(state, env_params), jnp.logical_not(terminated))
        return obs, state, reward, terminated, truncated, step_values(env, state, info)

    def step(keys, state, action):
        obs_st, state_st, reward, terminated, truncated, values = jax.vmap(step_one)(keys[:, 0], state, action)
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = jax.vmap(env.reset_env, in_axes=(0, None))(keys[:starts, 1], env_params)
        slots = reset_slots(done, starts)

        def pick(fresh, stepped):
            chosen = fresh[slots]
            return jnp.where(done.reshape(done.shape + (1,) * (stepped.ndim - 1)), chosen, stepped)

        state = jax.tree_util.tree_map(pick, state_re, state_st)
        return pick(obs_re, obs_st), state, reward, terminated, truncated, obs_st, values

    return step
