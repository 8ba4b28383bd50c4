"""The LM registries (--advantage variants, --kl-estimator): each entry is its function, and LMRunConfig's
choices and checks read them."""

import typing

import jax.numpy as jnp
import numpy as np
import pytest

from ppox.errors import ConfigError
from ppox.language.advantages import (KL_ESTIMATORS, LM_ADVANTAGES, LMAdvantageParams, grpo_advantages,
                                      response_gae, rloo_advantages, token_kl)
from ppox.language.run_config import LMRunConfig

HINTS = typing.get_type_hints(LMRunConfig)


def inputs(B=8, N=6, seed=1):
    rng = np.random.default_rng(seed)
    rewards, values = (jnp.asarray(rng.normal(size=(B, N)), jnp.float32) for _ in range(2))
    mask = jnp.asarray(np.arange(N)[None] < rng.integers(0, N + 1, B)[:, None])
    return rewards, values, mask


def test_each_variant_is_its_function():
    """Bit for bit: gae is response_gae; rloo and grpo score the completions' returns in groups of k and give
    each token its completion's advantage, with no value targets."""
    rewards, values, mask = inputs()
    params = LMAdvantageParams(gamma=0.9, gae_lambda=0.8, samples_per_prompt=4)
    got = LM_ADVANTAGES["gae"].estimate(rewards, values, mask, params)
    for a, b in zip(got, response_gae(rewards, values, mask, 0.9, 0.8)):
        np.testing.assert_array_equal(a, b)
    for name, groups in (("rloo", rloo_advantages), ("grpo", grpo_advantages)):
        advantages, returns = LM_ADVANTAGES[name].estimate(rewards, jnp.zeros_like(values), mask, params)
        expected = jnp.where(mask, groups(rewards.sum(-1).reshape(-1, 4)).reshape(-1)[:, None], 0.0)
        np.testing.assert_array_equal(advantages, expected, err_msg=name)
        np.testing.assert_array_equal(returns, np.zeros_like(returns), err_msg=name)


def test_choices_are_the_registries():
    assert typing.get_args(HINTS["advantage"]) == tuple(LM_ADVANTAGES)
    assert typing.get_args(HINTS["kl_estimator"]) == tuple(KL_ESTIMATORS)


@pytest.mark.parametrize("name", sorted(LM_ADVANTAGES))
def test_each_variant_sets_the_critic_and_the_samples_it_needs(name):
    variant = LM_ADVANTAGES[name]
    config = LMRunConfig(model="m", advantage=name, samples_per_prompt=max(variant.min_samples, 1))
    assert config.uses_critic == variant.uses_critic and config.variant is variant
    if variant.min_samples > 1:
        with pytest.raises(ConfigError, match=f"--samples-per-prompt {variant.min_samples} or more"):
            LMRunConfig(model="m", advantage=name, samples_per_prompt=variant.min_samples - 1)


@pytest.mark.parametrize("changes, words", [({"kl_estimator": "k2"}, f"kl_estimator k2: one of {', '.join(KL_ESTIMATORS)}"),
                                            ({"dtype": "float16"}, "dtype float16: float32 or bfloat16"),
                                            ({"advantage": "ppo"}, f"--advantage ppo: one of {', '.join(LM_ADVANTAGES)}")])
def test_a_value_outside_the_choices_is_refused(changes, words):
    with pytest.raises(ConfigError, match=words):
        LMRunConfig(model="m", **changes)


def test_kl_estimators_are_their_formulas():
    logp, ref = jnp.asarray([-1.0, -0.5, -2.0]), jnp.asarray([-1.5, -0.5, -1.0])
    np.testing.assert_array_equal(token_kl(logp, ref, "k1"), logp - ref)
    np.testing.assert_array_equal(token_kl(logp, ref, "k3"), jnp.expm1(ref - logp) + (logp - ref))
