"""The host driver: PPO on any Gymnasium environment, stepped from Python.

Per step, the hot path is the actor's forward pass and sampling in NumPy (no jit dispatch:
about 10 us against about 60 us for a jitted call) and ``env.step``. Per update, one jitted
call does everything else on the whole batch at once: log pi_old(a|s), V(s) and V(s') by the
same network code the update uses, reward scaling, GAE, and the same ``ppo_update`` as the
fused driver. Observation statistics are updated once per rollout and held fixed within it,
so the observations the policy acted on are exactly the ones it is trained on.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppox.config import Config
from ppox.core.normalize import RewardScaler, RunningMeanStd, scale_reward, update_stats
from ppox.drivers.fused import METRIC_NAMES, make_network, prepare_obs
from ppox.envs.gym_envs import ObsEncoder, action_start, spec_from_spaces
from ppox.envs.spec import EnvSpec
from ppox.update import Batch, advantages_and_targets, init_opt_state, make_optimizer, ppo_update

LOG_EVERY = 10  # updates between writes to the run log


class Rollout(NamedTuple):
    """num_steps vector steps collected on the host, time-major [T, num_envs, ...]."""

    obs: np.ndarray  # encoded observation the policy acted on (before normalisation)
    actions: np.ndarray  # sampled, unclipped
    rewards: np.ndarray  # raw rewards
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray  # the true next observation (the final one where an episode ended), encoded


class NumpyActor:
    """The actor network's forward pass and sampling in NumPy, loaded from flax parameters."""

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

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = obs.reshape(obs.shape[0], -1)
        if self.config.norm_obs:
            x = np.clip((obs - self.mean) * self.scale, -10.0, 10.0).reshape(obs.shape[0], -1)
        for kernel, bias in self.layers:
            x = self.activation(x @ kernel + bias)
        out = x @ self.head[0] + self.head[1]
        if self.spec.action_kind == "continuous":
            return (out + self.std * rng.standard_normal(out.shape)).astype(np.float32)
        # Gumbel-max: argmax(logits + G) ~ softmax(logits), with G = -log(E), E ~ Exponential(1)
        perturbed = out - np.log(rng.standard_exponential(out.shape, np.float32))
        if self.spec.action_kind == "discrete":
            return np.argmax(perturbed, axis=-1)
        parts = np.split(perturbed, np.cumsum(self.spec.action_dims)[:-1], axis=-1)
        return np.stack([np.argmax(part, axis=-1) for part in parts], axis=-1)


@functools.lru_cache(maxsize=8)
def build_learner(config: Config, spec: EnvSpec):
    """(network, optimizer, jitted init, jitted learn) for a program; cached, so repeated runs skip compilation.

    ``config`` should come through ``training.graph_config`` (seed and output fields fixed)."""
    network = make_network(config, spec)
    optimizer = make_optimizer(config)
    return network, optimizer, make_init(config, network, optimizer), make_learn(config, network, optimizer)


def make_init(config: Config, network, optimizer):
    """init(seed, first_obs) -> (params, opt_state, obs_stats, scaler, key), jitted: one compilation, not one per op."""

    def init(seed, first_obs):
        key, init_key = jax.random.split(jax.random.PRNGKey(seed))
        obs_stats = update_stats(RunningMeanStd.create(first_obs.shape[1:]), first_obs)
        params = network.init(init_key, prepare_obs(config, obs_stats, first_obs[:1]))
        return params, init_opt_state(optimizer, params), obs_stats, RewardScaler.create(config.num_envs), key

    return jax.jit(init)


class JaxActor:
    """The jitted actor, for networks the NumPy actor does not mirror (CNN torsos)."""

    def __init__(self, config: Config, spec: EnvSpec, network):
        def sample(params, stats, obs, key):
            return network.apply(params, prepare_obs(config, stats, obs))[0].sample(key)

        self._sample = jax.jit(sample)

    def load(self, params, obs_stats: RunningMeanStd) -> None:
        self.params, self.obs_stats = params, obs_stats

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        return np.asarray(self._sample(self.params, self.obs_stats, obs, key))


def make_learn(config: Config, network, optimizer):
    """learn(params, opt_state, obs_stats, scaler, rollout, key, update_index) -> (..., key, metrics), jitted.

    ``key`` is split inside (the next update's key is returned), so the loop dispatches one call per update."""

    def learn(params, opt_state, obs_stats, scaler, rollout: Rollout, key, update_index):
        key, update_key = jax.random.split(key)
        obs_in = prepare_obs(config, obs_stats, rollout.obs)
        dist, values = network.apply(params, obs_in)
        _, next_values = network.apply(params, prepare_obs(config, obs_stats, rollout.next_obs))
        rewards = rollout.rewards
        if config.norm_reward:
            done = jnp.logical_or(rollout.terminated, rollout.truncated)

            def scale(s, inputs):
                return scale_reward(s, *inputs, config.gamma)

            scaler, rewards = jax.lax.scan(scale, scaler, (rewards, done))
        advantages, targets = advantages_and_targets(config, rewards, values, next_values, rollout.terminated,
                                                     rollout.truncated)
        batch = Batch(obs_in, rollout.actions, dist.log_prob(rollout.actions), values, advantages, targets)
        batch = jax.tree_util.tree_map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)
        params, opt_state, metrics = ppo_update(params, opt_state, batch, update_key, update_index,
                                                apply_fn=network.apply, optimizer=optimizer, config=config)
        if config.norm_obs:
            obs_stats = update_stats(obs_stats, rollout.next_obs.reshape((-1,) + rollout.next_obs.shape[2:]))
        return params, opt_state, obs_stats, scaler, key, metrics._asdict()

    return jax.jit(learn, donate_argnums=(0, 1))


def _final_observations(venv, encoder: ObsEncoder, next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """next_obs with each ended env's row replaced by its episode's final observation (SAME_STEP autoreset)."""
    final = next_obs.copy()
    for i in np.flatnonzero(done):
        final[i] = encoder(_batch_of_one(venv.single_observation_space, info["final_obs"][i]))[0]
    return final


def _batch_of_one(space, x):
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return {k: _batch_of_one(s, x[k]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_batch_of_one(s, x[i]) for i, s in enumerate(space.spaces))
    return np.asarray(x)[None]


class Collector:
    """Steps a vector env with the current policy for ``num_steps``: the host driver's per-step hot path.

    Owns the env, the NumPy (or jitted CNN) actor, the action random generator, the current
    observations and the running episode returns and lengths. Used in this process, and inside
    each Ray rollout worker for its share of the envs."""

    def __init__(self, config: Config, spec: EnvSpec, venv, network, rng: np.random.Generator, seed: int):
        self.config, self.spec, self.venv, self.rng = config, spec, venv, rng
        self.encoder = ObsEncoder(venv.single_observation_space)
        self.actor = JaxActor(config, spec, network) if network.cnn else NumpyActor(config, spec)
        self.continuous = spec.action_kind == "continuous"
        self.low, self.high = ((np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32))
                               if self.continuous else (None, None))
        self.action_shape = venv.single_action_space.shape
        self.offset = action_start(venv.single_action_space)
        T, N = config.num_steps, venv.num_envs
        self.buffers = Rollout(
            obs=np.zeros((T, N) + spec.obs_shape, np.float32),
            actions=np.zeros((T, N) + ((spec.action_dims[0],) if self.continuous else
                                       ((len(spec.action_dims),) if spec.action_kind == "multi_discrete" else ())),
                             np.float32 if self.continuous else np.int32),
            rewards=np.zeros((T, N), np.float32),
            terminated=np.zeros((T, N), bool),
            truncated=np.zeros((T, N), bool),
            next_obs=np.zeros((T, N) + spec.obs_shape, np.float32),
        )
        self.restart(seed)

    def restart(self, seed: int) -> None:
        """Reset every env (env i gets seed + i) and forget the episodes in progress."""
        raw, _ = self.venv.reset(seed=seed)
        self.obs = self.encoder(raw)
        self.episode_return = np.zeros(self.venv.num_envs)
        self.episode_length = np.zeros(self.venv.num_envs, np.int64)

    def first_obs(self) -> np.ndarray:
        return self.obs

    def collect(self, params, obs_stats) -> tuple[Rollout, list, list]:
        """(rollout [T, N, ...], returns and lengths of the episodes that ended in it)."""
        self.actor.load(params, obs_stats)
        buffers, venv, encoder, actor, rng = self.buffers, self.venv, self.encoder, self.actor, self.rng
        continuous, low, high, offset = self.continuous, self.low, self.high, self.offset
        N, obs = venv.num_envs, self.obs
        episode_return, episode_length = self.episode_return, self.episode_length
        finished_returns, finished_lengths = [], []
        for t in range(self.config.num_steps):
            buffers.obs[t] = obs
            action = actor.act(obs, rng)
            buffers.actions[t] = action
            env_action = np.clip(action, low, high).reshape((N,) + self.action_shape) if continuous else action + offset
            raw, reward, terminated, truncated, info = venv.step(env_action)
            next_obs = encoder(raw)
            done = np.logical_or(terminated, truncated)
            buffers.rewards[t], buffers.terminated[t], buffers.truncated[t] = reward, terminated, truncated
            episode_return += reward
            episode_length += 1
            if not done.any():
                buffers.next_obs[t] = next_obs
            else:
                buffers.truncated[t] &= ~buffers.terminated[t]  # both at once: terminated wins, no bootstrap
                buffers.next_obs[t] = _final_observations(venv, encoder, next_obs, done, info)
                finished_returns.extend(episode_return[done])
                finished_lengths.extend(episode_length[done])
                episode_return[done], episode_length[done] = 0.0, 0
            obs = next_obs
        self.obs = obs
        return buffers, finished_returns, finished_lengths


def train_host(config: Config, venv, log, run_path=None, checkpoint=None, stop=None, env=None):
    """Train on a Gymnasium vector env (see make_vector_env).

    Returns (spec, params, obs_stats, metrics [1, U], interrupted). With ``run_path``, checkpoints
    the learner every ``config.checkpoint_every`` steps, at the end, and when ``stop.requested``
    (set by a signal) before stopping. ``checkpoint`` = (path, arrays, update, meta) resumes one:
    the learner state exactly, the envs from a fresh reset. ``env``: what ``venv`` was made from (an id or
    a factory), for Ray workers and evaluation episodes."""
    from ppox.checkpoint import checkpoint_metrics, restore_state
    from ppox.training import _check_finite_metrics, _checkpoint_interval, _save_checkpoint, graph_config

    spec = spec_from_spaces(venv.single_observation_space, venv.single_action_space)
    network, _, init, learn = build_learner(graph_config(config), spec)
    rng = np.random.default_rng(config.seed)
    if config.ray is not None:
        from ppox.drivers.ray_rollouts import RayRollouts

        source = RayRollouts(config, spec, env if env is not None else config.env)
    else:
        source = Collector(config, spec, venv, network, rng, seed=config.seed)
    obs = source.first_obs()
    params, opt_state, obs_stats, scaler, key = init(config.seed, obs)
    first, wall_before = 0, 0.0
    history = {name: np.full(config.num_updates, np.nan, np.float32) for name in METRIC_NAMES}
    if config.ray is not None:
        history["worker_restarts"] = np.zeros(config.num_updates, np.float32)
    if checkpoint is not None:
        path, arrays, first, meta = checkpoint
        state = restore_state(arrays, {"learner": (params, opt_state, obs_stats, scaler, key)}, path)
        params, opt_state, obs_stats, scaler, key = state["learner"]
        rng.bit_generator.state = meta["numpy_rng"]
        wall_before = meta.get("wall_time", 0.0)
        for name, values in checkpoint_metrics(arrays).items():
            if name in history:
                history[name][:first] = values[0, :first]
        source.restart(seed=config.seed + 1_000_003 * first)  # fresh episodes, not the first run's
    start = time.perf_counter()
    every = _checkpoint_interval(config)

    def save(done: int) -> None:
        if run_path is not None:
            _save_checkpoint(run_path, done, {"learner": (params, opt_state, obs_stats, scaler, key)},
                             {k: v[None, :done] for k, v in history.items()}, config, spec, "host",
                             wall_before + time.perf_counter() - start, {"numpy_rng": rng.bit_generator.state},
                             policies=[(params, obs_stats)], eval_env=None if isinstance(env, str) else env)
    logged, tick, pending = first, time.perf_counter(), []
    interrupted = False

    try:
        for update in range(first, config.num_updates):
            buffers, finished_returns, finished_lengths = source.collect(params, obs_stats)
            _check_finite(buffers, update)
            params, opt_state, obs_stats, scaler, key, metrics = learn(params, opt_state, obs_stats, scaler, buffers,
                                                                      key, update)
            pending.append(metrics)  # fetched with the next log write: no extra wait per update
            history["episode_count"][update] = len(finished_returns)
            if config.ray is not None:
                history["worker_restarts"][update] = source.restarts
            history["episode_return"][update] = np.mean(finished_returns) if finished_returns else np.nan
            history["episode_length"][update] = np.mean(finished_lengths) if finished_lengths else np.nan
            done = update + 1
            checkpoint_due = every and done % every == 0
            stopping = stop is not None and stop.requested
            if done - logged >= LOG_EVERY or done == config.num_updates or checkpoint_due or stopping:
                for i, metrics in enumerate(jax.device_get(pending)):
                    for name, value in metrics.items():
                        history[name][logged + i] = value
                pending = []
                now = time.perf_counter()
                recent = {k: v[None, logged:done] for k, v in history.items()}
                log.write(recent, logged, (done - logged) * config.batch_size / (now - tick))
                _check_finite_metrics(recent, logged)
                logged, tick = done, now
            if checkpoint_due or stopping or done == config.num_updates:
                save(done)
            if stopping and done < config.num_updates:
                interrupted = True
                history = {k: v[:done] for k, v in history.items()}
                break
    finally:
        if config.ray is not None:
            source.close()  # the Ray actors go, whatever stopped the loop
    add_seed_axis = lambda x: np.asarray(x)[None]  # noqa: E731
    return (spec, jax.tree_util.tree_map(add_seed_axis, jax.device_get(params)),
            jax.tree_util.tree_map(add_seed_axis, jax.device_get(obs_stats)),
            {k: v[None] for k, v in history.items()}, interrupted)


def _check_finite(rollout: Rollout, update: int) -> None:
    for name in ("obs", "rewards", "next_obs"):
        if not np.isfinite(getattr(rollout, name)).all():
            raise FloatingPointError(f"the environment returned non-finite {name.replace('_', ' ')} in update {update}")
