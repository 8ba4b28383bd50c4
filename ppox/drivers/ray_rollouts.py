"""Host-driver rollouts on Ray: N actors each step a share of the envs; the learner stays here.

Each update, the driver puts the actor's parameters and observation statistics into Ray's object
store once; every worker runs ``Collector.collect`` on its envs (the same code as one process) and
returns its [T, N/workers, ...] part of the batch; the parts are joined along the env axis, so the
batch and the PPO math are those of one process. A worker that dies is replaced by a fresh one
(new env seeds, episodes in progress lost) and asked again; ``restarts`` counts them.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from ppox.agent.agent import make_network
from ppox.config.config import Config
from ppox.drivers.collect import Collector, Rollout
from ppox.envs.families import make_host_envs
from ppox.envs.gym_envs import spec_from_spaces
from ppox.envs.spec import EnvSpec
from ppox.errors import ConfigError


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError('--ray needs Ray: pip install "ppox[ray]"') from None
    return ray


class RolloutWorker:
    """One Ray actor: a SyncEnvs share of the envs and a copy of the policy (a Collector)."""

    def __init__(self, config_json: str, env, num_envs: int, seed: int):
        jax.config.update("jax_platforms", "cpu")  # a worker acts in NumPy; it never needs an accelerator
        # (a worker only collects: one minibatch, so that its share of the envs is always a valid config)
        config = Config.from_dict(json.loads(config_json)).replace(
            num_envs=num_envs, ray=None, workers=1, num_minibatches=1
        )
        vec = config.vec if config.vec in ("ale", "envpool") else "sync"
        c = config
        venv = make_host_envs(env, num_envs, vec, c.max_episode_steps, c.hide_obs, agent_id=c.agent_id, critic=c.critic)
        spec = spec_from_spaces(venv.single_observation_space, venv.single_action_space)
        self.collector = Collector(
            config, spec, venv, make_network(config, spec), np.random.default_rng(seed), seed=seed
        )

    def first_obs(self) -> np.ndarray:
        return self.collector.first_obs()

    def restart(self, seed: int) -> None:
        self.collector.restart(seed)

    def collect(self, weights):
        params, obs_stats = weights
        rollout, returns, lengths, illegal = self.collector.collect(params, obs_stats)
        copy = jax.tree_util.tree_map(np.array, rollout)  # (the collector reuses its buffers: ship copies)
        return copy, [float(r) for r in returns], [int(n) for n in lengths], illegal


def merge_rollouts(parts: list[Rollout]) -> Rollout:
    """The workers' rollouts as one: time-major fields joined on the env axis (1), the start carry on axis 0."""

    def join(name: str):
        if getattr(parts[0], name) is None:
            return None
        if name == "carry":
            return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *[p.carry for p in parts])
        return np.concatenate([getattr(p, name) for p in parts], axis=1)

    return Rollout(**{name: join(name) for name in Rollout._fields})


class RayRollouts:
    """The driver's side: start the workers, gather their rollouts, replace the ones that die."""

    def __init__(self, config: Config, spec: EnvSpec, env):
        ray = _ray()
        if not ray.is_initialized():
            address = None if config.ray == "local" else config.ray
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except ConnectionError as err:
                raise ConfigError(
                    f"--ray {config.ray}: cannot reach the Ray cluster ({err}); start one with "
                    "`ray start --head`, or use --ray local"
                ) from None
        self.ray, self.config, self.env = ray, config, env
        self.per_worker = config.num_envs // config.workers
        self.restarts = 0
        self._remote = ray.remote(num_cpus=1)(RolloutWorker)
        self.workers = [self._start(config.seed + w * self.per_worker) for w in range(config.workers)]

    def _start(self, seed: int):
        return self._remote.options(max_restarts=0).remote(self.config.to_json(), self.env, self.per_worker, seed)

    def first_obs(self) -> np.ndarray:
        return np.concatenate(self.ray.get([w.first_obs.remote() for w in self.workers]), axis=0)

    def restart(self, seed: int) -> None:
        self.ray.get([w.restart.remote(seed + i * self.per_worker) for i, w in enumerate(self.workers)])

    def collect(self, params, obs_stats):
        weights = self.ray.put(jax.device_get((params, obs_stats)))
        futures = [w.collect.remote(weights) for w in self.workers]
        parts = []
        for i in range(len(self.workers)):
            while True:
                try:
                    parts.append(self.ray.get(futures[i]))
                    break
                except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError):
                    self.restarts += 1  # replace the worker: fresh envs with a new seed, same share
                    seed = self.config.seed + i * self.per_worker + 1_000_003 * self.restarts
                    self.workers[i] = self._start(seed)
                    futures[i] = self.workers[i].collect.remote(weights)
        rollout = merge_rollouts([p[0] for p in parts])
        returns = [r for p in parts for r in p[1]]
        lengths = [n for p in parts for n in p[2]]
        return rollout, returns, lengths, sum(p[3] for p in parts)

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)
