"""A trained policy that acts on batches of observations (from a run, or loaded from disk)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ppox.agent import act, make_network
from ppox.checkpoint import load_policy_file
from ppox.config import Config
from ppox.core.normalize import RunningMeanStd
from ppox.envs.spec import EnvSpec, to_env_action
from ppox.errors import CheckpointError, ConfigError

POLICY_FILE = "policy.safetensors"


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

        def env_action_and_value(params, stats, obs, key, deterministic: bool):
            acted = act(network, config, params, stats, obs, key, deterministic)
            return to_env_action(spec, acted.action, jnp), acted.value

        self._act_fn = env_action_and_value
        self._act = jax.jit(env_action_and_value, static_argnames="deterministic")

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
    try:
        config, spec = Config.from_dict(config_dict), EnvSpec.from_dict(spec_dict)
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{path}: damaged policy metadata ({err})") from None
    seeds = check_shapes(path, config, spec, params, stats)
    if not 0 <= seed_index < seeds:
        raise CheckpointError(f"{path}: seed_index {seed_index} out of range; the file holds {seeds} seed(s)")
    pick = lambda x: jnp.asarray(x[seed_index])  # noqa: E731
    obs_stats = RunningMeanStd(**{k: pick(v) for k, v in stats.items()})
    return Policy(config, spec, jax.tree_util.tree_map(pick, params), obs_stats, source=path)


def check_shapes(path: Path, config: Config, spec: EnvSpec, params, stats) -> int:
    """The number of seeds in a policy file, once every array is the shape its config's network makes
    (with a leading seed axis); CheckpointError otherwise."""
    network = make_network(config, spec)
    template = jax.eval_shape(network.init, jax.random.PRNGKey(0), jnp.zeros((1,) + tuple(spec.obs_shape)))
    want = {f"params/{k}": tuple(v.shape) for k, v in traverse_util.flatten_dict(template, sep="/").items()}
    want.update({"obs_stats/mean": tuple(spec.obs_shape), "obs_stats/var": tuple(spec.obs_shape),
                 "obs_stats/count": ()})
    have = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict({"params": params, "obs_stats": stats},
                                                                      sep="/").items()}
    seeds = {shape[0] if shape else 0 for shape in have.values()}
    if len(seeds) != 1 or 0 in seeds or {k: shape[1:] for k, shape in have.items()} != want:
        raise CheckpointError(f"{path}: damaged policy: its arrays do not match the network its config describes")
    return seeds.pop()
