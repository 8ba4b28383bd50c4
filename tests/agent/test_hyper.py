"""Traced hyperparameters: the fused program takes a Hyper as an argument; one compilation serves every value,
and a single run gives what it gave when the values were constants in the program."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.config.config import TRACED_FIELDS, Config, static_config
from ppox.drivers.fused import FusedDriver
from ppox.drivers.host import HostDriver, make_learn
from ppox.drivers.fused_program import build, make_chunk_runner, make_train
from ppox.agent.learner import Hyper, make_optimizer

FAR = dict(learning_rate=1e-3, gamma=0.9, gae_lambda=0.8, clip_coef=0.1, vf_clip_coef=0.5, ent_coef=0.05, vf_coef=0.25,
           max_grad_norm=1.0, target_kl=0.05)  # every traced field away from the fixed values of static_config


def test_hyper_holds_exactly_the_traced_fields():
    assert Hyper._fields == TRACED_FIELDS + ("num_updates",)
    hyper = Hyper.from_config(Config(clip_coef=None, target_kl=None), jnp.float32)
    assert hyper.clip_coef is None and hyper.target_kl is None and hyper.learning_rate.dtype == jnp.float32


def test_runs_differing_only_in_traced_values_share_one_compilation():
    base = Config(total_timesteps=2048, target_kl=0.02, save=False, progress=False)
    assert FusedDriver(base).compiled is FusedDriver(base.replace(**FAR)).compiled
    host, other = HostDriver(base, base.env), HostDriver(base.replace(**FAR), base.env)
    assert host._learn is other._learn and host.hyper != other.hyper
    host.close(), other.close()
    assert static_config(base.replace(**FAR)) == static_config(base)
    # an option turned off removes code: another program
    assert static_config(base.replace(clip_coef=None)) != static_config(base)


@pytest.mark.parametrize("driver", ["fused", "host"])
def test_runs_differing_only_in_length_share_one_compilation_and_anneal_over_their_own(driver):
    """The run's length reaches the programs as a traced number: runs of 3 and 5 updates (one chunk size)
    share the compiled program, and each anneals the learning rate to 0 over its own length:
    lr_i = lr * (1 - i / num_updates)."""
    base = Config(total_timesteps=3 * 512, anneal_lr=True, learning_rate=1e-3, save=False, progress=False,
                  driver=driver)
    longer = base.replace(total_timesteps=5 * 512)
    if driver == "fused":
        assert FusedDriver(base).compiled is FusedDriver(longer).compiled
    else:
        first, second = HostDriver(base, base.env), HostDriver(longer, longer.env)
        assert first._learn is second._learn
        first.close(), second.close()
    for config in (base, longer):
        lr = ppox.train(config).metrics["learning_rate"][0]
        n = config.num_updates
        np.testing.assert_allclose(lr, 1e-3 * (1.0 - np.arange(n) / n), rtol=1e-6)


def test_the_traced_program_reads_every_value_from_the_hyper():
    """The program built from static_config (fixed values) and fed config's Hyper computes what the program
    with config's values as constants computes: a field still read from the config would differ at once.
    Tolerance: float rounding (a product of two constants is folded in float64, of two arguments in float32)."""
    config = Config(total_timesteps=2 * 512, norm_reward=True, save=False, progress=False, **FAR)
    key = jax.random.PRNGKey(3)
    _, constant = jax.jit(make_train(config))(key)
    _, traced = jax.jit(make_train(static_config(config)))(key, Hyper.from_config(config, jnp.float32))
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "learning_rate", "minibatch_steps"):
        np.testing.assert_allclose(np.asarray(traced[name])[0], np.asarray(constant[name])[0], rtol=1e-4, atol=1e-7,
                                   err_msg=name)


def test_the_host_learner_reads_every_value_from_the_hyper():
    """The host's learn built from static_config (fixed values) and fed config's Hyper computes what it computes
    with config's values folded in as constants (Python floats), on the same rollout: a field still read from
    the config (gamma in the reward scaling, say) would differ at once. Tolerance: float rounding."""
    config = Config(total_timesteps=2 * 512, norm_reward=True, driver="host", save=False, progress=False, **FAR)
    driver = HostDriver(config, config.env)
    state = driver.init()
    rollout, *_ = driver.source.collect(state.learner.params, state.learner.obs_stats)
    constants = Hyper.from_config(config)
    folded = jax.jit(lambda learner, r, i: make_learn(config, driver.network, make_optimizer(config))(
        learner, r, i, constants))
    copy = lambda tree: jax.tree_util.tree_map(jnp.array, tree)  # noqa: E731  (learn donates its learner)
    _, traced = driver._learn(copy(state.learner), rollout, 0, driver.hyper)
    _, constant = folded(copy(state.learner), rollout, 0)
    driver.close()
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "learning_rate", "minibatch_steps"):
        np.testing.assert_allclose(np.asarray(traced[name]), np.asarray(constant[name]), rtol=1e-4, atol=1e-7,
                                   err_msg=name)


@pytest.mark.parametrize("overrides", [{}, {"seeds": 2, "target_kl": 0.01}, {"memory": "gru", "memory_size": 16}])
def test_a_single_run_is_unchanged(overrides):
    """ppox.train (values traced) against the fused program with the values as constants, as it was before Hyper
    existed: bit-identical on CartPole-v1 (tolerance 0), one seed, two vmapped seeds with a target KL, and a
    recurrent policy. The run's length is an argument in both (lr_i = lr (1 - i / n): a division by a folded
    constant may round differently in the last bit)."""
    config = Config(total_timesteps=30 * 512, save=False, progress=False, **overrides)
    result = ppox.train(config)
    fused = build(config)
    run = make_chunk_runner(fused, config.num_updates)
    constants = Hyper.from_config(config)  # Python floats: folded into the program
    keys = jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(config.seeds)])
    n = config.num_updates
    one = lambda k, length: run(fused.init(k), n, constants._replace(num_updates=length))  # noqa: E731
    if config.seeds == 1:
        _, before = jax.jit(one)(keys[0], jnp.float32(n))
    else:
        _, before = jax.jit(jax.vmap(one, in_axes=(0, None)))(keys, jnp.float32(n))
    for name, values in result.metrics.items():
        np.testing.assert_array_equal(values, np.asarray(before[name]).reshape(values.shape), err_msg=name)
