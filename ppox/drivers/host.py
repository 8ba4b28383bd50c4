"""The host driver: PPO on any Gymnasium environment, stepped from Python.

Per step, the hot path is the actor's forward pass and sampling in NumPy (``ppox.agent.agent.NumpyActor``)
and ``env.step`` (``ppox.drivers.collect``). Per update, one jitted call does everything else on the
whole batch at once: log pi_old(a|s) and V(s) by the same network code the update uses (a jitted CNN actor
keeps those of its own forward pass instead: ``policy_outputs``), V(s') from them where the episode goes on
(``ppox.agent.agent.bootstrap_values``), reward scaling, and the learner's ``batch_from_rollout`` and ``ppo_update``,
as in the fused driver.
Observation statistics are updated once per rollout and held fixed within it, so the observations the
policy acted on are exactly the ones it is trained on.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from ppox.agent.agent import (
    apply_in_chunks,
    bootstrap_values,
    float_obs,
    init_params,
    make_network,
    next_values,
    prepare_obs,
)
from ppox.agent.learner import Hyper, batch_from_rollout, init_opt_state, make_optimizer, ppo_update
from ppox.agent.metrics import EPISODE_METRICS, METRIC_NAMES
from ppox.config.config import DEFAULT_ENV, Config, static_config
from ppox.core.normalize import RewardScaler, RunningMeanStd, scale_reward, update_stats
from ppox.drivers.base import any_length, check_env_memory, values_like
from ppox.drivers.collect import Collector, Rollout, check_finite_rollout
from ppox.drivers.ray_rollouts import RayRollouts
from ppox.envs.families import make_host_envs
from ppox.envs.gym_envs import spec_from_spaces
from ppox.envs.gym_make import (
    BorrowedVectorEnv,
    borrowed_num_envs,
    env_label,
    is_vector_env,
    vector_env_label,
    vector_eval_factory,
)
from ppox.errors import ConfigError, UserCodeError
from ppox.storage.checkpoint import Checkpoint, restore_state


class HostLearner(NamedTuple):
    """The learner's whole state (saved in checkpoints, in this order)."""

    params: Any
    opt_state: Any
    obs_stats: RunningMeanStd
    reward_scaler: RewardScaler
    key: jax.Array


class HostState(NamedTuple):
    learner: HostLearner
    update: int  # updates done


@functools.lru_cache(maxsize=8)
def build_learner(config: Config, spec):
    """(network, jitted init, jitted learn) for a program; cached, so repeated runs skip compilation.

    ``config`` should come through ``static_config`` and ``any_length`` (seed, output fields, length and the
    traced hyperparameters fixed: learn takes them as a ``Hyper`` argument), so that runs differing only in
    those share one compilation."""
    network = make_network(config, spec)
    optimizer = make_optimizer(config)
    return (
        network,
        make_init(config, network, optimizer),
        jax.jit(make_learn(config, network, optimizer), donate_argnums=(0,)),
    )


def make_init(config: Config, network, optimizer):
    """init(seed, first_obs) -> HostLearner, jitted: one compilation, not one per op."""

    def init(seed, first_obs):
        key, init_key = jax.random.split(jax.random.PRNGKey(seed))
        obs_stats = update_stats(RunningMeanStd.create(first_obs.shape[1:]), float_obs(first_obs))
        params = init_params(network, init_key, prepare_obs(config, obs_stats, first_obs[:1]))
        return HostLearner(
            params, init_opt_state(optimizer, params), obs_stats, RewardScaler.create(config.num_envs), key
        )

    return jax.jit(init)


def policy_outputs(network, params, obs_in, rollout: Rollout):
    """(log pi_old(a_t|s_t), V(s_t), carries) of the batch: the actor's own where it kept them (a CNN actor's
    forward pass, with these same parameters), else one pass of the network (in chunks of frames; a recurrent
    one re-runs its cells over each env's sequence from its carry at the rollout's start)."""
    if rollout.log_probs is not None:
        return rollout.log_probs, rollout.values, None
    carries = None
    if rollout.carry is None:
        dist, values = apply_in_chunks(network, params, obs_in)
    else:
        carries, dist, values = network.apply(params, rollout.carry, obs_in, rollout.starts)
    if rollout.masks is not None:
        dist = dist.replace(mask=rollout.masks)
    return dist.log_prob(rollout.actions), values, carries


def make_learn(config: Config, network, optimizer):
    """learn(learner, rollout, update_index, hyper) -> (learner, metrics), to be jitted. Every traced
    hyperparameter, the run's length included, is read from ``hyper`` (``ppox.agent.learner.Hyper``), never from
    ``config``: float32 arrays give one compilation for every value, Python floats fold into the program.

    The key is split inside (the next update's key is returned), so the loop dispatches one call per update."""

    def learn(learner: HostLearner, rollout: Rollout, update_index, hyper: Hyper):
        key, update_key = jax.random.split(learner.key)
        obs_in = prepare_obs(config, learner.obs_stats, rollout.obs)
        next_in = prepare_obs(config, learner.obs_stats, rollout.next_obs)
        memory = None if rollout.carry is None else (rollout.carry, rollout.starts)
        log_probs, values, carries = policy_outputs(network, learner.params, obs_in, rollout)
        if memory is None:
            values_next = bootstrap_values(network, learner.params, next_in, values, rollout.truncated)
        else:
            values_next = next_values(network, learner.params, next_in, carries)
        scaler, rewards = learner.reward_scaler, jnp.asarray(rollout.rewards) * config.reward_scale
        if config.norm_reward:
            done = jnp.logical_or(rollout.terminated, rollout.truncated)
            scaler, rewards = jax.lax.scan(
                lambda s, inputs: scale_reward(s, *inputs, hyper.gamma), scaler, (rewards, done)
            )
        batch = batch_from_rollout(
            config,
            obs_in,
            rollout.actions,
            log_probs,
            values,
            rewards,
            values_next,
            rollout.terminated,
            rollout.truncated,
            rollout.masks,
            memory,
            hyper,
        )
        params, opt_state, metrics = ppo_update(
            learner.params,
            learner.opt_state,
            batch,
            update_key,
            update_index,
            apply_fn=network.apply,
            optimizer=optimizer,
            config=config,
            hyper=hyper,
        )
        obs_stats = learner.obs_stats
        if config.norm_obs:
            obs_stats = update_stats(obs_stats, float_obs(rollout.next_obs.reshape((-1,) + rollout.next_obs.shape[2:])))
        return HostLearner(params, opt_state, obs_stats, scaler, key), metrics._asdict()

    return learn


class HostPending(NamedTuple):
    """What ``run`` leaves to fetch: the learner's metrics (still on the device) and the episode figures."""

    learner_metrics: list[dict]
    episodes: dict[str, np.ndarray]  # episode_return, episode_length, episode_count (and worker_restarts) [n]


class HostDriver:
    """The driver protocol (``ppox.drivers.base``) over a Gymnasium vector env, locally or on Ray workers.

    ``env`` is an id, an entry point, an env instance or a factory: the vector env is made here, so a bad
    env or space fails before the run folder exists (on Ray, one env here only reads the spaces). Or ``env`` is
    a vector env the user made (SAME_STEP autoreset): borrowed, with its num_envs, and never closed here."""

    name = "host"
    dispatch_ahead = False  # run() steps the envs itself: nothing to queue ahead
    compiled_chunks = False  # one update at a time: the first rows need not wait for a long first chunk

    def __init__(self, config: Config, env: Any):
        if isinstance(env, gym.Env) and config.eval_episodes and not is_vector_env(env):
            raise ConfigError(
                "--eval-episodes needs a fresh env to evaluate on: pass a factory (a function "
                "returning a new env) or an id instead of an env instance"
            )
        if isinstance(env, gym.Env) and config.ray is not None:
            raise ConfigError("--ray workers make their own envs: pass an id or a factory, not an env instance")
        self.env = env
        self.eval_env = None if isinstance(env, str) else env
        if is_vector_env(env):  # the user's own: checked, borrowed (never closed here), evaluated on a fresh env
            self.venv: Any = BorrowedVectorEnv(env)  # (its autoreset mode and spaces checked first)
            preset = Config.preset(config.env, network=config.network).num_envs
            config = config.replace(num_envs=borrowed_num_envs(env, config, preset))
            self.eval_env = vector_eval_factory(env)
        else:
            count = 1 if config.ray is not None else config.num_envs
            options = {"agent_id": config.agent_id, "critic": config.critic}  # (multi-agent families' options)
            self.venv = make_host_envs(env, count, config.vec, config.max_episode_steps, config.hide_obs, **options)
        self.metric_names = (
            METRIC_NAMES
            + (("worker_restarts",) if config.ray is not None else ())
            + (("illegal_actions",) if config.action_mask == "auto" else ())
        )
        if not isinstance(env, str) and config.env == DEFAULT_ENV:  # name the run after the env, not the default
            label = vector_env_label(env) if is_vector_env(env) else None
            config = config.replace(env=label or env_label(env, getattr(self.venv, "envs", [None])[0]))
        self.config = config
        try:
            self.spec = spec_from_spaces(self.venv.single_observation_space, self.venv.single_action_space)
            agents: tuple[str, ...] = () if is_vector_env(env) else tuple(getattr(self.venv, "agents", ()))
            if agents:  # (rows of a multi-agent env's agents: a loaded policy acts by agent)
                self.spec = dataclasses.replace(self.spec, agents=agents)
            actor_obs = getattr(env if is_vector_env(env) else self.venv, "actor_obs", 0)  # (PettingZoo's MAPPO rows)
            self.spec = dataclasses.replace(self.spec, actor_obs=int(actor_obs or 0))
            check_env_memory(config, self.spec, self.venv.single_observation_space)
            self.network, self._init, self._learn = build_learner(any_length(static_config(config)), self.spec)
        except BaseException:
            self.venv.close()
            raise
        self.hyper = Hyper.from_config(config, jnp.float32)  # the traced values, the run's length included
        self.rng = np.random.default_rng(config.seed)
        self.source: RayRollouts | Collector | None = None

    def init(self) -> HostState:
        config = self.config
        source: RayRollouts | Collector
        if config.ray is not None:
            source = RayRollouts(config, self.spec, self.env)
        else:
            source = Collector(config, self.spec, self.venv, self.network, self.rng, seed=config.seed)
            masks = getattr(self.venv, "mask_source", None)  # (read at the reset; recorded with the policy)
            self.spec = dataclasses.replace(self.spec, action_mask=masks if source.masked else None)
        self.source = source
        return HostState(self._init(config.seed, source.first_obs()), 0)

    def run(self, state: HostState, n: int) -> tuple[HostState, HostPending]:
        learner, update = state
        source = self.source
        assert source is not None, "init() makes the rollout source"
        pending: list[dict] = []
        episodes = {name: np.full(n, np.nan, np.float32) for name in EPISODE_METRICS}
        restarts, illegal = np.zeros(n, np.float32), np.zeros(n, np.float32)
        for i in range(n):
            try:
                rollout, returns, lengths, illegal[i] = source.collect(learner.params, learner.obs_stats)
            except UserCodeError as err:  # the env raised: the loop checkpoints the i updates done before it
                err.completed = (
                    HostState(learner, update + i),
                    self._pending(pending, episodes, restarts, illegal, i),
                    i,
                )
                raise
            check_finite_rollout(rollout, update + i)
            learner, metrics = self._learn(learner, rollout, update + i, self.hyper)
            pending.append(metrics)  # fetched with the chunk: no wait per update
            episodes["episode_count"][i] = len(returns)
            episodes["episode_return"][i] = np.mean(returns) if returns else np.nan
            episodes["episode_length"][i] = np.mean(lengths) if lengths else np.nan
            restarts[i] = getattr(source, "restarts", 0)
        return HostState(learner, update + n), self._pending(pending, episodes, restarts, illegal, n)

    def _pending(self, pending: list, episodes: dict, restarts, illegal, n: int) -> HostPending:
        """What there is to fetch of the chunk's first n updates."""
        episodes = {name: values[:n] for name, values in episodes.items()}
        if self.config.ray is not None:
            episodes["worker_restarts"] = restarts[:n]
        if self.config.action_mask == "auto":
            episodes["illegal_actions"] = illegal[:n]  # actions a mask forbade: 0 whenever the env offers masks
        return HostPending(pending[:n], episodes)

    def fetch(self, pending: HostPending, n: int) -> dict[str, np.ndarray]:
        learner_metrics = jax.device_get(pending.learner_metrics)
        out = {name: values[None] for name, values in pending.episodes.items()}
        for name in learner_metrics[0]:
            out[name] = np.asarray([m[name] for m in learner_metrics], np.float32)[None]
        return {name: out[name] for name in self.metric_names}

    def checkpoint_state(self, state: HostState):
        return {"learner": tuple(state.learner)}, {"numpy_rng": self.rng.bit_generator.state}

    def restore(self, state: HostState, checkpoint: Checkpoint) -> HostState:
        """The learner exactly as saved; the envs from a fresh reset (episodes in progress are lost)."""
        saved = checkpoint.meta["config"].get("num_envs")
        if saved != self.config.num_envs:  # (a vector env of another size than the run's)
            raise ConfigError(f"this run steps {saved} envs: resume it with a vector env of {saved} (num_envs)")
        learner = HostLearner(*restore_state(checkpoint, {"learner": tuple(state.learner)})["learner"])
        self.rng.bit_generator.state = checkpoint.meta["numpy_rng"]
        assert self.source is not None, "init() makes the rollout source"
        self.source.restart(seed=self.config.seed + 1_000_003 * checkpoint.update)  # not the first run's episodes
        return HostState(learner, checkpoint.update)

    def policies(self, state: HostState):
        add_seed_axis = lambda x: np.asarray(x)[None]  # noqa: E731
        return jax.tree_util.tree_map(add_seed_axis, jax.device_get((state.learner.params, state.learner.obs_stats)))

    def with_policies(self, state: HostState, params, obs_stats) -> HostState:
        """``state`` with these parameters and observation statistics (seed-stacked, as ``policies`` gives them)."""
        learner = state.learner
        first = lambda new, old: values_like(new[0], old)  # noqa: E731
        params, obs_stats = jax.tree_util.tree_map(first, (params, obs_stats), (learner.params, learner.obs_stats))
        return state._replace(learner=learner._replace(params=params, obs_stats=obs_stats))

    def close(self) -> None:
        try:
            if isinstance(self.source, RayRollouts):
                self.source.close()  # the Ray actors go, whatever stopped the loop
        finally:
            self.venv.close()
