"""The fused driver: rollout, advantages and update of a JAX-native env in one jitted function.

``make_train(config)`` returns ``train(key) -> (runner, metrics)``: the whole run as one
``lax.scan`` over updates, which ``jax.vmap`` turns into a multi-seed run. ``ppox.train``
runs the same ``update_step`` in chunks (``run_updates``), so that it can show progress and
write metrics between chunks without recompiling.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from ppox.config import Config
from ppox.core.normalize import RewardScaler, RunningMeanStd, normalize, scale_reward, update_stats
from ppox.envs import EnvSpec, make_autoreset_step, make_gymnax
from ppox.networks import ActorCritic
from ppox.update import Batch, UpdateMetrics, advantages_and_targets, init_opt_state, make_optimizer, ppo_update


# Per-update metrics (float32 scalars) returned by update_step, in the order they are logged.
METRIC_NAMES = ("episode_return", "episode_length", "episode_count") + UpdateMetrics._fields


@struct.dataclass
class Runner:
    """Everything a fused run carries from one update to the next (per seed)."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # raw observation of each env, [num_envs, ...]
    obs_stats: RunningMeanStd
    reward_scaler: RewardScaler
    episode_return: jax.Array  # raw return so far of each env's current episode
    episode_length: jax.Array
    key: jax.Array
    update_index: jax.Array


class Transition(NamedTuple):
    """One vector step of a rollout (time-major after the scan: [T, num_envs, ...])."""

    obs: jax.Array  # what the policy saw (normalised if norm_obs)
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array  # the training reward (scaled if norm_reward)
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array  # the true next observation (the final one when the episode ended), prepared
    finished_return: jax.Array  # raw episode return where an episode ended here, else 0
    finished_length: jax.Array


class Fused(NamedTuple):
    """The pieces of a fused run, built once per config."""

    config: Config
    spec: EnvSpec
    network: ActorCritic
    init: Callable  # key -> Runner
    collect: Callable  # Runner -> (Runner, Transition [num_steps, num_envs, ...])
    update_step: Callable  # Runner -> (Runner, metrics dict)


def make_network(config: Config, spec: EnvSpec) -> ActorCritic:
    """The actor-critic for this config and env; a CNN torso for image (HxWxC) observations."""
    from ppox.config import ConfigError

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


def build(config: Config) -> Fused:
    env, env_params, spec = make_gymnax(config.env)
    env_step = jax.vmap(make_autoreset_step(env, env_params))
    network = make_network(config, spec)
    optimizer = make_optimizer(config)
    num_envs = config.num_envs
    continuous = spec.action_kind == "continuous"
    if continuous:
        low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)

    def env_action(action):
        if not continuous:
            return action
        action = jnp.clip(action, low, high)  # the env gets the clipped action, the batch the raw one
        return action[..., 0] if env.action_space(env_params).shape == () else action

    def init(key) -> Runner:
        key, k_params, k_env = jax.random.split(key, 3)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_env, num_envs), env_params)
        stats = update_stats(RunningMeanStd.create(spec.obs_shape), jnp.asarray(obs, jnp.float32))
        params = network.init(k_params, prepare_obs(config, stats, obs[:1]))
        return Runner(
            params=params,
            opt_state=init_opt_state(optimizer, params),
            env_state=env_state,
            obs=obs,
            obs_stats=stats,
            reward_scaler=RewardScaler.create(num_envs),
            episode_return=jnp.zeros(num_envs),
            episode_length=jnp.zeros(num_envs, jnp.int32),
            key=key,
            update_index=jnp.zeros((), jnp.int32),
        )

    def rollout_step(runner: Runner, keys):
        act_key, env_keys = keys
        obs_in = prepare_obs(config, runner.obs_stats, runner.obs)
        dist, value = network.apply(runner.params, obs_in)
        action = dist.sample(act_key)
        next_obs, env_state, reward, terminated, truncated, final_obs = env_step(
            env_keys, runner.env_state, env_action(action)
        )
        done = jnp.logical_or(terminated, truncated)
        stats = update_stats(runner.obs_stats, jnp.asarray(next_obs, jnp.float32)) if config.norm_obs else runner.obs_stats
        scaler, train_reward = runner.reward_scaler, reward
        if config.norm_reward:
            scaler, train_reward = scale_reward(scaler, reward, done, config.gamma)
        ep_return = runner.episode_return + reward
        ep_length = runner.episode_length + 1
        transition = Transition(
            obs=obs_in,
            action=action,
            log_prob=dist.log_prob(action),
            value=value,
            reward=train_reward,
            terminated=terminated,
            truncated=truncated,
            next_obs=prepare_obs(config, stats, final_obs),
            finished_return=jnp.where(done, ep_return, 0.0),
            finished_length=jnp.where(done, ep_length, 0),
        )
        runner = runner.replace(
            env_state=env_state,
            obs=next_obs,
            obs_stats=stats,
            reward_scaler=scaler,
            episode_return=jnp.where(done, 0.0, ep_return),
            episode_length=jnp.where(done, 0, ep_length),
        )
        return runner, transition

    def collect(runner: Runner):
        """num_steps vector steps with the current policy -> (runner, time-major Transition).

        All the rollout's random keys are drawn here in two calls, not inside the step loop.
        """
        key, act_key, env_key = jax.random.split(runner.key, 3)
        act_keys = jax.random.split(act_key, config.num_steps)
        env_keys = jax.random.split(env_key, (config.num_steps, num_envs, 2))
        runner, traj = jax.lax.scan(rollout_step, runner.replace(key=key), (act_keys, env_keys))
        return runner, traj

    def update_step(runner: Runner):
        """One PPO iteration: collect a rollout, compute advantages, run the update."""
        runner, traj = collect(runner)
        # V(s_{t+1}) of the true next observation: bootstraps truncations and the batch's last step.
        _, next_values = network.apply(runner.params, traj.next_obs)
        advantages, targets = advantages_and_targets(config, traj.reward, traj.value, next_values, traj.terminated,
                                                     traj.truncated)
        batch = Batch(traj.obs, traj.action, traj.log_prob, traj.value, advantages, targets)
        batch = jax.tree_util.tree_map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)
        key, k_update = jax.random.split(runner.key)
        params, opt_state, update_metrics = ppo_update(
            runner.params, runner.opt_state, batch, k_update, runner.update_index,
            apply_fn=network.apply, optimizer=optimizer, config=config,
        )
        done = jnp.logical_or(traj.terminated, traj.truncated)
        count = done.sum()
        metrics = {
            "episode_return": jnp.where(count > 0, traj.finished_return.sum() / jnp.maximum(count, 1), jnp.nan),
            "episode_length": jnp.where(count > 0, traj.finished_length.sum() / jnp.maximum(count, 1), jnp.nan),
            "episode_count": count.astype(jnp.float32),
            **update_metrics._asdict(),
        }
        runner = runner.replace(params=params, opt_state=opt_state, key=key, update_index=runner.update_index + 1)
        return runner, metrics

    return Fused(config, spec, network, init, collect, update_step)


def make_train(config: Config):
    """train(key) -> (final Runner, metrics with a leading [num_updates] axis); jit and vmap freely."""
    fused = build(config)

    def train(key):
        runner = fused.init(key)
        return jax.lax.scan(lambda r, _: fused.update_step(r), runner, None, length=config.num_updates)

    return train


def make_chunk_runner(fused: Fused, chunk: int):
    """run(runner, n) -> (runner, metrics[chunk]): n <= chunk updates (n dynamic, one compilation)."""

    def run(runner, n):
        buffer = {name: jnp.full((chunk,), jnp.nan, jnp.float32) for name in METRIC_NAMES}

        def body(i, carry):
            runner, buffer = carry
            runner, metrics = fused.update_step(runner)
            buffer = jax.tree_util.tree_map(lambda b, m: b.at[i].set(m), buffer, metrics)
            return runner, buffer

        return jax.lax.fori_loop(0, n, body, (runner, buffer))

    return run
