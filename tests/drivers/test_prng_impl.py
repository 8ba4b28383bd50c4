"""--prng-impl: the fused program's random-number generator. The default is JAX's threefry2x32 (the keys
ppox always had); rbg and unsafe_rbg give a run reproducible per seed, resumable bit for bit, that learns."""

import jax
import numpy as np
import pytest

import ppox
from ppox.config.config import Config, static_config
from ppox.drivers.fused_program import make_train
from ppox.drivers.keys import seed_key, typed_key
from ppox.errors import ConfigError
from tests.helpers import stop_after_checks

SMALL = dict(total_timesteps=4096, save=False, progress=False)


def test_threefry_keys_are_the_prngkeys_of_before():
    np.testing.assert_array_equal(seed_key(7, "threefry2x32"), jax.random.PRNGKey(7))
    assert seed_key(7, "rbg").shape == (4,)


@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
def test_same_seed_same_run_bit_for_bit_and_another_stream(impl):
    a, b = ppox.train(Config(prng_impl=impl, **SMALL)), ppox.train(Config(prng_impl=impl, **SMALL))
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.metrics["policy_loss"], b.metrics["policy_loss"])
    threefry = ppox.train(Config(**SMALL))
    assert not np.array_equal(a.metrics["policy_loss"], threefry.metrics["policy_loss"])


def test_rbg_run_resumes_bit_identical(tmp_path, monkeypatch):
    import ppox.run.loop as loop

    config = Config(total_timesteps=16 * 64, num_envs=4, num_steps=16, checkpoint_every=128, keep_checkpoints=20,
                    run_dir=str(tmp_path), progress=False, tensorboard=False, prng_impl="rbg")
    whole = ppox.train(config.replace(run_name="whole"))
    monkeypatch.setattr(loop, "StopOnSignal", stop_after_checks(3))
    cut = ppox.train(config.replace(run_name="cut"))
    monkeypatch.undo()
    assert cut.interrupted
    resumed = ppox.resume(tmp_path / "cut")
    for a, b in zip(jax.tree_util.tree_leaves(resumed.params), jax.tree_util.tree_leaves(whole.params)):
        np.testing.assert_array_equal(a, b)


def test_make_train_takes_a_key_of_the_configs_generator():
    config = Config(prng_impl="rbg", **SMALL)
    runner, metrics = jax.jit(make_train(config))(jax.random.key(0, impl="rbg"))
    assert runner.key.shape == (4,) and metrics["policy_loss"].shape == (config.num_updates,)
    np.testing.assert_array_equal(jax.random.key_data(typed_key(seed_key(3, "rbg"), "rbg")), seed_key(3, "rbg"))
    with pytest.raises(ValueError, match=r"jax.random.key\(seed, impl='rbg'\)"):
        make_train(config)(jax.random.PRNGKey(0))


def test_the_generator_is_part_of_the_compile_key_and_checked():
    assert static_config(Config(prng_impl="rbg")) != static_config(Config())
    with pytest.raises(ConfigError, match="--prng-impl must be threefry2x32, rbg or unsafe_rbg"):
        Config(prng_impl="philox")
    with pytest.raises(ConfigError, match="host driver.*drop --prng-impl"):
        Config(env="CartPole-v1", driver="host", prng_impl="rbg")


@pytest.mark.long
@pytest.mark.learning
@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
def test_default_cartpole_solves_with_each_generator(impl):
    """`ppox train --prng-impl IMPL` defaults: the threshold of test_fused.py::test_default_cartpole_solves."""
    result = ppox.train(Config(save=False, progress=False, prng_impl=impl))
    assert result.final_return()[0] >= 475
