"""The agent: its network, how observations are prepared for it, and how it acts.

``act`` is the one acting function: the fused rollout, the host collector's jitted actor, a loaded
``Policy`` and batched evaluation all call it. ``NumpyActor`` is the host driver's fast path for MLP
policies (a small network's forward pass in NumPy costs a fraction of a jitted call's dispatch;
docs/design-notes.md); a test checks that it computes the same outputs as the flax network.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppox.agent.networks import ActorCritic, RecurrentActorCritic, cell_step, memory_output, zero_carry
from ppox.config.config import Config
from ppox.core.normalize import RunningMeanStd, normalize
from ppox.envs.spec import EnvSpec
from ppox.errors import ConfigError


def make_network(config: Config, spec: EnvSpec) -> ActorCritic | RecurrentActorCritic:
    """The actor-critic for this config and env; a CNN torso for image (HxWxC) observations, a recurrent
    cell after the torso with --memory."""
    image = len(spec.obs_shape) == 3
    if config.network == "cnn" and not image:
        raise ConfigError(f"--network cnn needs image observations (HxWxC); this env's are shaped {spec.obs_shape}")
    if spec.actor_obs and (config.shared_trunk or image):
        raise ConfigError("--critic world_state gives the critic its own input: flat observations, no --shared-trunk")
    memory: dict[str, Any] = (
        {}
        if config.memory == "none"
        else {"memory": config.memory, "memory_size": config.memory_size, "post_memory_sizes": config.post_memory_sizes}
    )
    return (RecurrentActorCritic if memory else ActorCritic)(
        **memory,
        cnn=config.network == "cnn" or (config.network == "auto" and image),
        action_kind=spec.action_kind,
        action_dims=spec.action_dims,
        obs_ndim=len(spec.obs_shape),
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
        shared_trunk=config.shared_trunk,
        log_std_init=config.log_std_init,
        weight_init=config.weight_init,
        actor_obs=spec.actor_obs,
    )


def is_recurrent(network) -> bool:
    return isinstance(network, RecurrentActorCritic)


def initial_carry(network, batch: int):
    """The carry of ``batch`` envs at the start (None for memoryless networks)."""
    return zero_carry(network, batch) if is_recurrent(network) else None


def init_params(network, key, example_obs):
    """Fresh parameters, from one example input batch [1, ...] (recurrent: one step of one env)."""
    if not is_recurrent(network):
        return network.init(key, example_obs)
    return network.init(key, zero_carry(network, 1), example_obs[None], jnp.ones((1, 1), bool))


def float_obs(obs):
    """Observations as float32, uint8 images scaled to [0, 1] (as the networks scale them)."""
    obs = jnp.asarray(obs)
    return obs.astype(jnp.float32) / 255.0 if obs.dtype == jnp.uint8 else obs.astype(jnp.float32)


def prepare_obs(config: Config, stats: RunningMeanStd, obs):
    """The network's input: uint8 images as they are (the network scales them: a quarter of the bytes to move
    and store), else float32; with norm_obs, float_obs normalised by the running statistics."""
    obs = jnp.asarray(obs)
    if config.norm_obs:
        return normalize(stats, float_obs(obs))
    return obs if obs.dtype == jnp.uint8 else obs.astype(jnp.float32)


def apply_in_chunks(network, params, obs, frames: int = 64, needed=None):
    """``network.apply(params, obs)`` on observations [T, N, ...]; a CNN on a CPU runs it on chunks of at most
    ``frames`` frames (``lax.map``): XLA's CPU backend runs a CNN's forward faster on small chunks, whose
    patches stay in cache, than on a large batch at once (docs/design-notes.md). Other networks: one call.
    ``needed`` [T, N] (bool): a chunk with no needed frame is skipped and its outputs are zeros."""
    total = obs.shape[0] * obs.shape[1]
    chunk = max(c for c in range(1, frames + 1) if total % c == 0)
    if not (network.cnn and jax.default_backend() == "cpu") or total <= frames or chunk < frames // 4:
        return network.apply(params, obs)
    chunks = obs.reshape((total // chunk, chunk) + obs.shape[2:])

    def apply(x):
        return network.apply(params, x)

    def zeros(x):
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(apply, x))

    if needed is None:
        out = jax.lax.map(apply, chunks)
    else:
        out = jax.lax.map(
            lambda xs: jax.lax.cond(xs[1].any(), apply, zeros, xs[0]), (chunks, needed.reshape(total // chunk, chunk))
        )
    return jax.tree_util.tree_map(lambda y: y.reshape(obs.shape[:2] + y.shape[2:]), out)


def bootstrap_values(network, params, next_obs, values, truncated):
    """V(s_{t+1}) [T, N] of a rollout whose values[t] = V(obs[t]) are known, without a second pass over its frames.

    Where the episode goes on, s_{t+1} = obs[t+1], so V(s_{t+1}) = values[t+1]. The network runs only where that
    is not so: the rollout's last step and the final observations of truncated episodes. A terminated step keeps
    values[t+1] (any finite number: it is never bootstrapped, gamma (1 - terminated) V(s_{t+1}) = 0). A CNN on a
    CPU skips the chunks of frames that hold no such step (``apply_in_chunks``)."""
    needed = jnp.asarray(truncated, bool).at[-1].set(True)
    computed = apply_in_chunks(network, params, next_obs, needed=needed)[1]
    following = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])
    return jnp.where(needed, computed, following)


def next_values(network, params, next_obs, carries=None):
    """V(s_{t+1}) of prepared next observations [T, N, ...]; for a recurrent network, one more step of its
    cells from ``carries`` (the carry after each step t, [T, N, ...]), no reset: the episode goes on. A CNN on a
    CPU runs in chunks (``apply_in_chunks``)."""
    if carries is None:
        return apply_in_chunks(network, params, next_obs)[1]
    lead = next_obs.shape[:2]
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    steps = jnp.zeros((1, lead[0] * lead[1]), bool)
    _, _, values = network.apply(params, jax.tree_util.tree_map(flat, carries), flat(next_obs)[None], steps)
    return values.reshape(lead)


class Acted(NamedTuple):
    """What one call of ``act`` returns for a batch of observations."""

    action: jax.Array  # sampled (or the mode when deterministic), unclipped
    log_prob: jax.Array  # log pi(action | obs)
    value: jax.Array  # V(obs)
    network_input: jax.Array  # the prepared observation the network saw
    carry: Any = None  # recurrent networks: the carry after this step


def act(
    network,
    config: Config,
    params,
    obs_stats: RunningMeanStd,
    obs,
    key,
    deterministic: bool = False,
    mask=None,
    memory=None,
) -> Acted:
    """a ~ pi(.|obs) (or its mode), with log pi(a|obs) and V(obs); traceable, jit and vmap freely. ``mask``
    (bool, True = legal, over the flat action layout) gives masked actions probability 0. A recurrent
    network takes ``memory`` = (carry, starts): the carry zeroed where ``starts`` (obs begins an episode),
    then one step of its cell; the new carry comes back in ``Acted.carry``."""
    network_input = prepare_obs(config, obs_stats, obs)
    carry = None
    if memory is None:
        dist, value = network.apply(params, network_input)
    else:  # a sequence of one step
        carries, dist, value = network.apply(params, memory[0], network_input[None], memory[1][None])
        carry, dist, value = jax.tree_util.tree_map(lambda x: x[0], (carries, dist, value))
    if mask is not None:
        dist = dist.replace(mask=mask)
    action = dist.mode() if deterministic else dist.sample(key)
    return Acted(action, dist.log_prob(action), value, network_input, carry)


class JaxActor:
    """The host collector's actor for networks the NumPy actor does not mirror (CNN torsos, recurrent cells):
    ``act``, jitted. A recurrent actor keeps each env's carry: ``carry`` before a step, ``starts`` marking
    the envs whose observation begins an episode (reset with ``restart``). ``act_and_evaluate`` also returns
    log pi(a|s) and V(s) of the same forward pass, so that the update need not run the CNN over the batch again."""

    def __init__(self, config: Config, network):
        def sample(params, stats, obs, key, mask, memory):
            acted = act(network, config, params, stats, obs, key, mask=mask, memory=memory)
            return acted.action, acted.log_prob, acted.value, acted.carry

        self._sample = jax.jit(sample)
        self.network = network
        self.carry: Any = None  # a recurrent network's carry, between steps
        self.starts: np.ndarray | None = None

    def restart(self, num_envs: int) -> None:
        """Every env at an episode's start: a fresh carry."""
        if is_recurrent(self.network):
            self.carry, self.starts = zero_carry(self.network, num_envs), np.ones(num_envs, bool)

    def load(self, params, obs_stats: RunningMeanStd) -> None:
        self.params, self.obs_stats = params, obs_stats

    def act(self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
        return self.act_and_evaluate(obs, rng, mask)[0]

    def act_and_evaluate(self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None):
        """(actions, log pi(actions | obs), V(obs)) as NumPy arrays [num_envs]."""
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        memory = None if self.carry is None else (self.carry, self.starts)
        action, log_prob, value, carry = self._sample(self.params, self.obs_stats, obs, key, mask, memory)
        if memory is not None:
            self.carry = carry
        return jax.device_get((action, log_prob, value))


class NumpyActor:
    """The MLP actor's forward pass and sampling in NumPy, loaded from flax parameters; for a recurrent
    network also its cells (actor and critic: the carry at a rollout's start holds both), stepped with the
    same ``cell_step`` as the network. ``carry`` before a step, ``starts`` marking envs whose observation
    begins an episode (set by the collector after each step; ``restart`` for all)."""

    def __init__(self, config: Config, spec: EnvSpec, network=None):
        self.config, self.spec = config, spec
        self.activation = np.tanh if config.activation == "tanh" else (lambda x: np.maximum(x, 0.0))
        self.network: Any = network if network is not None and is_recurrent(network) else None
        self.carry: Any = None
        self.starts: Any = None
        self.std: Any = None

    def restart(self, num_envs: int) -> None:
        if self.network is not None:
            self.carry = jax.device_get(zero_carry(self.network, num_envs))
            self.starts = np.ones(num_envs, bool)

    def load(self, params, obs_stats: RunningMeanStd) -> None:
        p = jax.device_get(params["params"])

        def dense(trunk):
            return [(trunk[f"Dense_{i}"]["kernel"], trunk[f"Dense_{i}"]["bias"]) for i in range(len(trunk))]

        self.layers = dense(p["actor_trunk"])
        self.head = (p["Dense_1"]["kernel"], p["Dense_1"]["bias"])  # Dense_0 is the value head
        self.std = np.exp(p["log_std"]) if "log_std" in p else None
        stats = jax.device_get(obs_stats)
        self.mean, self.scale = np.asarray(stats.mean), 1.0 / np.sqrt(np.asarray(stats.var) + 1e-8)
        if self.network is not None:
            cells = ["actor_memory"] + ([] if self.network.shared_trunk else ["critic_memory"])
            self.cells = [p[name] for name in cells]
            self.critic_layers = None if self.network.shared_trunk else dense(p["critic_trunk"])
            self.post_layers = dense(p["actor_post_memory"]) if "actor_post_memory" in p else []

    def mlp(self, layers, x: np.ndarray) -> np.ndarray:
        for kernel, bias in layers:
            x = self.activation(x @ kernel + bias)
        return x

    def step_cells(self, actor_x: np.ndarray, critic_x: np.ndarray) -> np.ndarray:
        """Every cell one step (carries zeroed where ``starts``); returns the actor cell's output h."""
        kind, keep = self.network.memory, (~self.starts)[:, None]
        carry = []
        for cell, c, x in zip(self.cells, self.carry, (actor_x, critic_x)):
            c = jax.tree_util.tree_map(lambda a: a * keep, c)
            x_proj = x @ cell["input_kernel"] + cell["bias"]
            carry.append(cell_step(kind, cell["recurrent_kernel"], cell.get("recurrent_bias"), c, x_proj, np))
        self.carry = tuple(carry)
        return memory_output(kind, self.carry[0])

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """The policy head's output: logits, or the Gaussian's mean (recurrent: advancing the carry)."""
        obs = obs.astype(np.float32) / 255.0 if obs.dtype == np.uint8 else obs
        x = obs.reshape(obs.shape[0], -1)
        if self.config.norm_obs:
            x = np.clip((obs - self.mean) * self.scale, -10.0, 10.0).reshape(obs.shape[0], -1)
        split = self.spec.actor_obs  # (MAPPO: the actor reads the first features, the critic the rest)
        features = self.mlp(self.layers, x[:, :split] if split else x)
        if self.network is not None:
            critic = features if self.critic_layers is None else self.mlp(self.critic_layers, x[:, split:])
            features = self.mlp(self.post_layers, self.step_cells(features, critic))
        return features @ self.head[0] + self.head[1]

    def act(self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
        out = self.forward(obs)
        if self.spec.action_kind == "continuous":
            return (out + self.std * rng.standard_normal(out.shape)).astype(np.float32)
        # Gumbel-max: argmax(logits + G) ~ softmax(logits), with G = -log(E), E ~ Exponential(1)
        perturbed = out - np.log(rng.standard_exponential(out.shape, np.float32))
        if mask is not None:
            perturbed = np.where(mask, perturbed, -np.inf)  # a masked action is never the argmax
        if self.spec.action_kind == "discrete":
            return np.argmax(perturbed, axis=-1)
        parts = np.split(perturbed, np.cumsum(self.spec.action_dims)[:-1], axis=-1)
        return np.stack([np.argmax(part, axis=-1) for part in parts], axis=-1)


def make_actor(config: Config, spec: EnvSpec, network: ActorCritic | RecurrentActorCritic):
    """The host's per-step actor: NumPy for MLP torsos (recurrent or not), the jitted ``act`` for CNN ones."""
    return JaxActor(config, network) if network.cnn else NumpyActor(config, spec, network)
