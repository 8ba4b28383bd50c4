"""Your own JAX env on the fused driver (docs/jax-envs.md): a gymnax-style class and the pure protocol learn,
an entry point ('module:make') trains several seeds in one run, and what is missing is said in one line."""

import numpy as np
import pytest

import ppox
from ppox.envs.families import USER_JAX_ENVS
from ppox.envs.registry import driver_for
from ppox.errors import ConfigError
from tests.envs.jax_env_examples import GymnaxSayWhatYouSee, NoStep, SayWhatYouSee

FAST = {"num_envs": 8, "num_steps": 64, "learning_rate": 5e-3, "save": False, "progress": False, "seed": 0}


@pytest.mark.long
@pytest.mark.learning
@pytest.mark.parametrize("env", [SayWhatYouSee(), GymnaxSayWhatYouSee()], ids=["pure", "gymnax"])
def test_a_jax_env_object_learns_on_the_fused_driver(env):
    """A random policy returns 5.0 (measured 4.8 at the first update); 8,192 steps reach 10.0 (seed 0, both
    forms). The pure form's observation is a dict, flattened."""
    result = ppox.train(env=env, total_timesteps=8192, **FAST)
    assert driver_for(result.config.env) == "fused"
    assert np.mean(result.metrics["episode_return"][0, -3:]) > 9.0, result.metrics["episode_return"][0, -3:]


def test_an_entry_point_maker_trains_two_seeds_and_evaluates():
    result = ppox.train(env="tests.envs.jax_env_examples:make", total_timesteps=2048, seeds=2, **FAST)
    assert driver_for(result.config.env) == "fused" and result.metrics["episode_return"].shape[0] == 2
    returns = ppox.evaluate(result.policy(), episodes=4)
    assert returns.shape == (4,) and np.isfinite(returns).all()


def test_an_env_missing_step_is_named_in_one_line():
    with pytest.raises(ConfigError, match=r"NoStep is not a JAX env: it has no step \(") as err:
        ppox.train(env=NoStep(), **FAST)
    assert "\n" not in str(err.value)


def test_a_step_of_the_wrong_form_is_said_before_training():
    class ThreeValues(SayWhatYouSee):
        def step(self, key, state, action):
            return super().step(key, state, action)[:3]

    with pytest.raises(ConfigError, match=r"ThreeValues.step returned 3 values; it returns \(obs, state, reward"):
        ppox.train(env=ThreeValues(), **FAST)


def test_a_gymnasium_entry_point_stays_on_the_host_driver():
    config = ppox.Config(env="tests.toy_envs:Countdown", save=False, progress=False)
    assert driver_for(config.env) == "host"
    with pytest.raises(ConfigError, match="--seeds 2: several seeds in one run need the fused driver"):
        ppox.train(config.replace(seeds=2))
    assert USER_JAX_ENVS["tests.toy_envs:Countdown"] is None


def test_a_run_of_an_env_object_resumes_and_evaluates_with_the_object(tmp_path):
    env = GymnaxSayWhatYouSee()
    config = {**FAST, "save": True, "run_dir": str(tmp_path), "run_name": "r"}
    first = ppox.train(env=env, total_timesteps=1024, **config)
    resumed = ppox.resume(first.run_path, env=env, total_timesteps=2048)
    np.testing.assert_array_equal(resumed.metrics["policy_loss"][:, :2], first.metrics["policy_loss"])
    assert resumed.metrics["policy_loss"].shape == (1, 4)
    assert ppox.evaluate(ppox.load(first.run_path), env=env, episodes=3).shape == (3,)


def test_an_entry_point_making_a_gymnasium_env_stays_on_the_host_driver():
    config = ppox.Config(env="tests.toy_envs:countdown", save=False, progress=False)
    assert driver_for(config.env) == "host"
    with pytest.raises(ConfigError, match="--seeds 2: several seeds in one run need the fused driver"):
        ppox.train(config.replace(seeds=2))
    assert USER_JAX_ENVS["tests.toy_envs:countdown"] is None  # (its factory called once, the env closed)
