"""Host-driver rollouts on Ray: local cluster of 2 CPUs, a worker killed mid-run."""

import functools

import numpy as np
import pytest

import ppox

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from ray import cloudpickle

    from tests import toy_envs

    cloudpickle.register_pickle_by_value(toy_envs)  # the workers need not import the tests package
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.long
def test_two_workers_learn_cartpole(local_ray):
    result = ppox.train(ppox.Config(env="CartPole-v1", ray="local", workers=2, total_timesteps=60_000,
                                    save=False, progress=False))
    assert result.final_return()[0] >= 100, result.final_return()
    assert result.metrics["worker_restarts"][0, -1] == 0


@pytest.mark.long
def test_recurrent_policy_trains_on_ray_workers(local_ray):
    """Each worker keeps its envs' carries; their start carries and episode starts join the learner's batch."""
    config = ppox.Config(env="CartPole-v1", hide_obs=(1, 3), memory="gru", memory_size=8, num_envs=4, num_steps=32,
                         num_minibatches=2, total_timesteps=1024, save=False, progress=False, ray="local", workers=2)
    result = ppox.train(config)
    assert np.isfinite(result.metrics["value_loss"]).all() and result.metrics["episode_count"].sum() > 0


@pytest.mark.long
def test_a_killed_worker_is_replaced_and_training_goes_on(local_ray, tmp_path):
    from tests import toy_envs

    factory = functools.partial(toy_envs.CrashOnce, str(tmp_path / "crashed"), 300)
    config = ppox.Config(env="CartPole-v1", ray="local", workers=2, num_envs=2, num_steps=64,
                         total_timesteps=64 * 2 * 12, save=False, progress=False)
    result = ppox.train(config, env=factory)
    assert (tmp_path / "crashed").exists()  # a worker really died
    restarts = result.metrics["worker_restarts"][0]
    assert restarts[-1] == 1 and restarts[0] == 0  # counted once, after the crash
    assert np.isfinite(result.metrics["policy_loss"]).all() and result.metrics["policy_loss"].shape == (1, 12)


def test_ray_config_errors():
    with pytest.raises(ppox.ConfigError, match="must divide by --workers 3"):
        ppox.Config(ray="local", workers=3)
    with pytest.raises(ppox.ConfigError, match="drop --driver fused"):
        ppox.Config(ray="local", driver="fused")
