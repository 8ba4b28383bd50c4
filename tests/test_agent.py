"""The agent: the host's NumPy actor computes what the flax network computes; one action post-processing."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppox.agent import NumpyActor, act, apply_in_chunks, make_network, next_values, prepare_obs
from ppox.config import Config
from ppox.core.normalize import RunningMeanStd, update_stats
from ppox.envs.spec import EnvSpec, spec_from_action_space, to_env_action

SPECS = {
    "discrete": EnvSpec((5,), "discrete", (3,)),
    "continuous": EnvSpec((5,), "continuous", (2,), (-1.0, -1.0), (1.0, 1.0)),
    "multi_discrete": EnvSpec((5,), "multi_discrete", (2, 4)),
}


def _head_output(dist) -> np.ndarray:
    return np.asarray(dist.mean if hasattr(dist, "mean") else dist.logits)


@pytest.mark.parametrize("steps", [16, 7])
def test_the_cnn_in_chunks_computes_what_one_call_does(steps):
    """The update's value passes (and ``next_values``, both drivers') run a CNN on chunks of 64 frames
    (lax.map): the same outputs; 7 x 8 frames (no more than a chunk) take one call."""
    config = Config(network="cnn", hidden_sizes=(32,))
    network = make_network(config, EnvSpec((10, 10, 4), "discrete", (3,)))
    obs = jnp.asarray(np.random.default_rng(0).integers(0, 256, (steps, 8, 10, 10, 4), dtype=np.uint8))
    params = network.init(jax.random.PRNGKey(1), obs[0, :1])
    (dist, values), (chunked_dist, chunked_values) = network.apply(params, obs), apply_in_chunks(network, params, obs)
    assert chunked_values.shape == values.shape == (steps, 8)
    np.testing.assert_allclose(chunked_values, values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunked_dist.logits, dist.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(next_values(network, params, obs), values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(SPECS))
@pytest.mark.parametrize("norm_obs", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_numpy_actor_matches_the_flax_network(kind, norm_obs, activation):
    spec = SPECS[kind]
    config = Config(norm_obs=norm_obs, activation=activation, hidden_sizes=(16, 8))
    network = make_network(config, spec)
    obs = np.random.default_rng(0).normal(3.0, 2.0, (7, 5)).astype(np.float32)
    stats = update_stats(RunningMeanStd.create((5,)), obs * 1.5)
    params = network.init(jax.random.PRNGKey(1), prepare_obs(config, stats, obs[:1]))
    # a non-trivial policy head (its initial scale is 0.01)
    params = jax.tree_util.tree_map(lambda x: x * 30.0 if x.ndim == 2 and x.shape[0] == 8 else x, params)
    actor = NumpyActor(config, spec)
    actor.load(params, stats)
    dist, _ = network.apply(params, prepare_obs(config, stats, obs))
    np.testing.assert_allclose(actor.forward(obs), _head_output(dist), rtol=1e-5, atol=1e-5)
    sampled = actor.act(obs, np.random.default_rng(0))
    assert sampled.shape == act(network, config, params, stats, obs, jax.random.PRNGKey(0)).action.shape


def test_numpy_actor_samples_the_policy_distribution():
    """Gumbel-max sampling in NumPy has the network's softmax probabilities."""
    spec, config = SPECS["discrete"], Config(hidden_sizes=(8,))
    network = make_network(config, spec)
    obs = np.ones((1, 5), np.float32)
    params = network.init(jax.random.PRNGKey(0), obs)
    params = jax.tree_util.tree_map(lambda x: x * 100.0 if x.shape == (8, 3) else x, params)
    actor = NumpyActor(config, spec)
    actor.load(params, RunningMeanStd.create((5,)))
    rng = np.random.default_rng(0)
    draws = np.concatenate([actor.act(np.repeat(obs, 1000, 0), rng) for _ in range(20)])
    probs = np.asarray(jax.nn.softmax(network.apply(params, obs)[0].logits))[0]
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / draws.size, probs, atol=0.01)


def test_env_actions_are_clipped_shaped_and_offset():
    box = spec_from_action_space((3,), gym.spaces.Box(-2.0, 2.0, (1,), np.float32))
    np.testing.assert_array_equal(to_env_action(box, np.array([[3.0], [-0.5]], np.float32)), [[2.0], [-0.5]])
    scalar_box = spec_from_action_space((3,), gym.spaces.Box(-1.0, 1.0, (), np.float32))
    assert to_env_action(scalar_box, np.array([[0.5], [7.0]], np.float32)).tolist() == [0.5, 1.0]
    shifted = spec_from_action_space((3,), gym.spaces.Discrete(4, start=-1))
    assert to_env_action(shifted, np.array([0, 3])).tolist() == [-1, 2]
    grid = spec_from_action_space((3,), gym.spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 1], [1, 1]]))
    assert grid.action_dims == (2, 3, 4, 5)
    assert to_env_action(grid, np.array([[0, 1, 2, 3]])).tolist() == [[[1, 2], [3, 4]]]
    plain = spec_from_action_space((3,), gym.spaces.Discrete(2))
    actions = np.array([1, 0])
    assert to_env_action(plain, actions) is actions  # the host hot path: nothing to do, nothing done


@pytest.mark.parametrize("memory,shared", [("gru", False), ("lstm", True), ("lstm", False)])
def test_numpy_recurrent_actor_matches_the_flax_network(memory, shared):
    """The host's NumPy actor steps the same cells as the network: equal logits over a sequence with an episode
    start inside it."""
    from ppox.networks import zero_carry

    config = Config(env="CartPole-v1", memory=memory, shared_trunk=shared, memory_size=8, activation="relu")
    spec = EnvSpec(obs_shape=(4,), action_kind="discrete", action_dims=(2,))
    network = make_network(config, spec)
    params = network.init(jax.random.PRNGKey(0), zero_carry(network, 3), jnp.zeros((1, 3, 4)), jnp.ones((1, 3), bool))
    obs = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 3, 4)))
    starts = np.zeros((5, 3), bool)
    starts[0], starts[3, 1] = True, True
    _, dist, _ = network.apply(params, zero_carry(network, 3), jnp.asarray(obs), jnp.asarray(starts))
    actor = NumpyActor(config, spec, network)
    actor.restart(3)
    actor.load(params, RunningMeanStd.create((4,)))
    for t in range(5):
        actor.starts = starts[t]
        np.testing.assert_allclose(actor.forward(obs[t]), dist.logits[t], atol=1e-5)
