"""Atari 2600 games (ale-py, ``pip install "ppox[atari]"``) for the host driver, with the standard details.

Every backend gives the same observations: up to 30 no-op starts, frame skip 4 with the max over the last two
frames, 84x84 grayscale, FIRE on reset where the game has it, the last 4 frames stacked (uint8, channels
last: [84, 84, 4]). ``--vec ale`` steps ale-py's AtariVectorEnv (threaded C++, preprocessing built in);
``--vec envpool`` steps EnvPool's Atari (``pip install "ppox[envpool]"``, threaded C++ too; its NEXT_STEP
autoreset is turned into SAME_STEP by ``EnvPoolGames``); ``--vec sync|async`` steps Gymnasium's
AtariPreprocessing + FrameStackObservation per env. Sticky actions follow the id (v5: 0.25, NoFrameskip-v4: none).

``AtariGames`` sits on either and makes training's episodes: a lost life ends an episode (terminated, no
bootstrap) while the game goes on, and rewards are clipped to their sign. It also counts whole games
(every life, the raw score), which is what the run logs as episode_return.
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode

from ppox.envs.gym_envs import SyncEnvs
from ppox.envs.registry import import_plugins
from ppox.errors import ConfigError

STACK = 4  # frames stacked
FRAME_SKIP = 4


def ale_py_module():
    """ale_py, or a one-line ConfigError naming the extra."""
    try:
        import ale_py
    except ImportError:
        raise ConfigError('Atari games need ale-py: pip install "ppox[atari]"') from None
    return ale_py


def ale_kwargs(env_id: str) -> dict:
    """The registered id's game settings (game, sticky actions, action set, frame cap)."""
    ale_py_module()
    import_plugins(env_id)
    try:
        kwargs = gym.spec(env_id).kwargs
    except gym.error.Error as err:
        raise ConfigError(f"--env {env_id}: {err}") from None
    return {
        "game": kwargs["game"],
        "repeat_action_probability": kwargs.get("repeat_action_probability", 0.0),
        "full_action_space": kwargs.get("full_action_space", False),
        "max_num_frames_per_episode": kwargs.get("max_num_frames_per_episode", 108_000),
    }


class FireOnReset(gym.Wrapper):
    """Press FIRE after each reset in games that wait for it (Breakout, ...), as ALE's vector env does."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        if self.env.unwrapped.get_action_meanings()[1:2] == ["FIRE"]:
            obs, _, terminated, truncated, info = self.env.step(1)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class ChannelsLast(gym.ObservationWrapper):
    """[stack, H, W] frames as an [H, W, stack] image."""

    def __init__(self, env):
        super().__init__(env)
        shape = env.observation_space.shape
        self.observation_space = spaces.Box(0, 255, shape[1:] + shape[:1], np.uint8)

    def observation(self, observation):
        return np.moveaxis(np.asarray(observation), 0, -1)


def make_atari_env(env_id: str, video_folder=None, max_episode_steps=None):
    """One Gymnasium Atari env with the standard preprocessing and a whole game per episode (evaluation: the
    atari family's single maker). ``video_folder``: every episode recorded there as mp4, one frame per agent step."""
    ale_py_module()
    import_plugins(env_id)
    env = gym.make(env_id, frameskip=1, render_mode=None if video_folder is None else "rgb_array")
    try:
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=30, frame_skip=FRAME_SKIP, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True
        )
    except gym.error.DependencyNotInstalled:
        raise ConfigError('Atari preprocessing needs OpenCV: pip install "ppox[atari]"') from None
    if video_folder is not None:
        env = gym.wrappers.RecordVideo(
            env, str(video_folder), episode_trigger=lambda _: True, disable_logger=True, fps=60 // FRAME_SKIP
        )
    env = ChannelsLast(gym.wrappers.FrameStackObservation(FireOnReset(env), STACK))
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    return env


def make_atari_envs(env_id: str, num_envs: int, vec: str, max_episode_steps: int | None = None) -> AtariGames:
    """``num_envs`` games for training: AtariVectorEnv (``vec`` "ale") or Gymnasium's wrappers in SyncEnvs or
    AsyncVectorEnv, behind AtariGames (a lost life ends an episode, rewards clipped to their sign)."""
    kwargs = ale_kwargs(env_id)
    if vec == "ale":
        from ale_py.vector_env import AtariVectorEnv

        if max_episode_steps is not None:
            kwargs["max_num_frames_per_episode"] = max_episode_steps * FRAME_SKIP
        venv = AtariVectorEnv(
            num_envs=num_envs,
            autoreset_mode=AutoresetMode.SAME_STEP,
            img_height=84,
            img_width=84,
            stack_num=STACK,
            frameskip=FRAME_SKIP,
            noop_max=30,
            episodic_life=False,
            reward_clipping=False,
            use_fire_reset=True,
            **kwargs,
        )
        return AtariGames(venv, channels_first=True)
    if vec == "envpool":
        return AtariGames(
            EnvPoolGames(envpool_maker(env_id, num_envs, kwargs, max_episode_steps), num_envs), channels_first=True
        )
    factory = functools.partial(make_atari_env, env_id, max_episode_steps=max_episode_steps)
    if vec == "async":
        return AtariGames(AsyncVectorEnv([factory] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP, context="spawn"))
    return AtariGames(SyncEnvs([factory] * num_envs))


def envpool_maker(env_id: str, num_envs: int, ale: dict, max_episode_steps: int | None):
    """seed -> an EnvPool gymnasium pool of the game with the standard preprocessing, whole games, raw
    rewards (AtariGames makes the training episodes); a ConfigError if EnvPool is missing or refuses."""
    try:
        import envpool
    except ImportError:
        raise ConfigError('--vec envpool needs EnvPool: pip install "ppox[envpool]"') from None
    task = ale["game"].title().replace("_", "") + "-v5"  # space_invaders -> SpaceInvaders-v5
    frames = ale["max_num_frames_per_episode"] if max_episode_steps is None else max_episode_steps * FRAME_SKIP
    settings = dict(
        num_envs=num_envs,
        img_height=84,
        img_width=84,
        stack_num=STACK,
        frame_skip=FRAME_SKIP,
        noop_max=30,
        episodic_life=False,
        reward_clip=False,
        use_fire_reset=True,
        repeat_action_probability=ale["repeat_action_probability"],
        full_action_space=ale["full_action_space"],
        max_episode_steps=frames // FRAME_SKIP,
    )

    def make(seed: int):
        try:
            return envpool.make_gymnasium(task, seed=seed, **settings)
        except Exception as err:  # EnvPool raises several kinds for an unknown task or setting
            raise ConfigError(f"--vec envpool: EnvPool cannot make {task}: {err}") from None

    return make


class EnvPoolGames:
    """EnvPool's games with SAME_STEP autoreset: where a game ends, the step returns the next game's first
    observation and keeps the last one in ``info["final_obs"]``. EnvPool itself returns the last observation
    and resets on the following step (NEXT_STEP); here the ended games are reset at once (``reset(env_id=)``).
    ``make_pool(seed)`` makes the pool (``envpool_maker``; at once, so refused settings stop before any work);
    a reset with a seed makes a new one."""

    def __init__(self, make_pool, num_envs: int):
        self.make_pool, self.num_envs = make_pool, num_envs
        self.pool = make_pool(0)
        self.single_observation_space = spaces.Box(0, 255, (STACK, 84, 84), np.uint8)
        self.single_action_space = self.pool.action_space

    def reset(self, *, seed: int | None = None):
        if seed is not None:  # EnvPool seeds its games when it is made
            self.pool.close()
            self.pool = self.make_pool(seed)
        obs, info = self.pool.reset()
        return obs, {"lives": np.asarray(info["lives"])}

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.pool.step(np.asarray(actions, np.int32))
        ended = np.flatnonzero(np.logical_or(terminated, truncated))
        lives, out = np.asarray(info["lives"]).copy(), {}
        if len(ended):
            final = np.zeros_like(obs)
            final[ended] = obs[ended]
            obs = obs.copy()
            first, reset_info = self.pool.reset(env_id=ended)
            where = np.asarray(reset_info["env_id"])
            obs[where], lives[where] = first, reset_info["lives"]
            out = {"final_obs": final, "_final_obs": np.isin(np.arange(self.num_envs), ended)}
        return obs, reward, terminated, truncated, {**out, "lives": lives}

    def close(self) -> None:
        self.pool.close()


def make_host_games(env_id: str, num_envs: int, vec: str, max_episode_steps: int | None = None, hide_obs: tuple = ()):
    """The host driver's Atari games (the atari family's host maker): ``make_atari_envs``."""
    if hide_obs:
        raise ConfigError("--hide-obs hides entries of flat observations; Atari's are images")
    return make_atari_envs(env_id, num_envs, vec, max_episode_steps)


class AtariGames:
    """A vector of Atari games (SAME_STEP autoreset) as training sees them: an episode ends where a life is
    lost (terminated; the game goes on, its next observation follows), rewards are clipped to their sign.

    Each step's info holds ``final_obs`` / ``_final_obs`` (the episodes that ended) and ``game_over``,
    ``game_return``, ``game_length``: the whole games that ended, with their raw score and agent steps."""

    def __init__(self, venv, channels_first: bool = False):
        self.venv, self.channels_first = venv, channels_first
        self.num_envs = venv.num_envs
        shape = venv.single_observation_space.shape
        self.single_observation_space = (
            spaces.Box(0, 255, shape[1:] + shape[:1], np.uint8) if channels_first else venv.single_observation_space
        )
        self.single_action_space = venv.single_action_space
        self.mask_source = None  # (no action masks)

    def _image(self, obs):
        return np.moveaxis(obs, -3, -1) if self.channels_first else obs

    def _lives(self, info) -> np.ndarray:
        if "lives" in info:
            return np.asarray(info["lives"])
        return np.array([env_info.get("lives", 0) for env_info in self.venv.infos])  # SyncEnvs keeps each env's

    def reset(self, *, seed: int | None = None):
        obs, info = self.venv.reset(seed=seed)
        self.lives = self._lives(info)
        self.game_return = np.zeros(self.num_envs)
        self.game_length = np.zeros(self.num_envs, np.int64)
        return self._image(obs), {}

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.venv.step(np.asarray(actions, np.int64))
        obs, game_over = self._image(obs), np.logical_or(terminated, truncated)
        lives = self._lives(info)
        lost = (lives < self.lives) & ~game_over
        self.lives = lives
        self.game_return += reward
        self.game_length += 1
        final = obs.copy() if game_over.any() or lost.any() else obs
        for i in np.flatnonzero(game_over):
            final[i] = self._image(np.asarray(info["final_obs"][i]))
        out = {
            "final_obs": final,
            "_final_obs": game_over | lost,
            "game_over": game_over,
            "game_return": self.game_return.copy(),
            "game_length": self.game_length.copy(),
        }
        self.game_return[game_over], self.game_length[game_over] = 0.0, 0
        return obs, np.sign(reward).astype(np.float32), terminated | lost, truncated, out

    def close(self) -> None:
        self.venv.close()
