"""A trained policy that acts on batches of observations (from a run, or loaded from disk)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppox.checkpoint import CheckpointError, load_policy_file
from ppox.config import Config
from ppox.core.normalize import RunningMeanStd
from ppox.envs import EnvSpec

POLICY_FILE = "policy.safetensors"


@dataclasses.dataclass
class Policy:
    """Acts with one seed's parameters; observation normalisation and action clipping included."""

    config: Config
    spec: EnvSpec
    params: Any
    obs_stats: RunningMeanStd

    def __post_init__(self):
        from ppox.drivers.fused import make_network, prepare_obs

        network = make_network(self.config, self.spec)
        low = None if self.spec.action_low is None else jnp.asarray(self.spec.action_low)
        high = None if self.spec.action_high is None else jnp.asarray(self.spec.action_high)

        def act(params, stats, obs, key, deterministic: bool):
            dist, value = network.apply(params, prepare_obs(self.config, stats, obs))
            action = dist.mode() if deterministic else dist.sample(key)
            if low is not None:
                action = jnp.clip(action, low, high)
            return action, value

        self._act_fn = act
        self._act = jax.jit(act, static_argnames="deterministic")

    def act_jax(self, obs, key, deterministic: bool):
        """Actions as a traceable JAX function (for use inside jit, e.g. batched evaluation)."""
        return self._act_fn(self.params, self.obs_stats, obs, key, deterministic)[0]

    def act(self, obs, *, deterministic: bool = True, key: jax.Array | None = None) -> np.ndarray:
        """Actions for a batch of observations shaped [batch, *obs_shape]."""
        obs = np.asarray(obs)
        if obs.shape[1:] != tuple(self.spec.obs_shape):
            raise ValueError(f"observations must be shaped [batch, {', '.join(map(str, self.spec.obs_shape))}], "
                             f"got {list(obs.shape)}")
        if not deterministic and key is None:
            raise ValueError("sampling (deterministic=False) needs a key=jax.random.PRNGKey(...)")
        key = jax.random.PRNGKey(0) if key is None else key
        return np.asarray(self._act(self.params, self.obs_stats, obs, key, deterministic)[0])

    def value(self, obs) -> np.ndarray:
        """The critic's V(s) for a batch of observations."""
        return np.asarray(self._act(self.params, self.obs_stats, np.asarray(obs), jax.random.PRNGKey(0), True)[1])


def load(path, seed_index: int = 0) -> Policy:
    """Load a policy from a run folder or a policy file; ``seed_index`` picks one of a multi-seed run."""
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    params, stats, config_dict, spec_dict, _ = load_policy_file(path)
    config = Config.from_dict(config_dict)
    seeds = jax.tree_util.tree_leaves(params)[0].shape[0]
    if not 0 <= seed_index < seeds:
        raise CheckpointError(f"{path}: seed_index {seed_index} out of range; the file holds {seeds} seed(s)")
    pick = lambda x: jnp.asarray(x[seed_index])  # noqa: E731
    obs_stats = RunningMeanStd(**{k: pick(v) for k, v in stats.items()})
    return Policy(config, EnvSpec.from_dict(spec_dict), jax.tree_util.tree_map(pick, params), obs_stats)
