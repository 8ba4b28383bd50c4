"""The --loss registry, clip-higher, the KL in the loss, --scale-rewards and --mask-truncated: each formula
against an independent float64 NumPy reference (loops over completions and tokens), and the identities
between the variants."""

import functools
import typing

import jax.numpy as jnp
import numpy as np
import pytest

import ppox.lm
from ppox.core.losses import clipped_surrogate
from ppox.errors import ConfigError
from ppox.language import randomwalks as rw
from ppox.language.advantages import LM_ADVANTAGES, LMAdvantageParams, scaled_grpo_advantages
from ppox.language.losses import LM_LOSSES, LossInputs, k3
from ppox.language.run_config import LMRunConfig

GRAPH = rw.make_graph(seed=0)
REWARD = functools.partial(rw.path_scores, GRAPH)


def case(B=6, N=5, seed=0, equal=False, beta=0.0):
    """Random inputs: ratios within about [0.6, 1.6], a mask that is a prefix of each row (one row empty
    unless ``equal``: all rows full)."""
    rng = np.random.default_rng(seed)
    old = rng.normal(-1.5, 0.5, (B, N))
    new = old + rng.normal(0, 0.25, (B, N))
    ref = old + rng.normal(0, 0.3, (B, N))
    adv = np.repeat(rng.normal(size=(B, 1)), N, axis=1) + (0 if equal else rng.normal(0, 0.1, (B, N)))
    lengths = np.full(B, N) if equal else np.r_[rng.integers(1, N + 1, B - 1), 0]
    mask = np.arange(N)[None] < lengths[:, None]
    return new, old, ref, adv, mask, beta


def ppox_loss(name, new, old, ref, adv, mask, beta, eps_low=0.2, eps_high=0.28, max_tokens=8):
    kl = beta * k3(jnp.asarray(new, jnp.float32), jnp.asarray(ref, jnp.float32))
    inputs = LossInputs(*(jnp.asarray(x, jnp.float32) for x in (new, old, adv)), jnp.asarray(mask),
                        jnp.where(jnp.asarray(mask), kl, 0.0), eps_low, eps_high, max_tokens)
    loss, clipped = LM_LOSSES[name].loss(inputs)
    return float(loss), float(clipped)


def reference(name, new, old, ref, adv, mask, beta, eps_low=0.2, eps_high=0.28, max_tokens=8):
    """float64 loops: the loss and the clip fraction of each variant, written from the papers' equations."""
    B, N = new.shape
    if name == "gspo":
        total, clipped, counted = 0.0, 0, 0
        for i in range(B):
            ts = [t for t in range(N) if mask[i, t]]
            if not ts:
                continue
            s = np.exp(sum(new[i, t] - old[i, t] for t in ts) / len(ts))
            a = sum(adv[i, t] for t in ts) / len(ts)
            kl = sum(np.exp(ref[i, t] - new[i, t]) - (ref[i, t] - new[i, t]) - 1 for t in ts) / len(ts)
            total += min(s * a, min(max(s, 1 - eps_low), 1 + eps_high) * a) - beta * kl
            clipped, counted = clipped + (s < 1 - eps_low or s > 1 + eps_high), counted + 1
        return -total / B, clipped / max(counted, 1)
    terms = np.zeros((B, N))
    flags = []
    for i in range(B):
        for t in range(N):
            if mask[i, t]:
                r, a = np.exp(new[i, t] - old[i, t]), adv[i, t]
                d = ref[i, t] - new[i, t]
                terms[i, t] = min(r * a, min(max(r, 1 - eps_low), 1 + eps_high) * a) - beta * (np.exp(d) - d - 1)
                flags.append(r < 1 - eps_low or r > 1 + eps_high)
    fraction = sum(flags) / max(len(flags), 1)
    if name == "token":
        return -terms.sum() / max(mask.sum(), 1), fraction
    if name == "sequence":
        return -sum(terms[i].sum() / mask[i].sum() for i in range(B) if mask[i].any()) / B, fraction
    assert name == "dr_grpo"
    return -terms.sum() / (B * max_tokens), fraction


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("name", sorted(LM_LOSSES))
def test_each_loss_is_its_formula(name, beta):
    for seed in range(3):
        got = ppox_loss(name, *case(seed=seed, beta=beta))
        np.testing.assert_allclose(got, reference(name, *case(seed=seed, beta=beta)), rtol=2e-5, atol=1e-6)


def test_the_cases_clip_some_ratios_and_not_others():
    """(So that the formula tests see both sides of the clip.)"""
    for name in LM_LOSSES:
        fractions = [reference(name, *case(seed=s))[1] for s in range(3)]
        assert 0 < max(fractions) and min(fractions) < 1, name


def test_token_mean_is_sequence_mean_when_all_completions_have_equal_length():
    inputs = case(equal=True, beta=0.04)
    np.testing.assert_allclose(ppox_loss("token", *inputs), ppox_loss("sequence", *inputs), rtol=1e-6)
    assert not np.isclose(ppox_loss("token", *case(seed=1))[0], ppox_loss("sequence", *case(seed=1))[0])


def test_dr_grpo_is_the_token_mean_times_the_share_of_tokens_used():
    new, old, ref, adv, mask, beta = inputs = case(seed=2)
    share = mask.sum() / (mask.shape[0] * 8)
    np.testing.assert_allclose(ppox_loss("dr_grpo", *inputs)[0], ppox_loss("token", *inputs)[0] * share, rtol=1e-5)


def test_clip_higher_with_equal_epsilons_is_the_symmetric_clip():
    new, old, ref, adv, mask, _ = case(seed=1)
    symmetric = clipped_surrogate(*(jnp.asarray(x, jnp.float32) for x in (new, old, adv)), 0.2)
    expected = -float((symmetric * mask).sum() / mask.sum())
    got = ppox_loss("token", new, old, ref, adv, mask, 0.0, eps_low=0.2, eps_high=0.2)[0]
    assert got == pytest.approx(expected, rel=1e-6)
    assert ppox_loss("token", new, old, ref, adv, mask, 0.0, eps_low=0.2, eps_high=0.4)[0] != pytest.approx(got)


def test_gspo_with_one_token_is_ppos_clip():
    """One token per completion: the sequence ratio is the token ratio, so gspo is the token mean of PPO's
    clipped surrogate."""
    new, old, ref, adv, mask, _ = case(N=1, equal=True, seed=3)
    expected = -float(clipped_surrogate(*(jnp.asarray(x, jnp.float32) for x in (new, old, adv)), 0.2).mean())
    got = ppox_loss("gspo", new, old, ref, adv, mask, 0.0, eps_low=0.2, eps_high=0.2)
    assert got[0] == pytest.approx(expected, rel=1e-6)
    assert got == pytest.approx(ppox_loss("token", new, old, ref, adv, mask, 0.0, eps_low=0.2, eps_high=0.2))


def test_k3_is_its_formula_and_never_negative():
    rng = np.random.default_rng(0)
    logp, ref = rng.normal(-2, 1, 50), rng.normal(-2, 1, 50)
    got = np.asarray(k3(jnp.asarray(logp), jnp.asarray(ref)))
    np.testing.assert_allclose(got, np.exp(ref - logp) - (ref - logp) - 1, rtol=1e-5, atol=1e-7)
    assert got.min() >= 0


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_reward_scaling(scale):
    scores = np.random.default_rng(4).normal(size=(3, 4))
    centred = scores - scores.mean(axis=1, keepdims=True)
    divisor = {"group": scores.std(axis=1, keepdims=True) + 1e-6, "batch": scores.std() + 1e-6, "none": 1.0}[scale]
    np.testing.assert_allclose(scaled_grpo_advantages(jnp.asarray(scores, jnp.float32), scale), centred / divisor,
                               rtol=1e-5, atol=1e-6)
    mask = jnp.ones((12, 2), bool)
    rewards = jnp.zeros((12, 2)).at[:, -1].set(jnp.asarray(scores.reshape(-1), jnp.float32))
    advantages, _ = LM_ADVANTAGES["grpo"].estimate(rewards, jnp.zeros_like(rewards), mask,
                                                   LMAdvantageParams(1.0, 1.0, 4, scale))
    np.testing.assert_allclose(advantages[:, 0], (centred / divisor).reshape(-1), rtol=1e-5, atol=1e-6)


def test_choices_are_the_registry():
    assert typing.get_args(typing.get_type_hints(LMRunConfig)["loss"]) == tuple(LM_LOSSES)


@pytest.mark.parametrize("changes, words", [
    ({"loss": "tokens"}, "--loss tokens: one of .* \\(did you mean token\\?\\)"),
    ({"loss": "gspo"}, "--loss gspo gives each completion one ratio .* use --advantage grpo or rloo"),
    ({"clip_coef_high": 0.0}, "--clip-coef-high 0.0: must be > 0"),
    ({"kl_in": "both"}, "--kl-in both: one of reward, loss"),
    ({"scale_rewards": "none"}, "--scale-rewards none sets grpo's divisor: it needs --advantage grpo"),
    ({"scale_rewards": "max", "advantage": "grpo", "samples_per_prompt": 2}, "--scale-rewards max: one of"),
])
def test_bad_combinations_are_one_line_errors(changes, words):
    with pytest.raises(ConfigError, match=words):
        LMRunConfig(model="m", **changes)


def test_good_combinations_are_accepted():
    config = LMRunConfig(model="m", advantage="grpo", samples_per_prompt=4, loss="gspo", kl_in="loss",
                         clip_coef=0.2, clip_coef_high=0.28, scale_rewards="none", mask_truncated=True)
    assert config.clip_high == 0.28 and LMRunConfig(model="m").clip_high == 0.2
    assert LMRunConfig(model="m", advantage="rloo", samples_per_prompt=2, loss="gspo").loss_variant is LM_LOSSES["gspo"]


@pytest.mark.long
def test_grpo_with_the_kl_in_the_loss_and_token_mean_learns_shortest_paths(walker, tmp_path):
    """Seeded: the pretrained walker reaches a fraction ~0.2 of the optimum (the first two updates' mean score
    is below 0.5, as in test_ppo's PPO run); 25 updates of GRPO (16 prompts x 4 completions, beta k3 in the
    loss at TRL's former default beta 0.04, DAPO's token mean, no whitening) take it past 0.85. Measured
    (shared 2-core CPU, load ~14): seed 0 0.203 -> 0.906 (mean of the last three), seed 1 0.226 -> 0.905;
    kl_ref (per-completion k1) about 2 nats at the end, 50-90 s."""
    result = ppox.lm.train(model=str(walker), run_dir=str(tmp_path), save=False, tensorboard=False, max_new_tokens=10,
                           temperature=1.0, prompts_per_update=16, samples_per_prompt=4, advantage="grpo",
                           kl_in="loss", loss="token", kl_coef=0.04, whiten_advantages=False, epochs=4,
                           minibatches=4, learning_rate=5e-4, updates=25, prompts=rw.start_prompts(GRAPH),
                           reward=REWARD)
    score, kl = result.metrics["episode_return"][0], result.metrics["kl_ref"][0]
    assert score[:2].mean() < 0.5
    assert score[-3:].mean() > 0.85
    assert np.all(np.isfinite(kl)) and kl[-1] > 0.1
    assert np.all(result.metrics["non_score_reward"] == 0)  # (the KL is in the loss, not the reward)
