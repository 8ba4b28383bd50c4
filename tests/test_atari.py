"""Atari (ale-py): the standard preprocessing on both backends, life-loss episodes with whole-game returns,
uint8 rollouts, a tiny training run and its evaluation video."""

from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import ppox
from ppox.cli import main
from ppox.config import ConfigError
from ppox.envs.atari import AtariGames, make_atari_env, make_atari_envs

pytest.importorskip("ale_py")


class FakeGames:
    """Two scripted 'games' (SAME_STEP autoreset): env 0 loses a life at step 2 and ends at step 4."""

    num_envs = 2
    single_observation_space = spaces.Box(0, 255, (4, 3, 3), np.uint8)
    single_action_space = spaces.Discrete(4)

    def reset(self, seed=None):
        self.t = 0
        return np.zeros((2, 4, 3, 3), np.uint8), {"lives": np.array([2, 3])}

    def step(self, actions):
        self.t += 1
        lives = np.array([2 if self.t < 2 else 1, 3])
        over = np.array([self.t == 4, False])
        if over[0]:
            lives[0] = 2  # the reset's
        obs = np.full((2, 4, 3, 3), self.t, np.uint8)
        info = {"lives": lives, "final_obs": np.full((2, 4, 3, 3), 100 + self.t, np.uint8)}
        return obs, np.array([5.0, -3.0]), over, np.zeros(2, bool), info

    def close(self):
        pass


def test_a_lost_life_ends_the_training_episode_and_the_game_is_counted_whole():
    games = AtariGames(FakeGames(), channels_first=True)
    assert games.single_observation_space.shape == (3, 3, 4)  # channels last
    obs, _ = games.reset(seed=0)
    assert obs.shape == (2, 3, 3, 4)
    steps = [games.step(np.zeros(2, np.int64)) for _ in range(4)]
    terminated = np.array([s[2] for s in steps])
    np.testing.assert_array_equal(terminated[:, 0], [False, True, False, True])  # the life at 2, the game at 4
    assert not terminated[:, 1].any()
    np.testing.assert_array_equal(steps[0][1], [1.0, -1.0])  # rewards clipped to their sign for training
    life_info, game_info = steps[1][4], steps[3][4]
    assert life_info["_final_obs"][0] and not life_info["game_over"][0]
    np.testing.assert_array_equal(life_info["final_obs"][0], steps[1][0][0])  # the game goes on from there
    assert game_info["game_over"][0] and game_info["game_return"][0] == 20.0 and game_info["game_length"][0] == 4
    assert game_info["final_obs"][0].max() == 104  # the true last frame, not the reset's


@pytest.mark.parametrize("vec", ["ale", "sync"])
def test_both_backends_give_the_standard_observations(vec):
    games = make_atari_envs("ALE/Breakout-v5", 2, vec)
    try:
        obs, _ = games.reset(seed=0)
        assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
        assert games.single_action_space.n == 4
        returns, rng = [], np.random.default_rng(0)
        for _ in range(2000):  # random play loses all 5 lives in a few hundred steps
            obs, reward, terminated, truncated, info = games.step(rng.integers(0, 4, 2))
            assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
            returns.extend(info["game_return"][info["game_over"]])
            if returns:
                break
        assert obs.shape == (2, 84, 84, 4) and returns and min(returns) >= 0
    finally:
        games.close()


def test_vec_ale_is_for_atari_only():
    with pytest.raises(ConfigError, match="--vec ale steps Atari games"):
        ppox.Config(env="CartPole-v1", vec="ale")


def test_evaluation_env_plays_whole_games():
    env = make_atari_env("ALE/Breakout-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
    lives, done, steps = [], False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        lives.append(info["lives"])
        done, steps = terminated or truncated, steps + 1
    assert lives[0] == 5 and lives[-1] == 0  # every life, one episode
    env.close()


def test_tiny_atari_run_keeps_uint8_and_records_a_video(tmp_path):
    config = ppox.Config.preset("ALE/Breakout-v5", total_timesteps=128, num_envs=2, num_steps=64,
                                run_dir=str(tmp_path), run_name="b", progress=False, checkpoint_every=0)
    result = ppox.train(config)
    assert result.spec.obs_shape == (84, 84, 4)
    assert main(["eval", str(tmp_path / "b"), "--episodes", "1", "--video", "--max-episode-steps", "60"]) == 0
    videos = list(Path(tmp_path / "b" / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
