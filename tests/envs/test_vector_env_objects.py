"""A vector env the user made (Gymnasium's SyncVectorEnv or AsyncVectorEnv, ale-py's AtariVectorEnv, EnvPool's)
passed as ``ppox.train(config, env=venv)``: it trains on the host driver with its own num_envs and spaces, its
autoreset mode checked, and it stays open for the user (ppox never closes what it did not make)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

import ppox
from ppox.errors import ConfigError
from tests import toy_envs
from tests.helpers import stop_after_checks

QUICK = dict(num_steps=32, num_minibatches=2, update_epochs=1, progress=False, tensorboard=False)
SAME_STEP = dict(autoreset_mode=AutoresetMode.SAME_STEP)


def cartpoles(n: int, **kwargs) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n, **kwargs)


def test_a_sync_vector_env_trains_with_its_num_envs_and_stays_open(tmp_path):
    venv = cartpoles(2, **SAME_STEP)
    config = ppox.Config(env="my-carts", total_timesteps=192, eval_episodes=1, run_dir=str(tmp_path), run_name="v",
                         **QUICK)
    result = ppox.train(config, env=venv)  # num_envs left at its default (4): the env's 2 are taken
    assert result.config.num_envs == 2 and result.config.env == "my-carts"
    assert result.metrics["episode_return"].shape == (1, 3) and np.nansum(result.metrics["episode_count"]) > 0
    assert (result.run_path / "evaluations.csv").is_file()  # evaluated on a fresh env from the venv's env_fns
    assert not venv.closed
    venv.reset(seed=0)
    venv.step(np.zeros(2, np.int64))  # still the user's to step, and to close
    venv.close()


def test_a_next_step_vector_env_is_refused_saying_which_mode_to_pass():
    venv = cartpoles(2)  # Gymnasium's default: NEXT_STEP
    with pytest.raises(ConfigError, match=r"autoresets NEXT_STEP.*autoreset_mode=gymnasium\.vector\.AutoresetMode"
                                          r"\.SAME_STEP"):
        ppox.train(ppox.Config(total_timesteps=256, save=False, **QUICK), env=venv)
    venv.close()


def test_num_envs_that_the_config_chose_must_match_the_env():
    venv = cartpoles(8, **SAME_STEP)
    with pytest.raises(ConfigError, match=r"num_envs=2, but the vector env steps 8 envs.*pass num_envs=8"):
        ppox.train(ppox.Config(num_envs=2, total_timesteps=256, save=False, **QUICK), env=venv)
    venv.close()


def test_an_async_vector_env_trains():
    venv = AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2, context="spawn", **SAME_STEP)
    try:
        result = ppox.train(ppox.Config(total_timesteps=128, save=False, **QUICK), env=venv)
        assert result.config.num_envs == 2 and result.config.env == "AsyncVectorEnv"  # (its envs are elsewhere)
        assert np.isfinite(result.metrics["value_loss"]).all()
    finally:
        venv.close()


def test_masks_come_through_a_vector_env_and_are_recorded_with_the_policy():
    venv = SyncVectorEnv([toy_envs.masked_choice("info")] * 4, **SAME_STEP)
    result = ppox.train(ppox.Config(total_timesteps=512, save=False, **QUICK), env=venv)
    assert np.nansum(result.metrics["illegal_actions"]) == 0
    assert result.spec.action_mask == "info" and result.policy().masked
    venv.close()


def test_resume_continues_with_the_vector_env(tmp_path, monkeypatch):
    import ppox.run.loop as loop

    config = ppox.Config(total_timesteps=640, checkpoint_every=64, run_dir=str(tmp_path), run_name="r", **QUICK)
    monkeypatch.setattr(loop, "StopOnSignal", stop_after_checks(2))
    cut = ppox.train(config, env=cartpoles(4, **SAME_STEP))
    assert cut.interrupted and cut.config.num_envs == 4
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="this run steps 4 envs: resume it with a vector env of 4"):
        ppox.resume(cut.run_path, env=cartpoles(2, **SAME_STEP))
    done = ppox.resume(cut.run_path, env=cartpoles(4, **SAME_STEP))
    assert not done.interrupted and done.metrics["episode_return"].shape == (1, 5)


def test_an_env_pool_without_an_autoreset_mode_is_a_clear_error():
    class Pool:  # (EnvPool's gymnasium API: num_envs envs at once, resetting on the next step, no metadata mode)
        num_envs, metadata = 4, {}
        observation_space = gym.spaces.Box(-1, 1, (3,))
        action_space = gym.spaces.Discrete(2)

        def step(self, actions):
            raise AssertionError("never stepped")

    with pytest.raises(ConfigError, match=r"the Pool does not say how it autoresets"):
        ppox.train(ppox.Config(total_timesteps=256, save=False, **QUICK), env=Pool())


def test_an_envpool_env_when_installed():
    envpool = pytest.importorskip("envpool")
    venv = envpool.make_gymnasium("CartPole-v1", num_envs=2)
    with pytest.raises(ConfigError, match="autoreset"):  # EnvPool resets on the step after an episode's end
        ppox.train(ppox.Config(total_timesteps=256, save=False, **QUICK), env=venv)


def test_ale_py_atari_vector_env_trains_a_few_steps():
    vector_env = pytest.importorskip("ale_py.vector_env")
    venv = vector_env.AtariVectorEnv("pong", num_envs=2, img_height=21, img_width=21, num_threads=1, **SAME_STEP)
    try:
        with pytest.raises(ConfigError, match="cannot make one"):  # no env_fns: nothing to evaluate on
            ppox.train(ppox.Config(total_timesteps=128, eval_episodes=1, save=False, **QUICK), env=venv)
        result = ppox.train(ppox.Config(total_timesteps=128, save=False, **QUICK), env=venv)
        assert result.config.env == "AtariVectorEnv" and result.spec.obs_shape == (4, 21, 21)
        assert np.isfinite(result.metrics["value_loss"]).all()
    finally:
        venv.close()


def test_an_object_that_is_no_env_is_a_clear_error():
    with pytest.raises(ConfigError, match="got a 'object' object, not an env id, a gymnasium.Env, a Gymnasium vector"):
        ppox.train(ppox.Config(total_timesteps=256, save=False, **QUICK), env=object())
