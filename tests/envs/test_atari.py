"""Atari (ale-py): the standard preprocessing on every backend (EnvPool's where it is installed), life-loss episodes with whole-game returns,
uint8 rollouts, a tiny training run and its evaluation video."""

from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import ppox
from ppox.cli import main
from ppox.config.config import ConfigError
from ppox.envs.atari import AtariGames, EnvPoolGames, make_atari_env, make_atari_envs

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


class NextStepPool:
    """EnvPool's manner with two envs: a game ends at its 3rd step (env 0) or 5th (env 1) and returns its last
    observation; the step after that, it would return the next game's first (NEXT_STEP); reset(env_id) resets
    only those. An observation's [0, 0, 0] is the game's number, [1, 0, 0] its step."""

    action_space = spaces.Discrete(4)
    ends = np.array([3, 5])

    def __init__(self, seed):
        self.seed, self.closed = seed, False

    def _obs(self, ids):
        obs = np.zeros((len(ids), 4, 84, 84), np.uint8)
        obs[:, 0, 0, 0], obs[:, 1, 0, 0] = self.game[ids], self.t[ids]
        return obs

    def reset(self, env_id=None):
        ids = np.arange(2) if env_id is None else np.asarray(env_id)
        if env_id is None:
            self.game, self.t = np.zeros(2, np.int64), np.zeros(2, np.int64)
        else:
            self.game[ids] += 1
            self.t[ids] = 0
        return self._obs(ids), {"env_id": ids, "lives": np.full(len(ids), 3)}

    def step(self, actions):
        self.t += 1
        done = self.t == self.ends
        return self._obs(np.arange(2)), np.ones(2), done, np.zeros(2, bool), {"lives": np.full(2, 3)}

    def close(self):
        self.closed = True


def test_envpool_games_turn_next_step_into_same_step():
    games = EnvPoolGames(NextStepPool, 2)
    obs, _ = games.reset(seed=7)
    assert games.pool.seed == 7 and obs[:, 0, 0, 0].tolist() == [0, 0]
    for step in range(1, 7):
        obs, reward, terminated, truncated, info = games.step(np.zeros(2, np.int64))
        ended = (step % 3 == 0, step == 5)
        assert terminated.tolist() == list(ended)
        for env in range(2):
            if ended[env]:  # the next game's first observation now, the last one kept
                assert info["_final_obs"][env] and info["final_obs"][env, 1, 0, 0] == NextStepPool.ends[env]
                assert obs[env, 1, 0, 0] == 0 and obs[env, 0, 0, 0] == info["final_obs"][env, 0, 0, 0] + 1
            else:
                assert obs[env, 1, 0, 0] > 0 and ("_final_obs" not in info or not info["_final_obs"][env])
    assert obs[:, 0, 0, 0].tolist() == [2, 1]


@pytest.mark.parametrize("vec", ["ale", "sync", pytest.param("envpool", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("envpool") is None, reason='pip install "ppox[envpool]"'))])
def test_every_backend_gives_the_standard_observations(vec):
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


@pytest.mark.long
def test_tiny_atari_run_keeps_uint8_and_records_a_video(tmp_path):
    config = ppox.Config.preset("ALE/Breakout-v5", total_timesteps=128, num_envs=2, num_steps=64,
                                run_dir=str(tmp_path), run_name="b", progress=False, checkpoint_every=0)
    result = ppox.train(config)
    assert result.spec.obs_shape == (84, 84, 4)
    assert main(["eval", str(tmp_path / "b"), "--episodes", "1", "--video", "--max-episode-steps", "60"]) == 0
    videos = list(Path(tmp_path / "b" / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
