"""The fused program: rollout, advantages and update of a JAX-native env in one jitted function.

``make_train(config)`` returns ``train(key) -> (runner, metrics)``: the whole run as one
``lax.scan`` over updates, which ``jax.vmap`` turns into a multi-seed run. The fused driver
(``ppox.drivers.fused``) runs the same ``update_step`` in chunks (``make_chunk_runner``), so that
the run loop can show progress, write metrics and checkpoint between chunks without recompiling.
Both take the traced hyperparameters (``ppox.agent.learner.Hyper``) as an argument, the config's by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ppox.agent.agent import act, init_params, initial_carry, make_network, next_values, prepare_obs
from ppox.agent.learner import Hyper, batch_from_rollout, init_opt_state, make_optimizer, ppo_update
from ppox.agent.metrics import METRIC_NAMES
from ppox.agent.networks import ActorCritic, RecurrentActorCritic
from ppox.config.config import Config
from ppox.core.normalize import RewardScaler, RunningMeanStd, scale_reward, update_stats
from ppox.drivers import agents as stacking
from ppox.drivers import selfplay
from ppox.drivers.base import check_env_memory
from ppox.drivers.fused_state import Runner, Transition
from ppox.drivers.keys import typed_key
from ppox.envs.action_repeat import with_action_repeat
from ppox.envs.episode_metrics import extra_metric_names, update_means
from ppox.envs.families import family_for, load_maker
from ppox.envs.jax_envs import make_autoreset_step, make_jax_env
from ppox.envs.optimistic_reset import batched_step
from ppox.envs.spec import EnvSpec, to_env_action


class Fused(NamedTuple):
    """The pieces of a fused run, built once per config (``build``); its methods are the program."""

    config: Config
    spec: EnvSpec
    network: ActorCritic | RecurrentActorCritic
    optimizer: Any
    env: Any
    env_params: Any
    env_step: Callable | None  # vmapped make_autoreset_step (None with a pool)
    pool: Any = None  # instead of env: EnvPool's Atari games (ppox.envs.envpool_xla), stepped from here
    learner: Config | None = None  # the update's view of a multi-agent run: a row per agent (``learner_config``)

    @property
    def agents(self) -> int:  # (a multi-agent env's, stacked as rows of the batch: ppox.drivers.agents)
        return stacking.agent_count(self.env)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """metrics.csv's columns: METRIC_NAMES, an env's own (such as Craftax's achievements), and a multi-agent
        env's team return and each agent's return."""
        names = METRIC_NAMES + extra_metric_names(self.env) + stacking.agent_metric_names(self.env)
        return names + (selfplay.POOL_METRICS if self.config.opponent != "random" else ())

    @property
    def masked(self) -> bool:
        """Whether actions are masked: the env has action_mask(state) and the run did not say --action-mask off."""
        return self.config.action_mask == "auto" and hasattr(self.env, "action_mask")

    def init(self, key) -> Runner:
        """The runner at update 0: fresh parameters, optimiser, envs and statistics."""
        config, num_envs = self.config, self.config.num_envs
        key, k_params, k_env = jax.random.split(typed_key(key, config.prng_impl), 3)
        if self.pool is not None:  # (the host restarted the games: this receives their first frames)
            obs, env_state = self.pool.first()
        elif config.opponent != "random":  # (self-play: the games start below, once the parameters exist)
            obs, env_state = selfplay.first_observations(self, k_env), None
        else:
            reset = jax.vmap(self.env.reset, in_axes=(0, None))
            obs, env_state = reset(jax.random.split(k_env, num_envs), self.env_params)
            obs = stacking.fold(obs, self.agents)
        rows = obs.shape[0]  # num_envs, or num_envs * agents
        stats = update_stats(RunningMeanStd.create(self.spec.obs_shape), jnp.asarray(obs, jnp.float32))
        params = init_params(self.network, k_params, prepare_obs(config, stats, obs[:1]))
        pool = None
        if config.opponent != "random":  # (games against the current policy: its first moves need the parameters)
            obs, env_state, pool = selfplay.start(self, k_env, params)
        carry = initial_carry(self.network, rows)
        return Runner(
            params=params,
            opt_state=init_opt_state(self.optimizer, params),
            env_state=env_state,
            obs=obs,
            obs_stats=stats,
            reward_scaler=RewardScaler.create(rows),
            episode_return=jnp.zeros(rows),
            episode_length=jnp.zeros(rows, jnp.int32),
            key=jax.random.key_data(key),
            update_index=jnp.zeros((), jnp.int32),
            carry=carry,
            starts=None if carry is None else jnp.ones(rows, bool),
            pool=pool,
        )

    def key_of(self, runner: Runner) -> jax.Array:
        """The runner's key (kept as its uint32 words, as checkpoints hold it) as a key of ``config.prng_impl``."""
        return jax.random.wrap_key_data(runner.key, impl=self.config.prng_impl)

    def rollout_step(self, runner: Runner, keys, hyper: Hyper) -> tuple[Runner, Transition]:
        """One vector step: act, step the envs (autoreset), update the statistics and episode counters."""
        config = self.config
        act_key, env_keys = keys
        memory = None if runner.carry is None else (runner.carry, runner.starts)
        mask = stacking.fold(jax.vmap(self.env.action_mask)(runner.env_state), self.agents) if self.masked else None
        acted = act(
            self.network, config, runner.params, runner.obs_stats, runner.obs, act_key, mask=mask, memory=memory
        )
        # the env gets the clipped action, the batch the sampled one
        stepped = self.step_envs(env_keys, runner.env_state, to_env_action(self.spec, acted.action, jnp))
        env_state, next_obs, final_obs, reward, game_reward, terminated, truncated, game_over, values = stepped
        done = jnp.logical_or(terminated, truncated)
        stats = (
            update_stats(runner.obs_stats, jnp.asarray(next_obs, jnp.float32)) if config.norm_obs else runner.obs_stats
        )
        scaler, train_reward = runner.reward_scaler, reward * config.reward_scale
        if config.norm_reward:
            scaler, train_reward = scale_reward(scaler, train_reward, done, hyper.gamma)
        if runner.pool is not None:  # (self-play: the games that ended, counted against their opponents)
            runner = runner.replace(pool=selfplay.record(runner.pool, runner.env_state, game_over, game_reward))
        ep_return = runner.episode_return + game_reward
        ep_length = runner.episode_length + 1
        transition = Transition(
            obs=acted.network_input,
            action=acted.action,
            log_prob=acted.log_prob,
            value=acted.value,
            reward=train_reward,
            terminated=terminated,
            truncated=truncated,
            next_obs=prepare_obs(config, stats, final_obs),
            finished_return=jnp.where(game_over, ep_return, 0.0),
            finished_length=jnp.where(game_over, ep_length, 0),
            start=runner.starts,
            carry=acted.carry,
            mask=mask,
            episode_values=values,
        )
        if runner.carry is not None:
            runner = runner.replace(carry=acted.carry, starts=done)
        runner = runner.replace(
            env_state=env_state,
            obs=next_obs,
            obs_stats=stats,
            reward_scaler=scaler,
            episode_return=jnp.where(game_over, 0.0, ep_return),
            episode_length=jnp.where(game_over, 0, ep_length),
        )
        return runner, transition

    def step_envs(self, keys, env_state, action):
        """(env_state, next_obs, final_obs, reward, game_reward, terminated, truncated, game_over, episode_values):
        training's episodes and reward, the episodes the run logs (for Atari: whole games and their raw score), and
        the env's per-episode values (ppox.envs.episode_metrics; {} for pools and multi-agent rows)."""
        if self.pool is not None:
            env_state, stepped = self.pool.step(env_state, action)
            return (
                env_state,
                stepped.obs,
                stepped.obs,
                stepped.reward,
                stepped.game_reward,
                stepped.terminated,
                stepped.truncated,
                stepped.game_over,
                {},
            )
        if self.agents:
            return (*stacking.step_rows(self.env_step, self.agents, keys, env_state, action), {})
        next_obs, env_state, reward, terminated, truncated, final_obs, values = self.env_step(keys, env_state, action)
        return (
            env_state,
            next_obs,
            final_obs,
            reward,
            reward,
            terminated,
            truncated,
            jnp.logical_or(terminated, truncated),
            values,  # (one-agent envs: their per-episode values, ppox.envs.episode_metrics)
        )

    def collect(self, runner: Runner, hyper: Hyper | None = None) -> tuple[Runner, Transition]:
        """num_steps vector steps with the current policy -> (runner, time-major Transition).

        All the rollout's random keys are drawn here in two calls, not inside the step loop.
        """
        steps = self.config.num_steps
        hyper = Hyper.from_config(self.config) if hyper is None else hyper
        key, act_key, env_key = jax.random.split(self.key_of(runner), 3)
        act_keys = jax.random.split(act_key, steps)
        env_keys = jax.random.split(env_key, (steps, self.config.num_envs, 2))
        runner = runner.replace(key=jax.random.key_data(key))
        program = self if runner.pool is None else selfplay.rollout_program(self, runner)  # (this rollout's opponents)
        return jax.lax.scan(lambda r, k: program.rollout_step(r, k, hyper), runner, (act_keys, env_keys))

    def update_step(self, runner: Runner, hyper: Hyper | None = None) -> tuple[Runner, dict]:
        """One PPO iteration: collect a rollout, compute advantages, run the update."""
        config = self.config
        hyper = Hyper.from_config(config) if hyper is None else hyper
        first_carry = runner.carry  # (recurrent) the update re-runs the cells from here
        runner, traj = self.collect(runner, hyper)
        # V(s_{t+1}) of the true next observation: bootstraps truncations and the batch's last step.
        values_next = next_values(self.network, runner.params, traj.next_obs, traj.carry)
        memory = None
        if first_carry is not None:
            memory = (first_carry, traj.start)
        batch = batch_from_rollout(
            self.learner or config,
            traj.obs,
            traj.action,
            traj.log_prob,
            traj.value,
            traj.reward,
            values_next,
            traj.terminated,
            traj.truncated,
            traj.mask,
            memory=memory,
            hyper=hyper,
        )
        key, k_update = jax.random.split(self.key_of(runner))
        params, opt_state, update_metrics = ppo_update(
            runner.params,
            runner.opt_state,
            batch,
            k_update,
            runner.update_index,
            apply_fn=self.network.apply,
            optimizer=self.optimizer,
            config=self.learner or config,
            hyper=hyper,
        )
        count = (traj.finished_length > 0).sum()  # the episodes that ended (whole games for Atari)
        episode_return = jnp.where(count > 0, traj.finished_return.sum() / jnp.maximum(count, 1), jnp.nan)
        metrics = {
            "episode_return": episode_return,
            "episode_length": jnp.where(count > 0, traj.finished_length.sum() / jnp.maximum(count, 1), jnp.nan),
            "episode_count": count.astype(jnp.float32),
            **update_metrics._asdict(),
            **stacking.agent_metrics(self.env, traj.finished_return, traj.finished_length),
            **update_means(self.env, traj.episode_values, traj.finished_length > 0, episode_return),
        }
        runner = runner.replace(
            params=params, opt_state=opt_state, key=jax.random.key_data(key), update_index=runner.update_index + 1
        )
        if runner.pool is not None:
            pool, pool_metrics = selfplay.after_update(config, runner.pool, params, runner.update_index)
            runner, metrics = runner.replace(pool=pool), {**metrics, **pool_metrics}
        return runner, metrics


def build(config: Config, pool_seed: int = 0) -> Fused:
    """The fused program of ``config``: its family's JAX env with autoreset (or a family's batch of envs, such
    as EnvPool's Atari games, seeded with ``pool_seed``), the network and the optimiser."""
    family = family_for(config.env, "fused")
    if family is not None and family.pool:
        pool = load_maker(family, "fused")(config.env, config.num_envs, config.max_episode_steps, pool_seed)
        return Fused(config, pool.spec, make_network(config, pool.spec), make_optimizer(config), None, None, None, pool)
    env, env_params, spec = make_jax_env(
        config.env, config.max_episode_steps, config.hide_obs, config.agent_id, config.critic
    )
    check_env_memory(config, spec)  # with this env's observations, before the runner is made
    env, network = with_action_repeat(env, config.action_repeat), make_network(config, spec)
    if config.opponent != "random":  # (a pgx game against the agent's own selves: ppox.drivers.selfplay)
        env = selfplay.make_game(env, network, config)
    step = stacking.stacked_step(env, env_params) or make_autoreset_step(env, env_params, with_episode_values=True)
    return Fused(
        config,
        spec,
        network,
        make_optimizer(config),
        env,
        env_params,
        batched_step(env, env_params, config.num_envs, step),  # (vmapped, or optimistic resets)
        learner=stacking.learner_config(config, env),
    )


def make_train(config: Config):
    """train(key, hyper=None) -> (final Runner, metrics with a leading [num_updates] axis); jit and vmap freely
    (over keys, and over a Hyper of arrays: every value of those runs in one compiled program). ``key``: a
    ``jax.random.PRNGKey`` (threefry2x32), or ``jax.random.key(seed, impl=config.prng_impl)``."""
    fused = build(config)

    def train(key, hyper: Hyper | None = None):
        runner = fused.init(key)
        return jax.lax.scan(lambda r, _: fused.update_step(r, hyper), runner, None, length=config.num_updates)

    return train


def make_chunk_runner(fused: Fused, chunk: int):
    """run(runner, n, hyper) -> (runner, metrics[chunk]): n <= chunk updates (n and hyper traced: one compilation)."""

    def run(runner, n, hyper: Hyper):
        buffer = {name: jnp.full((chunk,), jnp.nan, jnp.float32) for name in fused.metric_names}

        def body(i, carry):
            runner, buffer = carry
            runner, metrics = fused.update_step(runner, hyper)
            buffer = jax.tree_util.tree_map(lambda b, m: b.at[i].set(m), buffer, metrics)
            return runner, buffer

        return jax.lax.fori_loop(0, n, body, (runner, buffer))

    return run
