"""JAX-native environments (gymnax) for the fused driver."""

from __future__ import annotations

import numpy as np

from ppox.envs.spec import EnvSpec


def gymnax_ids() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def make_gymnax(env_id: str):
    """(env, env_params, spec) for a gymnax id."""
    import gymnax
    from gymnax.environments import spaces

    env, params = gymnax.make(env_id)
    obs_space = env.observation_space(params)
    act_space = env.action_space(params)
    if isinstance(act_space, spaces.Discrete):
        spec = EnvSpec(tuple(obs_space.shape), "discrete", (int(act_space.n),))
    elif isinstance(act_space, spaces.Box):
        shape = tuple(act_space.shape) or (1,)
        low = np.broadcast_to(np.asarray(act_space.low, np.float32), shape).ravel()
        high = np.broadcast_to(np.asarray(act_space.high, np.float32), shape).ravel()
        spec = EnvSpec(tuple(obs_space.shape), "continuous", (int(np.prod(shape)),),
                       tuple(float(x) for x in low), tuple(float(x) for x in high))
    else:
        from ppox.config import ConfigError

        raise ConfigError(f"--env {env_id}: action space {type(act_space).__name__} is not supported by ppox "
                         "(supported: Discrete, Box)")
    return env, params, spec


def make_autoreset_step(env, env_params):
    """step(keys [2], state, action) -> (obs, state, reward, terminated, truncated, final_obs).

    gymnax's own ``step`` with the two keys it would split supplied by the caller, so that a
    rollout can draw all its keys in one call: step_env, the time-limit check, and a reset
    selected where the episode ended. ``final_obs`` is the observation the step reached (the
    terminal or truncated one where the episode ended); ``obs`` is the one the policy sees next.
    """
    import jax
    import jax.numpy as jnp

    def step(keys, state, action):
        obs_st, state_st, reward, terminated, _ = env.step_env(keys[0], state, action, env_params)
        truncated = jnp.logical_and(env.is_truncated(state_st, env_params), jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = env.reset_env(keys[1], env_params)
        state = jax.tree_util.tree_map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        return obs, state, reward, terminated.astype(bool), truncated.astype(bool), obs_st

    return step
