"""MuJoCo Playground's MJX worlds (pip install "ppox[playground]") on the fused driver: the pure JAX env protocol of
``ppox.envs.jax_protocol`` over Playground's ``reset(rng)`` / ``step(state, action)``.

ids are "playground/" + a name of Playground's dm_control suite registry (playground/CartpoleBalance, ...) or of
its locomotion registry (playground/Go1JoystickFlatTerrain, ...), and optionally "/randomized": the env's domain
randomizer (``registry.get_domain_randomizer``) draws each episode's model parameters at its reset. Worlds run on
MJX's JAX implementation (``impl="jax"``: vmapped by the fused driver on any device; Playground's default is MuJoCo
Warp). Actions are in [-1, 1]^n; an episode ends where the env says done (terminated) and is truncated after the
env config's ``episode_length`` env steps (1000), as Playground's Brax wrapper does. The actor's observation is
the env's array, or the "state" entry of a dict observation (the locomotion envs' {"state", "privileged_state"}).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mujoco_playground import registry
from mujoco_playground._src import mjx_env

from ppox.envs.brax import arrays
from ppox.envs.gymnax_import import import_gymnax
from ppox.envs.jax_protocol import as_gymnax
from ppox.errors import ConfigError

PREFIX = "playground/"
RANDOMIZED = "randomized"  # the id suffix that turns the env's domain randomizer on
IMPL = "jax"  # MJX's JAX implementation: jit, vmap and scan over it work on a CPU and a GPU alike
OBS_KEY = "state"  # the actor's entry of a dict observation (Playground's PPO configs: policy_obs_key)


def names() -> tuple[str, ...]:
    """The names ppox takes: Playground's dm_control suite registry, then its locomotion registry."""
    return tuple(registry.dm_control_suite.ALL_ENVS) + tuple(registry.locomotion.ALL_ENVS)


def parse(env_id: str) -> tuple[str, bool]:
    """(Playground env name, domain randomisation on) of a playground id; ConfigError in one line otherwise."""
    parts = env_id.removeprefix(PREFIX).split("/")
    if len(parts) > 2 or not parts[0] or (len(parts) == 2 and parts[1] != RANDOMIZED):
        raise ConfigError(f"--env {env_id}: a Playground id is playground/NAME or playground/NAME/{RANDOMIZED}")
    if parts[0] not in names():
        raise ConfigError(
            f"--env {env_id}: {parts[0]!r} is not in Playground's dm_control suite or locomotion registry; "
            f"they have {', '.join(names())}"
        )
    return parts[0], len(parts) == 2


def load(env_id: str):
    """Playground's env of a playground id on MJX's JAX implementation, and its domain randomizer where the id
    asks for it; one-line ConfigErrors where the robot assets are missing or the env has no randomizer."""
    name, randomized = parse(env_id)
    if name in registry.locomotion.ALL_ENVS and not mjx_env.MENAGERIE_PATH.exists():
        raise ConfigError(
            f"--env {env_id}: Playground's locomotion envs load their robots from MuJoCo Menagerie, which Playground "
            f"git-clones from GitHub on first use and which is not at {mjx_env.MENAGERIE_PATH}; clone "
            f"https://github.com/google-deepmind/mujoco_menagerie there (commit {mjx_env.MENAGERIE_COMMIT_SHA}) "
            "or pick a dm_control suite env"
        )
    randomizer = registry.get_domain_randomizer(name) if randomized else None
    if randomized and randomizer is None:
        raise ConfigError(f"--env {env_id}: Playground has no domain randomizer for {name}; use playground/{name}")
    return registry.load(name, config_overrides={"impl": IMPL}), randomizer


def actor_obs(obs, what: str) -> jax.Array:
    """The actor's observation: the env's array, or the "state" entry of a dict; ConfigError for anything else."""
    if isinstance(obs, dict):
        if OBS_KEY not in obs:
            raise ConfigError(
                f"{what}: a dict observation needs a {OBS_KEY!r} entry (the actor's); it has {sorted(obs)}"
            )
        obs = obs[OBS_KEY]
    if not isinstance(obs, jax.Array):
        raise ConfigError(f"{what}: the observation is a {type(obs).__name__}; ppox takes an array or a dict of them")
    return obs


class PlaygroundWorld:
    """One Playground env in the pure protocol. The state is Playground's State (a pytree: vmapped, checkpointed)
    and, with a randomizer, the randomized fields of the env's MJX model (each env its own, drawn at reset)."""

    def __init__(self, env, randomizer=None, what: str = "env"):
        self.env, self.randomizer, self.what = env, randomizer, what
        self.action_space = import_gymnax().environments.spaces.Box(-1.0, 1.0, (int(env.action_size),), jnp.float32)
        self.max_episode_steps = int(env._config.episode_length)
        self.axes: list = []  # per leaf of the env's MJX model: 0 where the randomizer sets it per env, else None
        if randomizer is not None:
            self.axes = model_leaves(randomizer(env.mjx_model, jax.random.PRNGKey(0)[None])[1])

    def reset(self, key):
        env_key, model_key = jax.random.split(key)
        fields = self.draw_model(model_key)
        state = arrays(self.with_model(fields, self.env.reset, env_key))
        return actor_obs(state.obs, self.what), (state, fields)

    def step(self, key, state, action):
        inner, fields = state
        inner = arrays(self.with_model(fields, self.env.step, inner, action))
        obs = actor_obs(inner.obs, self.what)
        return obs, (inner, fields), jnp.asarray(inner.reward, jnp.float32), inner.done > 0.5, jnp.zeros((), bool)

    def draw_model(self, key) -> tuple:
        """The randomized leaves of the env's MJX model for one env (empty without a randomizer)."""
        if self.randomizer is None:
            return ()
        model = self.randomizer(self.env.mjx_model, key[None])[0]
        return tuple(leaf[0] for leaf, axis in zip(model_leaves(model), self.axes) if axis == 0)

    def with_model(self, fields: tuple, fn, *args):
        """``fn(*args)`` traced with the env's MJX model given ``fields`` (Playground's own domain-randomisation
        wrapper sets the unwrapped env's model the same way)."""
        if not fields:
            return fn(*args)
        unwrapped = self.env.unwrapped
        base = unwrapped._mjx_model
        leaves, tree = jax.tree_util.tree_flatten(base, is_leaf=is_none)
        given = iter(fields)
        leaves = [next(given) if axis == 0 else leaf for leaf, axis in zip(leaves, self.axes)]
        unwrapped._mjx_model = jax.tree_util.tree_unflatten(tree, leaves)
        try:
            return fn(*args)
        finally:
            unwrapped._mjx_model = base


def is_none(x) -> bool:
    return x is None


def model_leaves(tree) -> list:
    """The leaves of an MJX model (or of a randomizer's in_axes for one), None kept as a leaf so that both align."""
    return jax.tree_util.tree_leaves(tree, is_leaf=is_none)


def make(env_id: str):
    """(env, params) of a playground id, gymnax-style: the family's fused maker."""
    env, randomizer = load(env_id)
    return as_gymnax(PlaygroundWorld(env, randomizer, f"--env {env_id}"), f"--env {env_id}")
