"""The PPO update: learning-rate annealing, the raveled Adam, target-KL stop, the direction of change."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ppox.config.config import Config
from ppox.agent.agent import make_network
from ppox.envs.spec import EnvSpec
from ppox.agent.learner import Batch, minibatch_loss, init_opt_state, learning_rate_at, make_optimizer, ppo_update

SPEC = EnvSpec((3,), "discrete", (2,))


def _batch(key, size=64, advantage_sign=1.0):
    k1, k2 = jax.random.split(key)
    obs = jax.random.normal(k1, (size, 3))
    actions = jnp.zeros(size, jnp.int32)  # always action 0 ...
    return Batch(obs, actions, jnp.full(size, jnp.log(0.5)), jnp.zeros(size),
                 advantage_sign * (1.0 + jax.random.uniform(k2, (size,))), jnp.ones(size))


def _setup(**changes):
    config = Config(num_envs=4, num_steps=16, total_timesteps=64 * 10, **changes)
    network = make_network(config, SPEC)
    params = network.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    optimizer = make_optimizer(config)
    return config, network, params, optimizer, init_opt_state(optimizer, params)


def test_learning_rate_anneals_linearly_to_zero():
    config = Config()
    assert float(learning_rate_at(config, 0)) == pytest.approx(config.learning_rate)
    assert float(learning_rate_at(config, config.num_updates // 2)) == pytest.approx(config.learning_rate / 2, rel=1e-2)
    assert float(learning_rate_at(config, config.num_updates)) == pytest.approx(0.0, abs=1e-12)
    assert float(learning_rate_at(config.replace(anneal_lr=False), 500)) == pytest.approx(config.learning_rate)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_update_moves_probability_with_the_advantage(sign):
    config, network, params, optimizer, opt_state = _setup(norm_adv=False, ent_coef=0.0, learning_rate=3e-3)
    batch = _batch(jax.random.PRNGKey(1), advantage_sign=sign)
    before = jnp.exp(network.apply(params, batch.obs)[0].log_prob(batch.actions)).mean()
    new_params, _, metrics = ppo_update(params, opt_state, batch, jax.random.PRNGKey(2), 0,
                                        apply_fn=network.apply, optimizer=optimizer, config=config)
    after = jnp.exp(network.apply(new_params, batch.obs)[0].log_prob(batch.actions)).mean()
    assert (after - before) * sign > 0.01
    assert int(metrics.minibatch_steps) == config.update_epochs * config.num_minibatches
    assert float(metrics.learning_rate) == pytest.approx(config.learning_rate)


def test_raveled_adam_equals_per_leaf_optax_adam():
    """One epoch of one minibatch: the raveled optimiser is plain optax Adam with clipping, leaf by leaf."""
    config, network, params, optimizer, opt_state = _setup(update_epochs=1, num_minibatches=1, anneal_lr=False)
    batch = _batch(jax.random.PRNGKey(3))
    new_params, _, _ = ppo_update(params, opt_state, batch, jax.random.PRNGKey(4), 0,
                                  apply_fn=network.apply, optimizer=optimizer, config=config)
    reference = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(config.learning_rate, eps=config.adam_eps))
    grads = jax.grad(lambda p: minibatch_loss(p, network.apply, batch, config)[0])(params)
    updates, _ = reference.update(grads, reference.init(params), params)
    expected = optax.apply_updates(params, updates)
    for a, b in zip(jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_target_kl_stops_the_update_early():
    config, network, params, optimizer, opt_state = _setup(target_kl=1e-9, learning_rate=1e-2)
    batch = _batch(jax.random.PRNGKey(5))
    batch = batch._replace(log_probs=network.apply(params, batch.obs)[0].log_prob(batch.actions))  # on-policy
    _, _, metrics = ppo_update(params, opt_state, batch, jax.random.PRNGKey(6), 0,
                               apply_fn=network.apply, optimizer=optimizer, config=config)
    # the first minibatch starts at KL 0 and steps; the second sees KL > target and stops everything after it
    assert int(metrics.minibatch_steps) == 1


def test_update_is_deterministic_and_jittable():
    config, network, params, optimizer, opt_state = _setup()
    batch = _batch(jax.random.PRNGKey(7))
    run = jax.jit(lambda p, o, b, k: ppo_update(p, o, b, k, 3, apply_fn=network.apply, optimizer=optimizer,
                                                 config=config))
    a = run(params, opt_state, batch, jax.random.PRNGKey(8))[0]
    b = run(params, opt_state, batch, jax.random.PRNGKey(8))[0]
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)


def gymnax_blines_loss(logits, actions, old_log_probs, values, old_values, returns, advantages,
                       clip=0.2, critic_coeff=0.5, entropy_coeff=0.01) -> float:
    """gymnax-blines' PPO loss (utils/ppo.py, loss_actor_and_critic) in float64: advantages normalised in the
    minibatch, value loss 0.5 max((V - G)^2, (V_clipped - G)^2) weighted by critic_coeff."""
    logits, old_log_probs, values, old_values, returns, advantages = (
        np.asarray(x, np.float64) for x in (logits, old_log_probs, values, old_values, returns, advantages))
    log_pi = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    log_prob = log_pi[np.arange(len(actions)), actions]
    clipped_values = old_values + np.clip(values - old_values, -clip, clip)
    value_loss = 0.5 * np.maximum((values - returns) ** 2, (clipped_values - returns) ** 2).mean()
    ratio = np.exp(log_prob - old_log_probs)
    gae = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    actor_loss = -np.minimum(ratio * gae, np.clip(ratio, 1 - clip, 1 + clip) * gae).mean()
    entropy = -(np.exp(log_pi) * log_pi).sum(-1).mean()
    return float(actor_loss + critic_coeff * value_loss - entropy_coeff * entropy)


@pytest.mark.parametrize("game", ["Breakout", "SpaceInvaders", "Asterix", "Freeway"])
@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_minatar_presets_give_gymnax_blines_loss(game, network):
    """The MinAtar presets' minibatch loss is gymnax-blines' (their critic_coeff 0.5 x 0.5 (V - G)^2 is ppox's
    vf_coef 0.25 x (V - G)^2); with ppox's default 0.5 the value term would weigh twice theirs."""
    from ppox.core.distributions import Categorical

    config = Config.preset(f"{game}-MinAtar", network=network)
    rng = np.random.default_rng(11)
    n, actions_n = 512, 6
    params = {"logits": jnp.asarray(rng.normal(0, 1, (n, actions_n)), jnp.float32),
              "values": jnp.asarray(rng.normal(0, 2, n), jnp.float32)}
    actions = rng.integers(0, actions_n, n)
    batch = Batch(obs=jnp.zeros((n, 1)), actions=jnp.asarray(actions), log_probs=jnp.asarray(
        np.log(rng.uniform(0.05, 0.6, n)), jnp.float32), values=params["values"] + jnp.asarray(
        rng.normal(0, 0.3, n), jnp.float32), advantages=jnp.asarray(rng.normal(0.5, 3, n), jnp.float32),
        returns=jnp.asarray(rng.normal(0, 2, n), jnp.float32))

    def apply_fn(p, obs):
        return Categorical(p["logits"]), p["values"]

    loss, _ = minibatch_loss(params, apply_fn, batch, config)
    expected = gymnax_blines_loss(params["logits"], actions, batch.log_probs, params["values"], batch.values,
                                  batch.returns, batch.advantages)
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    with_default = minibatch_loss(params, apply_fn, batch, config.replace(vf_coef=Config().vf_coef))[0]
    assert abs(float(with_default) - expected) > 1e-3
