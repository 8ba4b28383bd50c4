"""Recurrent policies (--memory gru|lstm): the carry, its resets, whole-sequence minibatches, the re-run in
the update, the memory tasks, and short learning runs that memoryless PPO cannot pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
import ppox.acting.policy
from ppox.agent.agent import init_params, make_network
from ppox.config.config import Config
from ppox.core.normalize import RunningMeanStd
from ppox.drivers.collect import Collector, empty_rollout
from ppox.drivers.fused_program import build
from ppox.envs.gym_envs import make_vector_env, spec_from_spaces
from ppox.envs.registry import TASK_IDS
from ppox.agent.learner import Batch, shuffled_minibatches
from ppox.agent.networks import zero_carry
from tests.helpers import stop_after_checks

SMALL = dict(total_timesteps=2048, num_envs=4, num_steps=16, memory_size=16, progress=False, save=False)


@pytest.mark.parametrize("memory", ["gru", "lstm"])
@pytest.mark.parametrize("shared", [False, True], ids=["separate", "shared"])
def test_fused_rollout_and_update_rerun_agree_at_ratio_one(memory, shared):
    """Before any gradient step, re-running the cells over each whole sequence from the rollout's first carry
    gives the rollout's log-probabilities and values: every ratio is 1 (all minibatches, shuffled by env)."""
    config = Config(env="CartPoleNoVel-v1", memory=memory, shared_trunk=shared, **SMALL)
    fused = build(config)
    runner = fused.init(jax.random.PRNGKey(3))
    runner, _ = fused.collect(runner)  # some episodes end, so the carry starts mid-episode below
    first_carry = runner.carry
    runner, traj = fused.collect(runner)
    assert traj.start.any() and not traj.start.all()  # episode starts inside the rollout
    batch = Batch(traj.obs, traj.action, traj.log_prob, traj.value, traj.value, traj.value,
                  carry=first_carry, starts=traj.start)
    for mb in _minibatches(config, batch):
        _, dist, values = fused.network.apply(runner.params, mb.carry, mb.obs, mb.starts)
        np.testing.assert_allclose(np.exp(dist.log_prob(mb.actions) - mb.log_probs), 1.0, atol=1e-5)
        np.testing.assert_allclose(values, mb.values, atol=1e-5)


def _minibatches(config, batch):
    stacked = shuffled_minibatches(config, batch, jax.random.PRNGKey(0))
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], stacked) for i in range(config.num_minibatches)]


def test_minibatches_are_whole_env_sequences():
    """Each minibatch holds whole envs: every time step of each, in order, with that env's start carry."""
    config = Config(env="CartPoleNoVel-v1", memory="gru", **{**SMALL, "num_envs": 8, "num_steps": 5})
    T, N = config.num_steps, config.num_envs
    ids = jnp.broadcast_to(jnp.arange(N, dtype=jnp.float32), (T, N))
    times = jnp.broadcast_to(jnp.arange(T, dtype=jnp.float32)[:, None], (T, N))
    batch = Batch(obs=jnp.stack([ids, times], -1), actions=ids, log_probs=ids, values=ids, advantages=ids,
                  returns=ids, carry=(jnp.arange(N, dtype=jnp.float32)[:, None] * jnp.ones((1, 3)),),
                  starts=jnp.zeros((T, N), bool))
    seen = []
    for mb in _minibatches(config, batch):
        assert mb.obs.shape == (T, N // config.num_minibatches, 2)
        for column in range(mb.obs.shape[1]):
            env = mb.obs[0, column, 0]
            np.testing.assert_array_equal(mb.obs[:, column, 0], env)  # one env all the way down
            np.testing.assert_array_equal(mb.obs[:, column, 1], np.arange(T))  # in time order
            np.testing.assert_array_equal(mb.carry[0][column], env)  # with its own start carry
            np.testing.assert_array_equal(mb.actions[:, column], env)
            seen.append(int(env))
    assert sorted(seen) == list(range(N))


@pytest.mark.parametrize("memory", ["gru", "lstm"])
def test_carry_is_reset_where_an_episode_starts(memory):
    """A hand-built sequence: with starts[2] set, steps 2.. equal a fresh sequence begun at step 2 from a zero
    carry, whatever came before; without it, they depend on the earlier steps."""
    config = Config(env="CartPoleNoVel-v1", memory=memory, **SMALL)
    network = make_network(config, build(config).spec)
    params = init_params(network, jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 1, 2))
    nonzero = jax.tree_util.tree_map(lambda c: c + 0.5, zero_carry(network, 1))
    starts = jnp.zeros((6, 1), bool).at[2].set(True)
    _, dist, values = network.apply(params, nonzero, obs, starts)
    _, fresh_dist, fresh_values = network.apply(params, zero_carry(network, 1), obs[2:], jnp.zeros((4, 1), bool))
    np.testing.assert_allclose(values[2:], fresh_values, atol=1e-6)
    np.testing.assert_allclose(dist.logits[2:], fresh_dist.logits, atol=1e-6)
    _, _, no_reset = network.apply(params, nonzero, obs, jnp.zeros((6, 1), bool))
    assert np.abs(np.asarray(no_reset[2:] - fresh_values)).max() > 1e-4


def test_host_collector_carry_matches_the_rerun():
    """The host actor's step-by-step carry (episodes ending inside the rollout) equals the update's re-run."""
    config = Config(env="CartPole-v1", driver="host", memory="gru", hide_obs=(1, 3), **SMALL)
    venv = make_vector_env("CartPole-v1", config.num_envs, "sync", None, config.hide_obs)
    spec = spec_from_spaces(venv.single_observation_space, venv.single_action_space)
    network = make_network(config, spec)
    collector = Collector(config, spec, venv, network, np.random.default_rng(0), seed=0)
    params = init_params(network, jax.random.PRNGKey(0), jnp.asarray(collector.first_obs()[:1]))
    stats = RunningMeanStd.create(spec.obs_shape)
    for _ in range(3):  # CartPole's random-policy episodes are ~20 steps: some end within these rollouts
        rollout, returns, _, _ = collector.collect(params, stats)
    assert returns and rollout.starts.any()
    carries, _, _ = network.apply(params, rollout.carry, jnp.asarray(rollout.obs), jnp.asarray(rollout.starts))
    np.testing.assert_allclose(carries[0][-1], collector.actor.carry[0], atol=1e-5)
    venv.close()


def test_worker_rollouts_join_on_the_env_axis():
    from ppox.drivers.ray_rollouts import merge_rollouts

    config = Config(env="CartPole-v1", driver="host", memory="lstm", **SMALL)
    spec = spec_from_spaces(*(lambda v: (v.single_observation_space, v.single_action_space))(
        make_vector_env("CartPole-v1", 1, "sync")))
    parts = [empty_rollout(config, spec, n, recurrent=True)._replace(
        carry=((np.full((n, 3), i, np.float32), np.full((n, 3), -i, np.float32)),)) for i, n in ((1, 2), (2, 3))]
    merged = merge_rollouts(parts)
    assert merged.obs.shape[:2] == merged.starts.shape == (config.num_steps, 5) and merged.masks is None
    np.testing.assert_array_equal(merged.carry[0][0][:, 0], [1, 1, 2, 2, 2])
    np.testing.assert_array_equal(merged.carry[0][1][:, 0], [-1, -1, -2, -2, -2])


def test_num_minibatches_must_divide_num_envs_with_memory():
    with pytest.raises(ppox.ConfigError, match="--num-envs 6 must divide by --num-minibatches 4"):
        Config(memory="gru", num_envs=6, num_minibatches=4)
    Config(memory="none", num_envs=6, num_minibatches=4)  # memoryless: transitions, batch 768 divides by 4


def test_hide_obs_is_checked_against_the_env():
    with pytest.raises(ppox.ConfigError, match="has 4 entries"):
        ppox.train(Config(env="CartPole-v1", hide_obs=(7,), **SMALL))
    with pytest.raises(ppox.ConfigError, match="has 4 entries"):
        ppox.train(Config(env="CartPole-v1", driver="host", hide_obs=(7,), **SMALL))


def test_memory_tasks_are_registered_and_partially_observed():
    from ppox.envs.jax_envs import make_gymnax

    assert {"CartPoleNoVel-v1", "PendulumNoVel-v1", "RepeatPrevious-v0"} <= set(TASK_IDS)
    assert make_gymnax("CartPoleNoVel-v1")[2].obs_shape == (2,)
    assert make_gymnax("PendulumNoVel-v1")[2].obs_shape == (2,)
    env, params, spec = make_gymnax("RepeatPrevious-v0")
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    # the answer at step t >= k is the symbol shown k steps before; a perfect agent's return is 1
    total = 0.0
    for t in range(params.max_steps_in_episode):
        answer = state.history[env.k]
        obs, state, reward, done, _ = env.step_env(jax.random.PRNGKey(t), state, answer, params)
        total += float(reward)
    assert bool(done) and total == pytest.approx(1.0, abs=1e-5)


def test_recurrent_fused_run_resumes_bit_identical(tmp_path, monkeypatch):
    """The carry is part of the fused runner state: an interrupted recurrent run resumes bit for bit."""
    import ppox.run.loop as loop

    config = Config(env="CartPoleNoVel-v1", memory="gru", total_timesteps=16 * 64, num_envs=4, num_steps=16,
                    memory_size=16, checkpoint_every=128, keep_checkpoints=20, run_dir=str(tmp_path), progress=False,
                    tensorboard=False)
    whole = ppox.train(config.replace(run_name="whole"))
    monkeypatch.setattr(loop, "StopOnSignal", stop_after_checks(3))
    cut = ppox.train(config.replace(run_name="cut"))
    monkeypatch.undo()
    assert cut.interrupted
    resumed = ppox.resume(tmp_path / "cut")
    for a, b in zip(jax.tree_util.tree_leaves(resumed.params), jax.tree_util.tree_leaves(whole.params)):
        np.testing.assert_array_equal(a, b)


def test_loaded_recurrent_policy_acts_with_state_and_evaluates(tmp_path):
    """A saved LSTM policy: initial_state / act(obs, state); evaluation carries the state on the Gymnasium path
    (CartPole-v1 behind HideObservation, as trained) and on the gymnax path (the same network on CartPoleNoVel-v1)."""
    config = Config(env="CartPole-v1", hide_obs=(1, 3), memory="lstm", run_dir=str(tmp_path), **{**SMALL, "save": True})
    policy = ppox.load(ppox.train(config).run_path)
    assert policy.recurrent
    state = policy.initial_state(3)
    actions, state = policy.act(np.zeros((3, 2), np.float32), state)
    assert actions.shape == (3,) and state[0][0].shape == (3, 16)
    with pytest.raises(ValueError, match="initial_state"):
        policy.act(np.zeros(2, np.float32))
    assert len(ppox.evaluate(policy, episodes=2)) == 2  # Gymnasium CartPole-v1, velocities hidden
    on_gymnax = ppox.acting.policy.Policy(policy.config.replace(env="CartPoleNoVel-v1", hide_obs=()), policy.spec,
                                   policy.params, policy.obs_stats)
    assert len(ppox.evaluate(on_gymnax, episodes=2)) == 2
    memoryless = ppox.load(ppox.train(Config(env="CartPole-v1", run_dir=str(tmp_path), **{**SMALL, "save": True})).run_path)
    actions, same = memoryless.act(np.zeros(4, np.float32), memoryless.initial_state(1))
    assert same is None and np.ndim(actions) == 0


@pytest.mark.long
@pytest.mark.learning
def test_recurrent_ppo_solves_velocity_hidden_cartpole_where_memoryless_cannot():
    """CartPoleNoVel-v1 (position and angle only), fused driver, 150k steps: GRU PPO passes 300, memoryless
    PPO stays under 100 (it cannot tell which way the pole moves)."""
    config = Config.preset("CartPoleNoVel-v1", total_timesteps=150_000, progress=False, save=False)
    recurrent = ppox.train(config).final_return()[0]
    memoryless = ppox.train(config.replace(memory="none")).final_return()[0]
    assert recurrent > 300, recurrent
    assert memoryless < 100, memoryless


@pytest.mark.long
@pytest.mark.learning
def test_recurrent_ppo_learns_repeat_previous():
    """RepeatPrevious-v0 (name the symbol shown 3 steps ago): memoryless PPO is stuck at chance (0.25)."""
    config = Config.preset("RepeatPrevious-v0", total_timesteps=100_000, progress=False, save=False)
    assert ppox.train(config).final_return()[0] > 0.6
    assert ppox.train(config.replace(memory="none")).final_return()[0] < 0.35


@pytest.mark.long
@pytest.mark.learning
def test_host_recurrent_ppo_learns_with_hidden_velocities():
    """The same task on the host driver through the Gymnasium HideObservation wrapper, 100k steps."""
    config = Config.preset("CartPoleNoVel-v1").replace(env="CartPole-v1", driver="host", hide_obs=(1, 3),
                                                       total_timesteps=100_000, progress=False, save=False)
    assert ppox.train(config).final_return()[0] > 150


def test_popgym_envs_train_on_the_host_driver():
    """popgym's ids register when first named (the popgym extra); Discrete observations are one-hot encoded."""
    pytest.importorskip("popgym")
    result = ppox.train(Config(env="popgym-RepeatPreviousEasy-v0", memory="gru", **SMALL))
    assert result.config.env == "popgym-RepeatPreviousEasy-v0" and np.isfinite(result.metrics["value_loss"]).all()
