"""Evaluation episodes of a trained policy: returns per episode, optionally recorded as video."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from ppox.envs.contract import check_reset, check_spaces, step_error
from ppox.envs.gym_envs import ObsEncoder, batch_of_one, env_factory
from ppox.envs.jax_envs import make_autoreset_step, make_gymnax
from ppox.envs.registry import gymnasium_ids, is_entry_point, is_jax_env
from ppox.errors import ConfigError
from ppox.policy import Policy
from ppox.trust import confirm_file_config


def evaluate(policy: Policy, *, episodes: int = 10, deterministic: bool = False, seed: int = 0,
             video_folder: str | Path | None = None, env=None, trust_env: bool = False) -> np.ndarray:
    """Run ``episodes`` full episodes with ``policy``; returns their (raw) returns.

    Gymnasium environments (ids, entry points, or ``env`` = a factory) are stepped one episode
    at a time and can be recorded with Gymnasium's RecordVideo; gymnax-only environments (the
    MinAtar games, ...) run all episodes at once in a jitted loop. A policy loaded from a file whose env
    is an entry point ('module:Class') is evaluated on it only with ``env`` (the same string, or an env
    factory) or ``trust_env=True``: importing it runs its code.
    """
    if episodes < 1:
        raise ConfigError(f"--episodes must be a positive integer, got {episodes}")
    if policy.source is not None:
        confirm_file_config(policy.config, policy.source, env, trust=trust_env, uses_ray=False)
    if isinstance(env, str):
        env = None  # confirmed: the policy's own env
    name = policy.config.env
    if env is None and is_jax_env(name) and not (name in gymnasium_ids() or is_entry_point(name)):
        if video_folder is not None:
            raise ConfigError(f"--video needs a Gymnasium environment; {name} exists only in gymnax")
        return _evaluate_gymnax(policy, episodes, deterministic, seed)
    return _evaluate_gymnasium(policy, env if env is not None else name, episodes, deterministic, seed, video_folder)


def _evaluate_gymnasium(policy: Policy, env, episodes, deterministic, seed, video_folder) -> np.ndarray:
    if video_folder is not None:
        try:
            import moviepy  # noqa: F401  (RecordVideo writes mp4 files through it)
        except ImportError:
            raise ConfigError('--video needs moviepy: pip install "ppox[video]"') from None
        single = gym.make(env, render_mode="rgb_array") if isinstance(env, str) else env_factory(env)()
        single = gym.wrappers.RecordVideo(single, str(video_folder), episode_trigger=lambda _: True,
                                          disable_logger=True)
    else:
        single = env_factory(env)()
    check_spaces(single)
    encoder = ObsEncoder(single.observation_space)
    key = jax.random.PRNGKey(seed)
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = check_reset(single, single.reset(seed=seed + episode))
            total, done = 0.0, False
            while not done:
                key, act_key = jax.random.split(key)
                action = policy.act(encoder(batch_of_one(single.observation_space, obs)), deterministic=deterministic,
                                    key=act_key)[0]
                result = single.step(action)
                try:
                    obs, reward, terminated, truncated, _ = result
                except (TypeError, ValueError):
                    raise step_error(single, result) from None
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        single.close()
    return np.asarray(returns)


def _evaluate_gymnax(policy: Policy, episodes, deterministic, seed) -> np.ndarray:
    env, params, _ = make_gymnax(policy.config.env)
    step = jax.vmap(make_autoreset_step(env, params))
    horizon = int(getattr(params, "max_steps_in_episode", 10_000))

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), params)

        def body(carry, step_key):
            obs, state, total, alive = carry
            act_key, env_key = jax.random.split(step_key)
            action = policy.act_jax(obs, act_key, deterministic)
            obs, state, reward, terminated, truncated, _ = step(jax.random.split(env_key, (episodes, 2)), state,
                                                                action)
            total = total + jnp.where(alive, reward, 0.0)
            alive = alive & ~(terminated | truncated)
            return (obs, state, total, alive), None

        init = (obs, state, jnp.zeros(episodes), jnp.ones(episodes, bool))
        (_, _, total, _), _ = jax.lax.scan(body, init, jax.random.split(key, horizon))
        return total

    return np.asarray(run(jax.random.PRNGKey(seed)))
