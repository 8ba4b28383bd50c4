"""The host driver on Gymnasium envs: autoreset handling, spaces, entry points, learning."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.agent.agent import prepare_obs
from ppox.config.config import ConfigError
from ppox.drivers.collect import final_observations
from ppox.drivers.host import HostDriver, policy_outputs
from ppox.envs.gym_envs import ObsEncoder, make_vector_env, spec_from_spaces
from ppox.agent.networks import ActorCritic
from tests import toy_envs

FAST = dict(num_envs=2, num_steps=16, num_minibatches=2, update_epochs=2, save=False, progress=False)


def test_same_step_autoreset_gives_final_observation_and_no_reset_step():
    venv = make_vector_env(toy_envs.countdown, 2, "sync")
    encoder = ObsEncoder(venv.single_observation_space)
    obs = encoder(venv.reset(seed=0)[0])
    seen = []
    for _ in range(12):
        raw, reward, terminated, truncated, info = venv.step(np.array([0, 1]))  # env 0 terminates, env 1 truncates
        next_obs = encoder(raw)
        done = np.logical_or(terminated, truncated)
        final = final_observations(venv, encoder, next_obs, done, info) if done.any() else next_obs
        seen.append((obs[:, 0].copy(), reward.copy(), terminated.copy(), truncated.copy(), final[:, 0].copy()))
        obs = next_obs
    venv.close()
    for o, r, te, tr, final in seen:
        assert np.all(r == 1.0), "every transition is a real step: no reset step with reward 0"
        assert np.all(final == o + 1), "the next observation of every step is the one the step reached"
        assert not te[1] and not tr[0]
    assert [s[2][0] for s in seen[:6]] == [False, False, True, False, False, True]
    assert [s[3][1] for s in seen[:10]] == [False] * 4 + [True] + [False] * 4 + [True]


def test_host_training_records_raw_episode_statistics():
    result = ppox.train(ppox.Config(**FAST, total_timesteps=320, norm_reward=True), env=toy_envs.countdown)
    lengths = result.metrics["episode_length"][0]
    returns = result.metrics["episode_return"][0]
    finite = np.isfinite(lengths)
    assert finite.any()
    assert np.all((lengths[finite] >= 3) & (lengths[finite] <= 5))
    np.testing.assert_allclose(returns[finite], lengths[finite])  # raw reward 1 per step, though scaled for training


@pytest.mark.parametrize("factory, kind", [
    (toy_envs.DictObsMultiAction, "multi_discrete"),
    (toy_envs.ContinuousTarget, "continuous"),
    (toy_envs.MultiBinaryAction, "multi_discrete"),
])
def test_spaces_train_and_save(factory, kind, tmp_path):
    config = ppox.Config(**{**FAST, "save": True}, total_timesteps=64, run_dir=str(tmp_path), run_name="r",
                         norm_obs=True)
    result = ppox.train(config, env=factory)
    assert result.spec.action_kind == kind
    assert np.isfinite(result.metrics["policy_loss"]).all()
    policy = ppox.load(tmp_path / "r")
    assert policy.act(np.zeros((3,) + result.spec.obs_shape, np.float32)).shape[0] == 3


def test_dict_observation_is_flattened_with_one_hot():
    space = toy_envs.DictObsMultiAction.observation_space
    encoded = ObsEncoder(space)({"pos": np.array([[0.5, -0.5]], np.float32), "mode": np.array([2])})
    np.testing.assert_array_equal(encoded, [[0, 0, 1, 0.5, -0.5]])  # Dict keys in sorted order: mode, pos


def test_uint8_images_stay_uint8_and_the_network_scales_them():
    encoded = ObsEncoder(toy_envs.MultiBinaryAction.observation_space)(np.full((1, 4, 4, 1), 255, np.uint8))
    assert encoded.dtype == np.uint8 and encoded.max() == 255  # (a quarter of float32's bytes in the rollout)
    net = ActorCritic("discrete", (3,), obs_ndim=3, cnn=True)
    images = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 1), np.uint8)
    params = net.init(jax.random.PRNGKey(0), images)
    (dist_u8, v_u8), (dist_f, v_f) = net.apply(params, images), net.apply(params, images / np.float32(255))
    np.testing.assert_allclose(dist_u8.logits, dist_f.logits, rtol=1e-6)
    np.testing.assert_allclose(v_u8, v_f, rtol=1e-6)


def test_unsupported_space_is_a_clear_error():
    with pytest.raises(ConfigError, match="unsupported observation space Text"):
        spec_from_spaces(toy_envs.TextObs.observation_space, toy_envs.TextObs.action_space)


def test_entry_point_and_instance():
    result = ppox.train(ppox.Config(env="tests.toy_envs:countdown", **FAST, total_timesteps=64))
    assert result.spec.obs_shape == (1,)
    with pytest.raises(ConfigError, match="instance can only be used with --num-envs 1"):
        ppox.train(ppox.Config(**FAST, total_timesteps=64), env=toy_envs.countdown())
    single = ppox.train(ppox.Config(**{**FAST, "num_envs": 1}, total_timesteps=64), env=toy_envs.countdown())
    assert single.metrics["policy_loss"].shape == (1, 4)


def test_host_driver_rejects_several_seeds():
    with pytest.raises(ConfigError, match="several seeds in one run need the fused driver"):
        ppox.Config(env="Pendulum-v1", driver="host", seeds=2)


@pytest.mark.learning
def test_host_cartpole_learns():
    result = ppox.train(ppox.Config(driver="host", total_timesteps=150_000, save=False, progress=False))
    assert result.final_return()[0] >= 150, result.final_return()


def test_sync_envs_match_gymnasium_sync_vector_env():
    """SyncEnvs keeps the contract of gymnasium's SyncVectorEnv in SAME_STEP mode, step for step."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    ours = make_vector_env("CartPole-v1", 3, "sync")
    theirs = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 3, autoreset_mode=AutoresetMode.SAME_STEP)
    np.testing.assert_array_equal(ours.reset(seed=7)[0], theirs.reset(seed=7)[0])
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(200):
        action = rng.integers(0, 2, 3)
        a, b = ours.step(action), theirs.step(action)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        assert ("_final_obs" in a[4]) == ("_final_obs" in b[4])  # present only when an episode ended
        ended += int("_final_obs" in a[4])
        np.testing.assert_array_equal(a[4].get("_final_obs", np.zeros(3, bool)), b[4].get("_final_obs", np.zeros(3, bool)))
        for i in np.flatnonzero(a[4].get("_final_obs", np.zeros(3, bool))):
            np.testing.assert_array_equal(a[4]["final_obs"][i], b[4]["final_obs"][i])
    assert ended > 5  # random CartPole episodes last about 20 steps
    ours.close()
    theirs.close()


def test_async_vector_env_trains():
    result = ppox.train(ppox.Config(env="CartPole-v1", driver="host", vec="async", **FAST, total_timesteps=64))
    assert np.isfinite(result.metrics["policy_loss"]).all()


def test_image_observations_go_through_a_cnn():
    result = ppox.train(ppox.Config(**FAST, total_timesteps=64), env=toy_envs.MultiBinaryAction)
    assert "actor_cnn" in result.params["params"] and "critic_cnn" in result.params["params"]
    with pytest.raises(ConfigError, match="--network cnn needs image observations"):
        ppox.train(ppox.Config(**FAST, total_timesteps=64, network="cnn"), env=toy_envs.countdown)


def test_a_cnn_actor_keeps_its_log_probs_and_values_and_the_update_uses_them():
    """A CNN actor's forward pass already gives log pi(a|s) and V(s): the rollout keeps them, they equal a pass
    of the network over the batch with the learner's parameters, and the update on them computes what it
    computes when it runs that pass itself (float rounding apart)."""
    config = ppox.Config(**FAST, total_timesteps=64, driver="host")
    driver = HostDriver(config, toy_envs.MultiBinaryAction)
    state = driver.init()
    rollout, *_ = driver.source.collect(state.learner.params, state.learner.obs_stats)
    assert rollout.log_probs.shape == rollout.values.shape == (16, 2)
    bare = rollout._replace(log_probs=None, values=None)  # what an MLP (NumPy) actor's rollout holds
    obs_in = prepare_obs(config, state.learner.obs_stats, jnp.asarray(rollout.obs))
    log_probs, values, _ = policy_outputs(driver.network, state.learner.params, obs_in, bare)
    np.testing.assert_allclose(rollout.log_probs, log_probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rollout.values, values, rtol=1e-5, atol=1e-6)
    copy = lambda tree: jax.tree_util.tree_map(jnp.array, tree)  # noqa: E731  (learn donates its learner)
    learner_kept, kept = driver._learn(copy(state.learner), rollout, 0, driver.hyper)
    learner_bare, recomputed = driver._learn(copy(state.learner), bare, 0, driver.hyper)
    shifted = rollout._replace(log_probs=rollout.log_probs - 0.5)  # the update reads the kept ones: ratios e^0.5
    _, off = driver._learn(copy(state.learner), shifted, 0, driver.hyper)
    driver.close()
    assert abs(float(np.mean(off["approx_kl"])) - float(np.mean(kept["approx_kl"]))) > 0.05
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance"):
        np.testing.assert_allclose(np.asarray(kept[name]), np.asarray(recomputed[name]), rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    for a, b in zip(jax.tree_util.tree_leaves(learner_kept.params), jax.tree_util.tree_leaves(learner_bare.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_host_runs_one_update_at_a_time_until_its_pace_is_known(monkeypatch):
    """The host driver's first metrics rows (and progress) come after one update, not after a quarter of the
    largest chunk: on Atari a CPU update takes seconds, and the first 64-128 left the run silent for minutes."""
    sizes = []
    run = HostDriver.run

    def recording_run(self, state, n):
        sizes.append(n)
        return run(self, state, n)

    monkeypatch.setattr(HostDriver, "run", recording_run)
    config = ppox.Config(env="CartPole-v1", driver="host", total_timesteps=2 * 16 * 200, **FAST)
    ppox.train(config)
    assert config.num_updates == 200 and sum(sizes) == 200
    assert sizes[:2] == [1, 1]  # compiling, then measuring the pace
    assert max(sizes) > 1  # then chunks of about CHUNK_SECONDS (here the largest, CartPole updates are quick)


def test_chunk_planner_sizes():
    """Fused: a quarter of the largest chunk first (it compiles), the largest until paced, then about
    CHUNK_SECONDS; host: one update until paced. Every plan stops at checkpoints."""
    from ppox.run.loop import CHUNK_SECONDS, ChunkPlanner

    config = ppox.Config(env="CartPole-v1", total_timesteps=4 * 128 * 1000, num_envs=4, num_steps=128)
    fused, host = ChunkPlanner(config, 0), ChunkPlanner(config, 0, compiled_chunks=False)
    most = fused.most
    assert most == 64 and fused.size(0) == 16 and fused.size(16) == 64
    assert host.size(0) == 1 and host.size(1) == 1
    for planner in (fused, host):
        planner.measured(0, 1, 100.0)  # the first chunk's time (compilation) is not the pace
        assert planner.seconds_per_update is None
        planner.measured(1, 4, 4 * CHUNK_SECONDS / 8)
        assert planner.size(5) == 8
    saving = ChunkPlanner(config.replace(checkpoint_every=4 * 128 * 10), 0, compiled_chunks=False)
    saving.measured(1, 1, 1e-3)
    assert saving.size(7) == 3  # ends at the checkpoint after update 10
