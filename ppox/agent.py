"""The agent: its network, how observations are prepared for it, and how it acts.

``act`` is the one acting function: the fused rollout, the host collector's jitted actor, a loaded
``Policy`` and batched evaluation all call it. ``NumpyActor`` is the host driver's fast path for MLP
policies (a tiny forward pass is about 10 us in NumPy against about 60 us for a jitted call); a test
checks that it computes the same outputs as the flax network.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppox.config import Config
from ppox.core.normalize import RunningMeanStd, normalize
from ppox.envs.spec import EnvSpec
from ppox.errors import ConfigError
from ppox.networks import ActorCritic


def make_network(config: Config, spec: EnvSpec) -> ActorCritic:
    """The actor-critic for this config and env; a CNN torso for image (HxWxC) observations."""
    image = len(spec.obs_shape) == 3
    if config.network == "cnn" and not image:
        raise ConfigError(f"--network cnn needs image observations (HxWxC); this env's are shaped {spec.obs_shape}")
    return ActorCritic(
        cnn=config.network == "cnn" or (config.network == "auto" and image),
        action_kind=spec.action_kind,
        action_dims=spec.action_dims,
        obs_ndim=len(spec.obs_shape),
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
        shared_trunk=config.shared_trunk,
        log_std_init=config.log_std_init,
    )


def prepare_obs(config: Config, stats: RunningMeanStd, obs):
    """The network's input: float32, normalised by the running statistics when norm_obs."""
    obs = jnp.asarray(obs, jnp.float32)
    return normalize(stats, obs) if config.norm_obs else obs


class Acted(NamedTuple):
    """What one call of ``act`` returns for a batch of observations."""

    action: jax.Array  # sampled (or the mode when deterministic), unclipped
    log_prob: jax.Array  # log pi(action | obs)
    value: jax.Array  # V(obs)
    network_input: jax.Array  # the prepared observation the network saw


def act(network: ActorCritic, config: Config, params, obs_stats: RunningMeanStd, obs, key,
        deterministic: bool = False, mask=None) -> Acted:
    """a ~ pi(.|obs) (or its mode), with log pi(a|obs) and V(obs); traceable, jit and vmap freely. ``mask``
    (bool, True = legal, over the flat action layout) gives masked actions probability 0."""
    network_input = prepare_obs(config, obs_stats, obs)
    dist, value = network.apply(params, network_input)
    if mask is not None:
        dist = dist.replace(mask=mask)
    action = dist.mode() if deterministic else dist.sample(key)
    return Acted(action, dist.log_prob(action), value, network_input)


class JaxActor:
    """The host collector's actor for networks the NumPy actor does not mirror (CNN torsos): ``act``, jitted."""

    def __init__(self, config: Config, network: ActorCritic):
        self._sample = jax.jit(lambda params, stats, obs, key, mask: act(network, config, params, stats, obs, key,
                                                                         mask=mask).action)

    def load(self, params, obs_stats: RunningMeanStd) -> None:
        self.params, self.obs_stats = params, obs_stats

    def act(self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        return np.asarray(self._sample(self.params, self.obs_stats, obs, key, mask))


class NumpyActor:
    """The MLP actor's forward pass and sampling in NumPy, loaded from flax parameters."""

    def __init__(self, config: Config, spec: EnvSpec):
        self.config, self.spec = config, spec
        self.activation = np.tanh if config.activation == "tanh" else (lambda x: np.maximum(x, 0.0))

    def load(self, params, obs_stats: RunningMeanStd) -> None:
        p = jax.device_get(params["params"])
        trunk = p["actor_trunk"]
        self.layers = [(trunk[f"Dense_{i}"]["kernel"], trunk[f"Dense_{i}"]["bias"]) for i in range(len(trunk))]
        self.head = (p["Dense_1"]["kernel"], p["Dense_1"]["bias"])  # Dense_0 is the value head
        self.std = np.exp(p["log_std"]) if "log_std" in p else None
        stats = jax.device_get(obs_stats)
        self.mean, self.scale = np.asarray(stats.mean), 1.0 / np.sqrt(np.asarray(stats.var) + 1e-8)

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """The policy head's output: logits, or the Gaussian's mean."""
        x = obs.reshape(obs.shape[0], -1)
        if self.config.norm_obs:
            x = np.clip((obs - self.mean) * self.scale, -10.0, 10.0).reshape(obs.shape[0], -1)
        for kernel, bias in self.layers:
            x = self.activation(x @ kernel + bias)
        return x @ self.head[0] + self.head[1]

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


def make_actor(config: Config, spec: EnvSpec, network: ActorCritic):
    """The host's per-step actor: NumPy for MLP policies, the jitted ``act`` for CNN ones."""
    return JaxActor(config, network) if network.cnn else NumpyActor(config, spec)
