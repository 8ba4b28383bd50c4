"""A trained policy that acts on batches of observations (from a run, or loaded from disk)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from gymnasium import spaces

from ppox.acting.agents import agent_masks, agent_rows, by_agent
from ppox.agent.agent import act, init_params, initial_carry, is_recurrent, make_network
from ppox.config.config import Config
from ppox.core.normalize import RunningMeanStd
from ppox.envs.gym_envs import (
    ObsEncoder,
    batch_of_one,
    is_single_observation,
    space_from_description,
)
from ppox.envs.spec import EnvSpec, to_env_action
from ppox.errors import CheckpointError, ConfigError
from ppox.storage.checkpoint import (
    POLICY_PREFIX,
    checkpoint_policy,
    list_checkpoints,
    load_policy_file,
    read_newest_checkpoint,
)

POLICY_FILE = "policy.safetensors"
NO_STATE = object()  # Policy.act called without a state: actions only (memoryless policies)
MASK_WHERE = {  # where an env offered its masks in training (EnvSpec.action_mask), as act's message says it
    "method": "its env's action_masks()",
    "info": "info['action_mask']",
    "obs": "the observation's 'action_mask' entry",
    "state": "its game's legal moves",
}


@dataclasses.dataclass
class Policy:
    """Acts with one seed's parameters: observation normalisation included, actions as the env takes them
    (clipped to the bounds, shaped like the action space, indices from the space's start)."""

    config: Config
    spec: EnvSpec
    params: Any
    obs_stats: RunningMeanStd
    source: Path | None = None  # the file it was loaded from: its config is not trusted to name code to run

    def __post_init__(self):
        network, config, spec = make_network(self.config, self.spec), self.config, self.spec

        def env_action_and_value(params, stats, obs, key, deterministic: bool, mask=None, memory=None):
            acted = act(network, config, params, stats, obs, key, deterministic, mask, memory)
            return to_env_action(spec, acted.action, jnp), acted.value, acted.carry

        self.network = network
        self._act_fn = env_action_and_value
        self._act = jax.jit(env_action_and_value, static_argnames="deterministic")
        self._space = space_from_description(json.loads(spec.obs_space)) if spec.obs_space else None
        self._encoder = ObsEncoder(self._space) if self._space is not None else None

    @property
    def recurrent(self) -> bool:
        return is_recurrent(self.network)

    def initial_state(self, n: int = 1):
        """The recurrent state of ``n`` envs at an episode's start (None for a memoryless policy); pass it to
        ``act`` with each env's first observation, then the state ``act`` returns."""
        return jax.device_get(initial_carry(self.network, n))

    def act_jax(self, obs, key, deterministic: bool, state=None, mask=None):
        """Actions as a traceable JAX function (for use inside jit, e.g. batched evaluation); a recurrent
        policy takes the ``state`` before the step and returns (actions, state after it)."""
        if not self.recurrent:
            return self._act_fn(self.params, self.obs_stats, obs, key, deterministic, mask)[0]
        memory = (state, jnp.zeros(obs.shape[:1], bool))
        actions, _, state = self._act_fn(self.params, self.obs_stats, obs, key, deterministic, mask, memory)
        return actions, state

    @property
    def masked(self) -> bool:
        """Whether it was trained with action masks (recorded with the policy since they are): then ``act`` needs
        the legal actions of each step."""
        return self.spec.action_mask is not None and self.config.action_mask == "auto"

    def act(
        self,
        obs,
        state=NO_STATE,
        *,
        deterministic: bool = True,
        key: jax.Array | None = None,
        mask=None,
        info: dict | None = None,
        env=None,
    ):
        """Actions, as the env's ``step`` takes them, for what the env returned: one observation or a batch.

        Observations are encoded as in training (one-hot for Discrete, flattened Dict and Tuple, uint8
        images scaled, normalisation statistics).

        Args:
            obs: one observation as the env returns it, or a batch of them (a list, or an array
                [batch, *obs_shape]); a multi-agent policy (JaxMARL) takes a dict agent -> observation (and
                ``mask`` agent -> legal actions) and returns a dict agent -> action.
            state: the recurrent state: ``initial_state(n)`` at an episode's start, then what the last
                call returned. A recurrent policy needs it; a memoryless one passes it through.
            deterministic: the distribution's mode (the default, as for ``ppox eval`` and
                ``ppox.evaluate``); else actions are sampled with ``key``.
            key: a ``jax.random.PRNGKey``, required when ``deterministic`` is False.
            mask: legal actions (bool, True = legal), [n] for one observation or [batch, n]: masked actions
                get probability 0. Without it (unless the run said --action-mask off), a Dict observation's
                "action_mask" entry is used, else ``info["action_mask"]``, else ``env.action_masks()``.
            info: the info dict the env returned with ``obs`` (a vector env's too), for its "action_mask".
            env: the env that returned ``obs``, for its ``action_masks()`` method (sb3-contrib's convention).

        Returns:
            The actions, clipped to the bounds, shaped like the action space and with indices from the
            space's start: one action for one observation, else [batch, *action_shape]. Called with
            ``state``: the pair (actions, state after the step).

        Raises:
            ValueError: sampling without a ``key``, a recurrent policy called without ``state``, a policy
                trained with action masks called without them, or observations of the wrong shape.
        """
        if self.spec.agents and isinstance(obs, dict):  # (rows of one shared network, as in training)
            return self._act_by_agent(obs, state, deterministic, key, mask)
        batch, single = self.observations(obs)
        mask = self.legal_actions(obs, mask, info, env)
        if mask is not None:
            mask = np.asarray(mask).astype(bool).reshape(batch.shape[0], -1)
        if not deterministic and key is None:
            raise ValueError("sampling (deterministic=False) needs a key=jax.random.PRNGKey(...)")
        key = jax.random.PRNGKey(0) if key is None else key
        if self.recurrent and state is NO_STATE:
            raise ValueError(
                "this policy is recurrent (--memory): call act(obs, state) with "
                "state = policy.initial_state(n) at an episode's start; it returns (actions, state)"
            )
        memory = (state, np.zeros(batch.shape[0], bool)) if self.recurrent else None
        actions, _, carry = self._act(self.params, self.obs_stats, batch, key, deterministic, mask, memory)
        actions = np.asarray(actions)[0] if single else np.asarray(actions)
        if state is NO_STATE:
            return actions
        return actions, (jax.device_get(carry) if self.recurrent else state)

    def _act_by_agent(self, obs_by_agent: dict, state, deterministic: bool, key, mask_by_agent):
        """``act`` on a dict agent -> observation: the agents' rows acted on as in training, actions by agent."""
        rows, one = agent_rows(self.spec, self.config, obs_by_agent)
        masks = agent_masks(self.spec, mask_by_agent)
        out = self.act(rows, state, deterministic=deterministic, key=key, mask=masks)
        return by_agent(self.spec, out, one) if state is NO_STATE else (by_agent(self.spec, out[0], one), out[1])

    def legal_actions(self, obs, mask=None, info=None, env=None):
        """The mask to act under: ``mask``, else one that the observation, ``info`` or ``env`` offers (unless the
        run said --action-mask off); ValueError, one line, where the policy was trained with masks and none is
        given, since acting without them can choose an illegal action."""
        if mask is not None or self.config.action_mask != "auto":
            return mask
        if isinstance(obs, dict) and "action_mask" in obs:
            return obs["action_mask"]
        if isinstance(info, dict) and "action_mask" in info:
            return info["action_mask"]
        if env is not None:
            return env_action_masks(env)
        if self.masked:
            raise ValueError(
                f"this policy was trained with action masks ({MASK_WHERE[self.spec.action_mask]}): pass the legal "
                "actions, act(obs, mask=...), or act(obs, info=info) / act(obs, env=env) to read them from there"
            )
        return None

    def value(self, obs, state=None) -> np.ndarray:
        """The critic's V(s) for one observation or a batch (a recurrent policy: given its ``state``)."""
        batch, single = self.observations(obs)
        if self.recurrent and state is None:
            raise ValueError("this policy is recurrent (--memory): call value(obs, state) with its state")
        memory = (state, np.zeros(batch.shape[0], bool)) if self.recurrent else None
        values = np.asarray(self._act(self.params, self.obs_stats, batch, jax.random.PRNGKey(0), True, None, memory)[1])
        return values[0] if single else values

    def _encoded_already(self, obs) -> bool:
        """Whether ``obs`` is in the network's form already: a float array of the encoded shape where the
        env's observations are a dict, a tuple, or integers (one-hot encoded)."""
        if isinstance(obs, (dict, tuple)) or isinstance(self._space, spaces.Box):
            return False
        array = np.asarray(obs)
        return np.issubdtype(array.dtype, np.floating) and array.shape[-1:] == tuple(self.spec.obs_shape)[-1:]

    def observations(self, obs) -> tuple[np.ndarray, bool]:
        """(the network's input batch [batch, *obs_shape], whether ``obs`` was a single observation)."""
        if self._space is not None and not self._encoded_already(obs):
            single = is_single_observation(self._space, obs)
            batch = self._encoder(batch_of_one(self._space, obs) if single else obs)
        else:
            batch = np.asarray(obs, np.float32)
            single = batch.shape == tuple(self.spec.obs_shape)
            batch = batch[None] if single else batch
        if batch.shape[1:] != tuple(self.spec.obs_shape):
            shape = ", ".join(map(str, self.spec.obs_shape))
            raise ValueError(
                f"observations must be shaped [batch, {shape}] (or [{shape}] for one), after encoding; "
                f"got {list(batch.shape)}"
            )
        return batch, single


def env_action_masks(env) -> np.ndarray:
    """The legal actions ``env`` offers now through its ``action_masks()`` method (through wrappers too; a vector
    env's: each env's, stacked); ValueError where it has none."""
    method = getattr(env, "action_masks", None)
    if method is None and hasattr(env, "get_wrapper_attr"):
        try:
            method = env.get_wrapper_attr("action_masks")
        except AttributeError:
            method = None
    if callable(method):
        return np.asarray(method())
    if callable(getattr(env, "call", None)):  # a Gymnasium vector env: its envs' methods
        return np.stack([np.asarray(mask) for mask in env.call("action_masks")])
    raise ValueError(f"act(obs, env=...): {type(env).__name__} has no action_masks() method; pass mask=... instead")


def load(path, seed_index: int = 0) -> Policy:
    """Load a policy from a run folder or a policy file.

    The file's config and env spec are validated, and its tensors' shapes checked against the network they
    describe, before any tensor is read. Loading never runs code from the file (safetensors arrays plus
    JSON).

    Args:
        path: a run folder (its policy.safetensors is read) or a policy file.
        seed_index: which seed of a multi-seed run, an index into the file's leading [seeds] axis.

    Returns:
        A ``Policy`` with that seed's parameters and observation statistics; ``policy.act(obs)`` acts.

    A run folder whose policy file was lost (a kill -9 between the final checkpoint and the policy) gives
    the policy saved with its newest checkpoint, said on stderr.

    Raises:
        CheckpointError: the file is missing or damaged, its arrays do not match the network its config
            describes, or ``seed_index`` is out of range.
    """
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    if path.name == POLICY_FILE and not path.exists() and list_checkpoints(path.parent):
        return load_from_checkpoint(path.parent, seed_index)
    described: dict[str, Any] = {}

    def expect(metadata: dict, shapes: dict) -> None:
        try:
            config = Config.from_dict(json.loads(metadata["config"]))
            spec = EnvSpec.from_dict(json.loads(metadata["env_spec"]))
        except (KeyError, json.JSONDecodeError, ConfigError, ValueError) as err:
            raise CheckpointError(f"{path}: damaged policy metadata ({err})") from None
        described.update(config=config, spec=spec, seeds=check_shapes(path, config, spec, shapes))

    params, stats, _, _, _ = load_policy_file(path, expect)
    return _one_seed(path, described["config"], described["spec"], (params, stats), described["seeds"], seed_index)


def load_from_checkpoint(run: Path, seed_index: int = 0) -> Policy:
    """The policy saved with the run's newest checkpoint (for a run folder without its policy file)."""
    checkpoint = read_newest_checkpoint(run)
    saved = checkpoint_policy(checkpoint)
    if saved is None:
        raise CheckpointError(
            f"{run}: no {POLICY_FILE}, and its newest checkpoint holds no policy; write it with: ppox train "
            f"--resume {run}"
        )
    try:
        config = Config.from_dict(checkpoint.meta["config"])
        spec = EnvSpec.from_dict(checkpoint.meta["env_spec"])
    except (KeyError, TypeError, ConfigError, ValueError) as err:
        raise CheckpointError(f"{checkpoint.path}: damaged checkpoint metadata ({err})") from None
    start = len(POLICY_PREFIX) + 1
    shapes = {k[start:]: tuple(v.shape) for k, v in checkpoint.arrays.items() if k.startswith(POLICY_PREFIX + "/")}
    seeds = check_shapes(checkpoint.path, config, spec, shapes)
    print(f"ppox: {run} has no {POLICY_FILE}: using the policy saved with {checkpoint.path}", file=sys.stderr)
    return _one_seed(checkpoint.path, config, spec, saved, seeds, seed_index)


def _one_seed(path: Path, config: Config, spec: EnvSpec, saved: tuple, seeds: int, seed_index: int) -> Policy:
    """The Policy of seed ``seed_index`` of ``saved`` (params and obs_stats, seed-stacked) read from ``path``."""
    if not 0 <= seed_index < seeds:
        raise CheckpointError(f"{path}: seed_index {seed_index} out of range; the file holds {seeds} seed(s)")
    params, stats = saved
    pick = lambda x: jnp.asarray(x[seed_index])  # noqa: E731
    obs_stats = RunningMeanStd(**{k: pick(v) for k, v in stats.items()})
    return Policy(config, spec, jax.tree_util.tree_map(pick, params), obs_stats, source=path)


def check_shapes(path: Path, config: Config, spec: EnvSpec, have: dict[str, tuple]) -> int:
    """The number of seeds in a policy file whose tensors (name -> shape) are the shapes its config's network
    makes, with a leading seed axis; CheckpointError otherwise."""
    network = make_network(config, spec)
    template = jax.eval_shape(
        lambda key: init_params(network, key, jnp.zeros((1,) + tuple(spec.obs_shape))), jax.random.PRNGKey(0)
    )
    want = {f"params/{k}": tuple(v.shape) for k, v in traverse_util.flatten_dict(template, sep="/").items()}
    want.update(
        {"obs_stats/mean": tuple(spec.obs_shape), "obs_stats/var": tuple(spec.obs_shape), "obs_stats/count": ()}
    )
    seeds = {shape[0] if shape else 0 for shape in have.values()}
    if len(seeds) != 1 or 0 in seeds or {k: shape[1:] for k, shape in have.items()} != want:
        raise CheckpointError(f"{path}: damaged policy: its arrays do not match the network its config describes")
    return seeds.pop()
