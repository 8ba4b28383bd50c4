"""The agent: the host's NumPy actor computes what the flax network computes; one action post-processing."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppox.agent.agent import NumpyActor, act, apply_in_chunks, bootstrap_values, make_network, next_values, prepare_obs
from ppox.config.config import Config
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


@pytest.mark.parametrize("network_kind", ["cnn", "mlp"])
def test_bootstrap_values_reuse_the_next_steps_values_and_run_the_network_only_where_needed(network_kind):
    """V(s_{t+1}) from values[t+1] where the episode goes on, from the network on the final observation where it
    was truncated and at the rollout's last step: equal to ``next_values`` on every step that is bootstrapped
    (terminated steps never are). A CNN's chunks with no such frame are skipped (zeros come back for them)."""
    rng = np.random.default_rng(0)
    config = Config(network=network_kind, hidden_sizes=(32,))
    network = make_network(config, EnvSpec((10, 10, 4), "discrete", (3,)))
    T, N = 16, 8
    frames = rng.integers(0, 256, (T + 1, N, 10, 10, 4), dtype=np.uint8)
    obs, next_obs = frames[:-1], frames[1:].copy()
    terminated, truncated = np.zeros((T, N), bool), np.zeros((T, N), bool)
    terminated[3, 2] = truncated[9, 5] = truncated[10, 1] = True
    for t, n in ((3, 2), (9, 5), (10, 1)):  # an ended episode: its final frame, not the next episode's first
        next_obs[t, n] = rng.integers(0, 256, (10, 10, 4), dtype=np.uint8)
    params = network.init(jax.random.PRNGKey(1), jnp.asarray(obs[0, :1]))
    values = apply_in_chunks(network, params, jnp.asarray(obs))[1]
    got = np.asarray(bootstrap_values(network, params, jnp.asarray(next_obs), values, jnp.asarray(truncated)))
    want = np.asarray(next_values(network, params, jnp.asarray(next_obs)))
    np.testing.assert_allclose(got[~terminated], want[~terminated], rtol=1e-5, atol=1e-6)
    assert np.isfinite(got).all()
    needed = np.zeros((T, N), bool)
    needed[9, 5] = True  # frame 77: chunk 1 of the two 64-frame chunks
    chunked = np.asarray(apply_in_chunks(network, params, jnp.asarray(next_obs), needed=jnp.asarray(needed))[1])
    np.testing.assert_allclose(chunked[8:], want[8:], rtol=1e-5, atol=1e-6)
    if network_kind == "cnn":
        assert not chunked[:8].any()  # chunk 0 holds no needed frame: not computed


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
    from ppox.agent.networks import zero_carry

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
