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
