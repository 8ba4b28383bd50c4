"""A JAX env of your own, made into the gymnax-style env that the fused driver steps (docs/jax-envs.md).

Two forms are taken. The gymnax API: ``reset_env(key, params)``, ``step_env(key, state, action, params)``,
``observation_space(params)``, ``action_space(params)`` and ``default_params`` (a gymnax env, or a class
written like one). The pure protocol: ``reset(key) -> (obs, state)``, ``step(key, state, action) -> (obs,
state, reward, terminated, truncated)`` and ``num_actions`` (or ``action_space``, a gymnax or Gymnasium space);
optionally ``action_mask(state)`` (legal actions) and ``max_episode_steps``. Anything else is a one-line
ConfigError naming what is missing.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ppox.envs.gymnax_import import import_gymnax
from ppox.errors import ConfigError

GYMNAX_API = ("reset_env", "step_env", "observation_space", "action_space", "default_params")
PURE_API = ("reset", "step")
DEFAULT_STEP_LIMIT = 10_000  # where a pure env says no max_episode_steps: no episode runs forever
PROTOCOL = (
    "a JAX env has reset(key) -> (obs, state), step(key, state, action) -> (obs, state, reward, terminated, "
    "truncated) and num_actions, or gymnax's API (reset_env, step_env, observation_space, action_space, "
    "default_params); see docs/jax-envs.md"
)


def looks_like_jax_env(obj: Any) -> bool:
    """Whether ``obj`` means to be a JAX env: it has a method of either form (a tuple: gymnax.make's (env, params))."""
    if isinstance(obj, tuple) and len(obj) == 2:
        obj = obj[0]
    return any(hasattr(obj, name) for name in GYMNAX_API[:2] + PURE_API)


def missing_parts(obj: Any) -> list[str]:
    """What ``obj`` lacks of the form it follows (the gymnax API where it has reset_env or step_env)."""
    if hasattr(obj, "reset_env") or hasattr(obj, "step_env"):
        return [name for name in GYMNAX_API if not hasattr(obj, name)]
    missing = [name for name in PURE_API if not callable(getattr(obj, name, None))]
    if not hasattr(obj, "num_actions") and not hasattr(obj, "action_space"):
        missing.append("num_actions (or action_space)")
    return missing


def as_gymnax(obj: Any, what: str = "env") -> tuple[Any, Any]:
    """(env, env_params) of a JAX env object (or of gymnax.make's (env, params)), gymnax-style; ConfigError
    naming what is missing. ``what`` names the input in errors ('--env mypkg:make', 'env')."""
    params = None
    if isinstance(obj, tuple) and len(obj) == 2:
        obj, params = obj
    missing = missing_parts(obj)
    if missing:
        raise ConfigError(f"{what}: {type(obj).__name__} is not a JAX env: it has no {', '.join(missing)} ({PROTOCOL})")
    if hasattr(obj, "reset_env"):
        env: Any = obj if hasattr(obj, "reset") and hasattr(obj, "is_truncated") else GymnaxStyle(obj)
        return env, params if params is not None else obj.default_params
    env = MaskedPureEnv(obj, what) if hasattr(obj, "action_mask") else PureEnv(obj, what)
    return env, env.default_params


class GymnaxStyle:
    """A class written like a gymnax env, given the two methods it may lack: ``reset(key, params=None)`` and
    ``is_truncated`` (the state's ``time`` at the time limit, where it counts one; else never)."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, key, params=None):
        return self.env.reset_env(key, self.env.default_params if params is None else params)

    def is_truncated(self, state, params):
        if hasattr(self.env, "is_truncated"):
            return self.env.is_truncated(state, params)
        if hasattr(state, "time") and hasattr(params, "max_steps_in_episode"):
            return state.time >= params.max_steps_in_episode
        return jnp.zeros((), bool)


@struct.dataclass
class PureState:
    inner: Any  # the env's own state
    time: jax.Array  # steps taken in this episode (ppox's time limit)
    truncated: jax.Array  # the env's own truncation at the last step


@struct.dataclass
class PureParams:
    max_steps_in_episode: int = DEFAULT_STEP_LIMIT


def is_typed_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def flat_obs(obs) -> jax.Array:
    """An observation as the network takes it: one array as float32 (its shape kept), or a dict or other
    pytree of arrays flattened and joined in key order."""
    if isinstance(obs, (jax.Array, np.ndarray)):
        return jnp.asarray(obs, jnp.float32)
    leaves = jax.tree_util.tree_leaves(obs)
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf, jnp.float32)) for leaf in leaves])


class PureEnv:
    """A pure JAX env (``reset(key)``, ``step(key, state, action)``) as a gymnax-style env: ppox counts the
    steps for the time limit, keeps the env's own truncation, and flattens pytree observations."""

    def __init__(self, env, what: str = "env"):
        self.env, self.what = env, what
        limit = getattr(env, "max_episode_steps", None)
        self.default_params = PureParams(int(limit) if limit else DEFAULT_STEP_LIMIT)
        self.key_impls: list[str | None] = []  # per leaf of the env's state: a typed PRNG key's implementation
        jax.eval_shape(self.read_key_impls, jax.random.PRNGKey(0))
        obs, _ = jax.eval_shape(self.reset_env, jax.random.PRNGKey(0), self.default_params)
        self.obs_shape = tuple(obs.shape)
        jax.eval_shape(self.first_step, jax.random.PRNGKey(0))  # (a step of the wrong form is said now)

    def first_step(self, key):
        """A reset and one step with the zero action: traced once, so that a step of the wrong form is said early."""
        _, state = self.reset_env(key, self.default_params)
        space = self.action_space(self.default_params)
        kind = jnp.float32 if type(space).__name__ == "Box" else jnp.int32
        return self.step_env(key, state, jnp.zeros(tuple(getattr(space, "shape", ()) or ()), kind), self.default_params)

    def read_key_impls(self, key):
        """Note which leaves of the env's state are typed PRNG keys (``jax.random.key``), and their kind."""
        leaves = jax.tree_util.tree_leaves(self.env.reset(key)[1])
        self.key_impls = [jax.random.key_impl(x) if is_typed_key(x) else None for x in leaves]

    def stored(self, inner) -> Any:
        """The env's state with its typed PRNG keys as their uint32 data: arrays a checkpoint can hold."""
        return jax.tree_util.tree_map(lambda x: jax.random.key_data(x) if is_typed_key(x) else x, inner)

    def restored(self, inner) -> Any:
        """The env's state with its typed PRNG keys made again from their data."""
        leaves, tree = jax.tree_util.tree_flatten(inner)
        keys = [x if i is None else jax.random.wrap_key_data(x, impl=i) for x, i in zip(leaves, self.key_impls)]
        return jax.tree_util.tree_unflatten(tree, keys)

    def reset_env(self, key, params):
        obs, inner = self.env.reset(key)
        return flat_obs(obs), PureState(self.stored(inner), jnp.zeros((), jnp.int32), jnp.zeros((), bool))

    def reset(self, key, params=None):
        return self.reset_env(key, params)

    def step_env(self, key, state: PureState, action, params):
        out = self.env.step(key, self.restored(state.inner), action)
        if not isinstance(out, tuple) or len(out) not in (5, 6):
            got = f"{len(out)} values" if isinstance(out, tuple) else f"a {type(out).__name__}"
            raise ConfigError(
                f"{self.what}: {type(self.env).__name__}.step returned {got}; it returns (obs, state, reward, "
                "terminated, truncated) (a sixth, info, is ignored)"
            )
        obs, inner, reward, terminated, truncated = out[:5]
        state = PureState(self.stored(inner), state.time + 1, jnp.asarray(truncated, bool))
        return flat_obs(obs), state, jnp.asarray(reward, jnp.float32), jnp.asarray(terminated, bool), {}

    def is_truncated(self, state: PureState, params):
        return state.truncated | (state.time >= params.max_steps_in_episode)

    def observation_space(self, params):
        spaces = import_gymnax().environments.spaces
        return spaces.Box(-jnp.inf, jnp.inf, self.obs_shape, jnp.float32)

    def action_space(self, params):
        if hasattr(self.env, "action_space"):
            space = self.env.action_space
            return space(params) if callable(space) else space
        return import_gymnax().environments.spaces.Discrete(int(self.env.num_actions))


class MaskedPureEnv(PureEnv):
    """A pure JAX env with ``action_mask(state)``: its legal actions, applied by ppox's masked PPO."""

    def action_mask(self, state: PureState):
        return self.env.action_mask(self.restored(state.inner))
