"""Brax's rigid-body worlds in JAX (pip install "ppox[brax]"), on the fused driver: the pure JAX env protocol of
``ppox.envs.jax_protocol`` over Brax's ``reset(rng)`` / ``step(state, action)``.

ids are "brax/" + a Brax env name, and optionally "/" + one of the backends that run on a CPU: brax/ant is
Brax's Ant on the positional backend (the backend of Brax's training notebook), brax/ant/generalized and
brax/ant/spring the others. Actions are Brax's, in [-1, 1]^n (ppox clips its Gaussian's samples to the bounds);
an episode is Brax's EpisodeWrapper's: it terminates where the env says done (a fallen ant) and is truncated
after 1000 env steps (ppox bootstraps from V of the last observation there). Action repeat and reward scaling
are run options (--action-repeat, --reward-scale), observation normalisation --norm-obs (the presets set them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax import envs as brax_envs

from ppox.envs.gymnax_import import import_gymnax
from ppox.envs.jax_protocol import as_gymnax
from ppox.errors import ConfigError

PREFIX = "brax/"
BACKENDS = ("positional", "generalized", "spring")  # Brax's CPU-capable pipelines (mjx is MuJoCo Playground's)
DEFAULT_BACKEND = "positional"
EPISODE_LENGTH = 1000  # env steps (Brax's training default), truncated


def parse(env_id: str) -> tuple[str, str]:
    """(Brax env name, backend) of a brax id; ConfigError in one line where either is not Brax's."""
    parts = env_id.removeprefix(PREFIX).split("/")
    names = sorted(brax_envs._envs)
    if len(parts) > 2 or not parts[0]:
        raise ConfigError(f"--env {env_id}: a Brax id is brax/NAME or brax/NAME/BACKEND (brax/ant/generalized)")
    if parts[0] not in names:
        raise ConfigError(f"--env {env_id}: {parts[0]!r} is not a Brax env; Brax has {', '.join(names)}")
    backend = parts[1] if len(parts) == 2 else DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ConfigError(
            f"--env {env_id}: backend {backend!r} is not one of Brax's CPU backends {', '.join(BACKENDS)} "
            f"(default {DEFAULT_BACKEND}; mjx worlds are MuJoCo Playground's)"
        )
    return parts[0], backend


class BraxWorld:
    """One Brax env in the pure protocol; the state is Brax's State (a pytree: vmapped, checkpointed)."""

    def __init__(self, env):
        self.env = env
        size = int(env.action_size)
        self.action_space = import_gymnax().environments.spaces.Box(-1.0, 1.0, (size,), jnp.float32)
        self.max_episode_steps = EPISODE_LENGTH

    def reset(self, key):
        state = arrays(self.env.reset(key))
        return state.obs, state

    def step(self, key, state, action):
        state = arrays(self.env.step(state, action))
        return state.obs, state, state.reward, state.done > 0.5, jnp.zeros((), bool)


def arrays(state):
    """Brax's State with every leaf a float32 (or its own dtype's) array: a step may leave Python numbers in its
    metrics, and a reset and a step must give states of one structure and dtypes (autoreset selects between them)."""
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, jnp.float32) if isinstance(x, float) else jnp.asarray(x), state
    )


def make(env_id: str):
    """(env, params) of a brax id, gymnax-style: the family's fused maker."""
    name, backend = parse(env_id)
    return as_gymnax(BraxWorld(brax_envs.get_environment(name, backend=backend)), f"--env {env_id}")
