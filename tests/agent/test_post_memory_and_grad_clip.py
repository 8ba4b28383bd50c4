"""--post-memory-sizes (layers after the recurrent cell, in each head) and --grad-clip per_network (the actor's and
the critic's gradient norms clipped apart): JaxMARL's recurrent MAPPO networks and optimisers (issue 36)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from ppox.agent.agent import NumpyActor, make_network
from ppox.agent.learner import (
    Batch,
    clip_per_group,
    critic_mask,
    init_opt_state,
    make_optimizer,
    minibatch_loss,
    ppo_update,
)
from ppox.agent.networks import zero_carry
from ppox.config.config import Config
from ppox.core.normalize import RunningMeanStd
from ppox.envs.spec import EnvSpec
from ppox.errors import ConfigError

SPEC = EnvSpec((4,), "discrete", (3,))


def _recurrent(shared=False, memory="gru", post=(6, 5)):
    config = Config(memory=memory, memory_size=8, hidden_sizes=(7,), post_memory_sizes=post, shared_trunk=shared,
                    activation="relu")
    network = make_network(config, SPEC)
    params = network.init(jax.random.PRNGKey(0), zero_carry(network, 3), jnp.zeros((1, 3, 4)), jnp.ones((1, 3), bool))
    return config, network, params


@pytest.mark.parametrize("shared", [False, True], ids=["separate", "shared"])
def test_post_memory_layers_sit_between_the_cell_and_each_head(shared):
    """One MLP per head after the cell (also with a shared trunk and cell): [memory_size -> 6 -> 5], then the
    heads read 5 features."""
    _, _, params = _recurrent(shared)
    p = params["params"]
    for head in ("actor_post_memory", "critic_post_memory"):
        assert [p[head][f"Dense_{i}"]["kernel"].shape for i in range(2)] == [(8, 6), (6, 5)]
    assert p["Dense_0"]["kernel"].shape == (5, 1) and p["Dense_1"]["kernel"].shape == (5, 3)
    assert ("critic_memory" in p) is not shared
    _, _, plain = _recurrent(shared, post=())
    assert not any(k.endswith("post_memory") for k in plain["params"])
    assert plain["params"]["Dense_1"]["kernel"].shape[0] == 8


@pytest.mark.parametrize("memory", ["gru", "lstm"])
def test_numpy_actor_runs_the_post_memory_layers(memory):
    """The host's NumPy actor computes the flax network's logits with post-memory layers, over a sequence with an
    episode start inside it."""
    config, network, params = _recurrent(memory=memory)
    obs = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 3, 4)))
    starts = np.zeros((5, 3), bool)
    starts[0], starts[3, 1] = True, True
    _, dist, _ = network.apply(params, zero_carry(network, 3), jnp.asarray(obs), jnp.asarray(starts))
    actor = NumpyActor(config, SPEC, network)
    actor.restart(3)
    actor.load(params, RunningMeanStd.create((4,)))
    for t in range(5):
        actor.starts = starts[t]
        np.testing.assert_allclose(actor.forward(obs[t]), dist.logits[t], atol=1e-5)


@pytest.mark.parametrize("recurrent", [True, False])
def test_critic_mask_is_the_support_of_the_value_gradient(recurrent):
    """critic_mask marks exactly the parameters V depends on (and the actor's logits depend on none of them)."""
    if recurrent:
        _, network, params = _recurrent()
        obs = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 4))
        run = lambda p: network.apply(p, zero_carry(network, 3), obs, jnp.zeros((4, 3), bool))[1:]  # noqa: E731
    else:
        network = make_network(Config(hidden_sizes=(7, 5)), SPEC)
        obs = jax.random.normal(jax.random.PRNGKey(2), (6, 4))
        params = network.init(jax.random.PRNGKey(0), obs[:1])
        run = lambda p: network.apply(p, obs)  # noqa: E731
    value_grad = jax.jit(jax.grad(lambda p: run(p)[1].sum()))(params)
    logit_grad = jax.jit(jax.grad(lambda p: jnp.square(run(p)[0].logits).sum()))(params)
    for mask, v, lg in zip(*map(jax.tree_util.tree_leaves, (critic_mask(params), value_grad, logit_grad))):
        assert bool(mask.all()) == bool((v != 0).any()) and bool(mask.any()) == bool(mask.all())
        assert not (mask.all() and (lg != 0).any())


def test_clip_per_group_against_a_float64_reference():
    """Each group's part scaled by min(1, c / ||g_k||): one group above the bound, one below, and c = inf."""
    rng = np.random.default_rng(0)
    grads = rng.normal(size=50).astype(np.float32)
    groups = rng.random(50) < 0.4
    grads[~groups] *= 0.01  # the actor's norm below the bound, the critic's above
    for bound in (0.5, 0.05, np.inf):
        expected = grads.astype(np.float64)
        for flag in (False, True):
            norm = np.sqrt(np.sum(expected[groups == flag] ** 2))
            expected[groups == flag] *= min(1.0, bound / norm)
        got = clip_per_group(jnp.asarray(grads), jnp.asarray(groups), bound)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-9)
    assert np.linalg.norm(np.asarray(clip_per_group(jnp.asarray(grads), jnp.asarray(groups), 0.05))[groups]) == (
        pytest.approx(0.05, rel=1e-5)
    )


def test_per_network_update_is_two_clipped_optimisers():
    """One epoch of one minibatch with --grad-clip per_network: the actor's and the critic's gradients clipped to
    max_grad_norm each (both norms above it here), then Adam: JaxMARL's two optimisers, leaf by leaf."""
    config = Config(num_envs=4, num_steps=16, total_timesteps=640, update_epochs=1, num_minibatches=1,
                    anneal_lr=False, max_grad_norm=0.01, grad_clip="per_network")
    network = make_network(config, SPEC)
    params = network.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    optimizer = make_optimizer(config)
    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    batch = Batch(jax.random.normal(k1, (64, 4)), jnp.zeros(64, jnp.int32), jnp.full(64, jnp.log(1 / 3)),
                  jnp.zeros(64), 1.0 + jax.random.uniform(k2, (64,)), jnp.ones(64))
    def update(config):
        step = lambda p: ppo_update(p, init_opt_state(optimizer, p), batch, jax.random.PRNGKey(4), 0,  # noqa: E731
                                    apply_fn=network.apply, optimizer=optimizer, config=config)[0]
        return jax.jit(step)(params)

    new_params = update(config)
    grads = jax.jit(jax.grad(lambda p: minibatch_loss(p, network.apply, batch, config)[0]))(params)
    mask = critic_mask(params)
    norms = [np.sqrt(sum(float(jnp.sum(jnp.where(m == flag, g, 0.0) ** 2)) for g, m in
                         zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(mask)))) for flag in (0, 1)]
    assert min(norms) > config.max_grad_norm
    clipped = jax.tree_util.tree_map(lambda g, m: g * config.max_grad_norm / norms[int(m.all())], grads, mask)
    adam = optax.adam(config.learning_rate, eps=config.adam_eps)
    expected = optax.apply_updates(params, adam.update(clipped, adam.init(params), params)[0])
    for a, b in zip(jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    joint = update(config.replace(grad_clip="joint"))
    assert not np.allclose(ravel_pytree(joint)[0], ravel_pytree(new_params)[0])


def test_bad_values_are_refused_with_what_to_change():
    with pytest.raises(ConfigError, match="--post-memory-sizes 128 adds layers after the recurrent cell"):
        Config(post_memory_sizes=(128,))
    with pytest.raises(ConfigError, match="--post-memory-sizes must be zero or more positive integers"):
        Config(memory="gru", post_memory_sizes=(0,))
    with pytest.raises(ConfigError, match="--grad-clip per_network .* drop --shared-trunk"):
        Config(grad_clip="per_network", shared_trunk=True)
    assert Config(memory="gru", post_memory_sizes=(128,), grad_clip="per_network").post_memory_sizes == (128,)


def _gae_float64(rewards, values, next_values, terminated, truncated, gamma, lam):
    """GAE in float64: delta_t = r_t + gamma (1 - term_t) V(s_{t+1}) - V(s_t), A_t = delta_t + gamma lam
    (1 - done_t) A_{t+1}, done_t = term_t or trunc_t."""
    advantages, next_advantage = np.zeros_like(rewards), np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * (1 - terminated[t]) * next_values[t] - values[t]
        next_advantage = delta + gamma * lam * (1 - np.maximum(terminated[t], truncated[t])) * next_advantage
        advantages[t] = next_advantage
    return advantages


@pytest.mark.parametrize("bootstrap", [True, False])
def test_no_bootstrap_truncated_treats_a_time_limit_as_terminal(bootstrap):
    """--no-bootstrap-truncated (CleanRL's, PureJaxRL's and JaxMARL's time limits): a truncated step gets no V after
    it, as a terminated one; the default bootstraps it (float64 reference, both)."""
    from ppox.agent.learner import advantages_and_targets

    rng = np.random.default_rng(1)
    rewards, values, next_values = (rng.normal(size=(9, 4)) for _ in range(3))
    terminated, truncated = np.zeros((9, 4)), np.zeros((9, 4))
    terminated[3, 0], truncated[5, 1], truncated[2, 2], terminated[6, 2] = 1, 1, 1, 1
    config = Config(gamma=0.9, gae_lambda=0.8, bootstrap_truncated=bootstrap)
    floats = (jnp.asarray(x, jnp.float32) for x in (rewards, values, next_values))
    got, targets = advantages_and_targets(config, *floats, jnp.asarray(terminated, bool), jnp.asarray(truncated, bool))
    ends = terminated if bootstrap else np.maximum(terminated, truncated)
    expected = _gae_float64(rewards, values, next_values, ends, truncated, 0.9, 0.8)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(targets), expected + values, rtol=1e-5, atol=1e-5)
    assert bootstrap or not np.allclose(expected, _gae_float64(rewards, values, next_values, terminated, truncated,
                                                               0.9, 0.8))
