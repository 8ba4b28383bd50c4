"""Evaluation episodes of a trained policy: returns per episode, optionally recorded as video."""

from __future__ import annotations

import colorsys
import ctypes.util
import functools
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ppox.acting.agent_episodes import evaluate_agents, film_stacked_agents, is_pettingzoo_env
from ppox.acting.policy import Policy
from ppox.acting.videos import write_clip
from ppox.config.trust import confirm_file_config
from ppox.envs.action_repeat import with_action_repeat
from ppox.envs.contract import check_reset, check_spaces, step_problem
from ppox.envs.families import family_for, make_eval_env
from ppox.envs.gym_envs import ObsEncoder, batch_of_one, spec_from_spaces
from ppox.envs.gym_make import env_label
from ppox.envs.gym_wrappers import HideObservation
from ppox.envs.jax_envs import make_autoreset_step, make_jax_env
from ppox.envs.masks import mask_source, read_mask
from ppox.envs.registry import check_env_id, is_entry_point, is_jax_env
from ppox.envs.spec import EnvSpec
from ppox.envs.user_jax import is_jax_object, register_object, resolve_entry_point
from ppox.errors import CheckpointError, ConfigError
from ppox.utils.naming import named

EVAL_STEP_CAP = 10_000  # steps per evaluation episode when neither the env nor the run sets a limit


def evaluate(
    policy: Policy,
    *,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int = 0,
    video_folder: str | Path | None = None,
    env=None,
    trust_env: bool = False,
    max_episode_steps: int | None = None,
) -> np.ndarray:
    """Run ``episodes`` episodes with ``policy`` (the mode of its distribution unless ``deterministic`` is
    False); returns their raw returns.

    Environments a family makes one at a time (Gymnasium ids, entry points, Atari; or ``env`` = an id, entry
    point or factory) are stepped one episode at a time and can be recorded with Gymnasium's RecordVideo;
    JAX-only environments (the MinAtar games, ...) run all episodes at once in a jitted loop. An episode
    ends at the env's own time limit or after ``max_episode_steps`` (default: the run's
    --max-episode-steps, else EVAL_STEP_CAP), so that an env without a time limit cannot hang it. A policy
    loaded from a file whose env is an entry point ('module:Class') is evaluated on it only with ``env`` or
    ``trust_env=True``: importing it runs its code.
    """
    if not 1 <= episodes < 2**31:
        raise ConfigError(f"{named('--episodes', 'episodes')} must be a positive integer below 2^31, got {episodes}")
    if not 0 <= seed < 2**31:  # (JAX's keys take 64 bits; the config's seeds, and these, 31)
        raise ConfigError(f"{named('--seed', 'seed')} must be an integer in [0, 2^31), got {seed}")
    if isinstance(env, str) and env == policy.config.env:
        env, trust_env = None, True  # the policy's own env, confirmed
    if env is None and policy.source is not None:
        confirm_file_config(policy.config, policy.source, trust=trust_env, uses_ray=False, trust_argument="trust_env")
    if is_jax_object(env):  # (your own JAX env, kept under the name the run gave it)
        register_object(env, policy.config.env)
        env = None
    elif env is None and is_entry_point(policy.config.env):
        resolve_entry_point(policy.config.env)  # (confirmed: it may make a JAX env)
    if env is None:
        _check_rebuildable(policy.config.env)
    cap = max_episode_steps or policy.config.max_episode_steps or EVAL_STEP_CAP
    name = policy.config.env
    if is_pettingzoo_env(name) and env is None:  # (whole games, the policy acting for every agent: team returns)
        return evaluate_agents(policy, episodes, deterministic, seed, video_folder, cap).team
    if env is None and (family_for(name, "single") is None or (is_entry_point(name) and is_jax_env(name))):  # JAX only
        if video_folder is not None and name.startswith("brax/"):
            raise ConfigError(
                f"{named('--video', 'video_folder')}: ppox does not film Brax worlds (Brax's renderer needs "
                f"pytinyrenderer, which ppox does not install); evaluate {name} without --video"
            )
        if video_folder is not None and len(policy.spec.obs_shape) != 3 and not policy.spec.agents:
            raise ConfigError(
                f"{named('--video', 'video_folder')} needs a Gymnasium environment or image observations (HxWxC, "
                f"drawn from the grid: MinAtar); {name} is JAX-native only and its observations are flat"
            )
        returns, frames = _evaluate_gymnax(policy, episodes, deterministic, seed, video_folder, max_episode_steps)
        if video_folder is not None and frames is not None:  # (multi-agent videos are written as they are played)
            write_grid_videos(frames, Path(video_folder), name.replace("/", "_"))
        return returns
    return _evaluate_gymnasium(
        policy, env if env is not None else name, episodes, deterministic, seed, video_folder, cap
    )


def check_fits(policy: Policy, spec: EnvSpec, env) -> None:
    """Refuse an env whose observations or actions are not the ones the policy's arrays were trained on: a
    CheckpointError where the policy's own file names the env (its config does not fit its arrays), else a
    ConfigError; both name the two."""
    ours = policy.spec
    if (spec.obs_shape, spec.action_kind, spec.action_dims) == (ours.obs_shape, ours.action_kind, ours.action_dims):
        return
    name = env if isinstance(env, str) else env_label(env)
    mismatch = f"the policy's arrays are for {_described(ours)}, while env {name} has {_described(spec)}"
    if policy.source is not None and name == policy.config.env:
        raise CheckpointError(f"{policy.source}: its config names env {name}, but {mismatch}: a damaged or edited file")
    raise ConfigError(f"{mismatch}: evaluate the policy on the env it was trained on")


def _described(spec: EnvSpec) -> str:
    dims = list(spec.action_dims)
    actions = {"discrete": f"{dims[0]} discrete actions", "continuous": f"continuous actions of size {dims[0]}"}
    return f"observations shaped {list(spec.obs_shape)} and {actions.get(spec.action_kind, f'actions of sizes {dims}')}"


def _check_rebuildable(name: str) -> None:
    """ConfigError unless ``name`` makes an env (a registered id or an entry point)."""
    try:
        check_env_id(name)
    except ConfigError:
        raise ConfigError(
            f"this run's env {name!r} is not a registered id or an entry point, so it cannot be rebuilt "
            "from its name (it was given as an object from Python): evaluate it from Python with "
            "ppox.evaluate(policy, env=...), or name its class: --env package.module:Class"
        ) from None


def headless_rendering() -> None:
    """Without a display, have MuJoCo render off-screen: MUJOCO_GL=egl (or osmesa) where the library is
    installed, else a one-line error saying what to install. A MUJOCO_GL the user set is kept."""
    if os.environ.get("MUJOCO_GL") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = os.environ["PYOPENGL_PLATFORM"] = backend
            return
    raise ConfigError(
        "--video without a display needs off-screen OpenGL: install libegl1 (or libosmesa6) and set "
        "MUJOCO_GL=egl (or osmesa)"
    )


def _video_env(env, video_folder: Path):
    """One env recording every episode into ``video_folder``; the folder is removed again if that fails."""
    try:
        import moviepy  # noqa: F401  (RecordVideo writes mp4 files through it)
    except ImportError:
        raise ConfigError('--video needs moviepy: pip install "ppox[video]"') from None
    headless_rendering()
    try:
        return make_eval_env(env, video_folder)  # (Atari: the game's own frames, one per agent step)
    except BaseException:
        if Path(video_folder).is_dir() and not any(Path(video_folder).iterdir()):
            Path(video_folder).rmdir()
        raise


def _evaluate_gymnasium(policy: Policy, env, episodes, deterministic, seed, video_folder, cap: int) -> np.ndarray:
    if video_folder is not None:
        single = _video_env(env, video_folder)
    else:  # (an Atari game preprocessed as in training, played whole: every life, raw score)
        single = make_eval_env(env)
    if policy.config.hide_obs:  # as in training
        single = HideObservation(single, policy.config.hide_obs)
    check_spaces(single)
    check_fits(policy, spec_from_spaces(single.observation_space, single.action_space), env)
    # a policy saved before its observation space was recorded gets observations encoded here
    encoder = ObsEncoder(single.observation_space) if policy.spec.obs_space is None else None
    key = jax.random.PRNGKey(seed)
    returns, capped, source = [], 0, None
    size = sum(policy.spec.action_dims)
    uses_masks = policy.config.action_mask == "auto" and policy.spec.action_kind != "continuous"
    try:
        for episode in range(episodes):
            obs, info = check_reset(single, single.reset(seed=seed + episode))
            if episode == 0 and uses_masks:  # where the env offers masks, if it does
                source = mask_source(single, obs, info)
                if source is None and policy.masked:
                    raise ConfigError(
                        f"this policy was trained with action masks, and env {env_label(single)} offers none "
                        "(action_masks(), info['action_mask'] or an 'action_mask' observation entry): evaluate it "
                        "on an env that offers them"
                    )
            total, done, steps, state = 0.0, False, 0, policy.initial_state(1)
            while not done:
                if steps == cap:
                    capped += 1
                    break
                steps += 1
                key, act_key = jax.random.split(key)
                raw = obs if encoder is None else encoder(batch_of_one(single.observation_space, obs))[0]
                mask = read_mask(single, source, obs, info, size) if source else None
                action, state = policy.act(raw, state, deterministic=deterministic, key=act_key, mask=mask)
                result = single.step(action)
                if problem := step_problem(single, result):  # (each step in full: the policy costs far more)
                    raise problem
                obs, reward, terminated, truncated, info = result
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        single.close()
        if video_folder is not None and Path(video_folder).is_dir() and not any(Path(video_folder).iterdir()):
            Path(video_folder).rmdir()  # nothing was recorded: no empty folder left behind
    if capped:
        print(
            f"ppox: {capped} of {episodes} episodes were cut at the step cap of {cap:,} (--max-episode-steps)",
            file=sys.stderr,
        )
    return np.asarray(returns)


def _evaluate_gymnax(policy: Policy, episodes, deterministic, seed, video_folder=None, max_steps=None):
    """(returns, None) or, with ``video_folder``, (returns, (observations [T, episodes, ...], alive [T, episodes]));
    episodes cut (truncated) after ``max_steps`` where given, else at the run's --max-episode-steps or the env's limit.
    Multi-agent envs (JaxMARL) with ``video_folder``: played one step at a time, each episode filmed there."""
    c, record = policy.config, video_folder is not None
    env, params, spec = make_jax_env(c.env, max_steps or c.max_episode_steps, c.hide_obs, c.agent_id, c.critic)
    check_fits(policy, spec, policy.config.env)
    if hasattr(env, "stacked_agents") and record:
        return film_stacked_agents(policy, env, params, episodes, deterministic, seed, Path(video_folder)), None
    if hasattr(env, "stacked_agents"):
        return _evaluate_agents(policy, env, params, episodes, deterministic, seed), None
    env = with_action_repeat(env, policy.config.action_repeat)
    step = jax.vmap(make_autoreset_step(env, params))
    horizon = int(getattr(params, "max_steps_in_episode", 10_000))
    masked = policy.config.action_mask == "auto" and hasattr(env, "action_mask")

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), params)

        def body(carry, step_key):
            obs, state, total, alive, memory = carry
            act_key, env_key = jax.random.split(step_key)
            mask = jax.vmap(env.action_mask)(state) if masked else None  # legal moves of a game (pgx)
            if policy.recurrent:  # (each episode runs once: its memory is never reset)
                action, memory = policy.act_jax(obs, act_key, deterministic, memory, mask)
            else:
                action = policy.act_jax(obs, act_key, deterministic, mask=mask)
            obs, state, reward, terminated, truncated, _ = step(jax.random.split(env_key, (episodes, 2)), state, action)
            seen = (carry[0], alive) if record else None  # (each step's observation, while its episode lasts)
            total = total + jnp.where(alive, reward, 0.0)
            alive = alive & ~(terminated | truncated)
            return (obs, state, total, alive, memory), seen

        init = (obs, state, jnp.zeros(episodes), jnp.ones(episodes, bool), policy.initial_state(episodes))
        (_, _, total, _, _), seen = jax.lax.scan(body, init, jax.random.split(key, horizon))
        return total, seen

    total, seen = jax.device_get(run(jax.random.PRNGKey(seed)))
    return np.asarray(total), seen


def _evaluate_agents(policy: Policy, env, params, episodes: int, deterministic: bool, seed: int) -> np.ndarray:
    """Team returns (every agent's reward summed) of ``episodes`` whole episodes of a multi-agent env
    (ppox.envs.jaxmarl), all at once: every agent a row of the policy, as in training."""
    agents, horizon = env.stacked_agents, int(params.max_steps_in_episode)
    step = jax.vmap(functools.partial(env.autoreset_step, params=params))
    masked = policy.config.action_mask == "auto" and hasattr(env, "action_mask")

    def body(carry):
        obs, state, total, alive, memory, key, t = carry
        key, act_key, env_key = jax.random.split(key, 3)
        rows = obs.reshape((-1,) + obs.shape[2:])
        mask = jax.vmap(env.action_mask)(state).reshape(rows.shape[0], -1) if masked else None
        if policy.recurrent:
            action, memory = policy.act_jax(rows, act_key, deterministic, memory, mask)
        else:
            action = policy.act_jax(rows, act_key, deterministic, mask=mask)
        out = step(jax.random.split(env_key, (episodes, 2)), state, action.reshape(episodes, agents))
        total = total + jnp.where(alive, out[2].sum(-1), 0.0)
        return out[0], out[1], total, alive & ~out[6][:, 0], memory, key, t + 1

    @jax.jit
    def run(key):
        key, reset_key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), params)
        memory = policy.initial_state(episodes * agents)
        init = (obs, state, jnp.zeros(episodes), jnp.ones(episodes, bool), memory, key, jnp.zeros((), jnp.int32))
        # (until every episode ended: every agent done, the env's own limit, or the run's cap)
        final = jax.lax.while_loop(lambda c: c[3].any() & (c[6] < horizon), body, init)
        return final[2], final[3]

    total, alive = jax.device_get(run(jax.random.PRNGKey(seed)))
    if alive.any():
        print(f"ppox: {int(alive.sum())} of {episodes} episodes were cut at {horizon:,} steps", file=sys.stderr)
    return np.asarray(total)


def grid_frame(obs: np.ndarray, scale: int = 16) -> np.ndarray:
    """An RGB picture [H*scale, W*scale, 3] of a grid observation [H, W, C]: each channel (object kind) in its
    own colour, the last channel present on top, black where none is."""
    channels = obs.shape[-1]
    palette = np.array([colorsys.hsv_to_rgb(i / channels, 0.8, 1.0) for i in range(channels)]) * 255
    present = np.asarray(obs > 0.5)
    top = channels - 1 - np.argmax(present[..., ::-1], axis=-1)
    picture = np.where(np.expand_dims(present.any(-1), -1), palette[top], 0.0).astype(np.uint8)
    return picture.repeat(scale, axis=0).repeat(scale, axis=1)


def write_grid_videos(seen, folder: Path, name: str, fps: int = 10) -> None:
    """One mp4 per episode in ``folder``, drawn from its grid observations (``_evaluate_gymnax``'s record)."""
    observations, alive = seen
    for episode in range(alive.shape[1]):
        frames = [grid_frame(obs) for obs in observations[alive[:, episode], episode]]
        write_clip(frames, folder / f"{name}-episode-{episode}.mp4", fps)
