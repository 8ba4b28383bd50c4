"""The sampler: its log-probabilities are the policy's, its cache changes nothing, its filters and its end."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from ppox.errors import ConfigError
from ppox.language import forward, load
from ppox.language.sampling import (Sampling, bucket_width, filter_logits, inverse_cdf, make_sampler,
                                     sample_tokens, sequence_logprobs, trim_prompts)
from tests import helpers

FIXTURES = helpers.FIXTURES / "lm"
EOS_IDS = (1, 5, 9, 17, 33, 40, 61, 77)  # several, so that rows end at different steps
PAD = 0


def prompts(name: str):
    """Three left-padded prompts (padded by 0, 4 and 9 slots) plus a fourth copy of the shortest."""
    ref = load_file(FIXTURES / name / "reference.safetensors")
    ids, mask = ref["input_ids"], ref["attention_mask"].astype(bool)
    return jnp.asarray(np.concatenate([ids, ids[2:]])), jnp.asarray(np.concatenate([mask, mask[2:]]))


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2"])
def test_sampler_logprobs_equal_a_full_forward_pass(name):
    """exp(full-pass log-prob - sampler log-prob) = 1 on every response token, with left padding in the
    prompts and rows that end early (EOS kept, padding after it, log-prob 0 there)."""
    model = load(FIXTURES / name)
    prompt, prompt_mask = prompts(name)
    sampling = Sampling(max_new_tokens=14, eos_ids=EOS_IDS, pad_id=PAD, temperature=1.7, top_k=40, top_p=0.95)
    out = make_sampler(model.config, sampling)(model.params, prompt, prompt_mask, jax.random.key(3))
    tokens, mask, logprobs = np.asarray(out.tokens), np.asarray(out.mask), np.asarray(out.logprobs)
    ended = np.isin(tokens, EOS_IDS) & mask
    assert ended.any() and len(set(mask.sum(1).tolist())) > 1  # rows stop at an end token, at different steps
    for row in range(len(tokens)):
        n = mask[row].sum()
        assert mask[row, :n].all() and not mask[row, n:].any() and (tokens[row, n:] == PAD).all()
        assert n == 14 or tokens[row, n - 1] in EOS_IDS
    scored = np.asarray(sequence_logprobs(model.config, model.params, prompt, prompt_mask, out.tokens, out.mask,
                                          temperature=1.7))
    np.testing.assert_allclose(np.exp(scored - logprobs)[mask], 1.0, atol=2e-5)
    assert (logprobs[~mask] == 0).all() and (scored[~mask] == 0).all()


def test_in_bfloat16_the_sampler_and_the_full_pass_differ_a_little():
    """bfloat16 arithmetic rounds differently one token at a time than over the whole sequence: the
    log-probabilities agree to about 0.05 nats here, not exactly; PPO should take its old log-probs from
    ``sequence_logprobs`` (docs/lm.md)."""
    model = load(FIXTURES / "llama", dtype="bfloat16")
    prompt, prompt_mask = prompts("llama")
    sampling = Sampling(max_new_tokens=14, eos_ids=EOS_IDS, pad_id=PAD)
    out = make_sampler(model.config, sampling)(model.params, prompt, prompt_mask, jax.random.key(3))
    scored = sequence_logprobs(model.config, model.params, prompt, prompt_mask, out.tokens, out.mask)
    assert float(jnp.abs(scored - out.logprobs).max()) < 0.1


def test_sequence_logprobs_has_gradients():
    """A step along the gradient of the summed log-probability raises it (what a PPO update builds on)."""
    model = load(FIXTURES / "qwen2")
    prompt, prompt_mask = prompts("qwen2")
    response = jnp.asarray(np.random.default_rng(0).integers(3, 96, (4, 5)), jnp.int32)
    response_mask = jnp.asarray(np.arange(5)[None] < np.array([[5], [3], [1], [4]]))
    total = lambda p: sequence_logprobs(model.config, p, prompt, prompt_mask, response, response_mask).sum()  # noqa: E731
    value, grads = jax.value_and_grad(total)(model.params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    stepped = jax.tree.map(lambda p, g: p + 1e-3 * g, model.params, grads)
    assert float(total(stepped)) > float(value)


def greedy_without_cache(model, prompt, prompt_mask, steps: int, eos_ids) -> np.ndarray:
    """Greedy decoding by a full forward pass over the whole sequence for every new token (a fixed-size
    buffer, its unwritten slots masked out; causality keeps them from mattering anyway)."""
    batch, length = prompt.shape
    tokens = np.concatenate([np.asarray(prompt), np.full((batch, steps), PAD, np.int32)], 1)
    mask = np.concatenate([np.asarray(prompt_mask), np.zeros((batch, steps), bool)], 1)
    full_pass = jax.jit(lambda params, t, m: forward(model.config, params, t, m))
    done = np.zeros(batch, bool)
    for step in range(steps):
        logits = np.asarray(full_pass(model.params, tokens, mask))[:, length + step - 1]
        token = np.where(done, PAD, logits.argmax(-1))
        done |= np.isin(token, eos_ids)
        tokens[:, length + step], mask[:, length + step] = token, True
    return tokens[:, length:]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_greedy_decoding_with_the_cache_equals_decoding_without(name):
    model = load(FIXTURES / name)
    prompt, prompt_mask = prompts(name)
    eos_ids = (1, 5, 9, 27)
    sampling = Sampling(max_new_tokens=10, eos_ids=eos_ids, pad_id=PAD, greedy=True)
    out = make_sampler(model.config, sampling)(model.params, prompt, prompt_mask, jax.random.key(0))
    assert 10 in out.lengths.tolist() and min(out.lengths.tolist()) < 10  # rows that end early and rows that do not
    np.testing.assert_array_equal(np.asarray(out.tokens), greedy_without_cache(model, prompt, prompt_mask, 10, eos_ids))


@pytest.mark.parametrize("name", ["gpt2", "qwen2"])
def test_a_left_padded_prompt_generates_what_it_generates_alone(name):
    model = load(FIXTURES / name)
    prompt, prompt_mask = prompts(name)
    sampling = Sampling(max_new_tokens=6, eos_ids=(), pad_id=PAD, greedy=True)
    batch = make_sampler(model.config, sampling)(model.params, prompt, prompt_mask, jax.random.key(0))
    alone_ids = prompt[2:3, 9:]  # row 2 is padded by 9 slots
    alone = make_sampler(model.config, sampling)(model.params, alone_ids, jnp.ones_like(alone_ids, bool),
                                                 jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(batch.tokens[2]), np.asarray(alone.tokens[0]))
    np.testing.assert_allclose(np.asarray(batch.logprobs[2]), np.asarray(alone.logprobs[0]), atol=1e-5)


def test_sampled_frequencies_follow_the_tempered_softmax():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    sampling = Sampling(max_new_tokens=1, eos_ids=(), pad_id=0, temperature=2.0)
    tokens, logprobs = sample_tokens(jnp.tile(logits, (40_000, 1)), jax.random.key(1), sampling)
    expected = jax.nn.softmax(logits / 2.0)
    np.testing.assert_allclose(np.bincount(np.asarray(tokens), minlength=4) / 40_000, expected, atol=0.01)
    np.testing.assert_allclose(np.exp(np.asarray(logprobs)), np.asarray(expected)[np.asarray(tokens)], rtol=1e-6)


def test_nucleus_draws_follow_the_renormalised_nucleus():
    probs = np.array([0.3, 0.25, 0.2, 0.1, 0.08, 0.07])
    sampling = Sampling(max_new_tokens=1, eos_ids=(), pad_id=0, top_p=0.7)  # nucleus: the first three
    tokens, _ = sample_tokens(jnp.tile(jnp.log(jnp.asarray(probs)), (50_000, 1)), jax.random.key(4), sampling)
    frequencies = np.bincount(np.asarray(tokens), minlength=6) / 50_000
    np.testing.assert_allclose(frequencies, np.r_[probs[:3] / probs[:3].sum(), 0, 0, 0], atol=0.01)


def test_inverse_cdf_picks_the_token_whose_interval_holds_u():
    logits = jnp.log(jnp.array([[0.5, 0.0, 0.25, 0.25, 0.0]] * 6))  # tokens 1 and 4 are impossible (-inf)
    u = jnp.array([0.0, 0.49, 0.5, 0.74, 0.76, 1.0 - 1e-9])  # (the last rounds to 1: the end of the range)
    assert inverse_cdf(logits, u).tolist() == [0, 0, 2, 2, 3, 3]


def test_top_k_and_top_p_keep_the_right_tokens():
    probs = jnp.array([[0.05, 0.4, 0.3, 0.15, 0.1]])
    logits = jnp.log(probs)
    keep = lambda k, p: np.isfinite(np.asarray(filter_logits(logits, k, p)))[0].tolist()  # noqa: E731
    assert keep(2, 1.0) == [False, True, True, False, False]
    assert keep(0, 0.69) == [False, True, True, False, False]  # 0.4 + 0.3 reaches 0.69
    assert keep(0, 0.71) == [False, True, True, True, False]
    assert keep(0, 0.01) == [False, True, False, False, False]  # the most likely token always stays
    assert keep(3, 0.95) == [False, True, True, True, False]
    assert keep(0, 1.0) == [True] * 5
    draws, _ = sample_tokens(jnp.tile(logits, (2000, 1)), jax.random.key(2),
                             Sampling(max_new_tokens=1, eos_ids=(), pad_id=0, top_k=2))
    assert set(np.unique(np.asarray(draws)).tolist()) == {1, 2}


def sorted_filter(logits: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """The filters by sorting the vocabulary, in float64: the reference for the bisection (top-p applies
    to the distribution top-k left, renormalised)."""
    kept = np.isfinite(logits)
    for row, z in enumerate(logits.astype(np.float64)):
        order = np.argsort(-z, kind="stable")
        if top_k:
            kept[row] &= z >= z[order[top_k - 1]]
            z = np.where(kept[row], z, -np.inf)
        probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        before = np.cumsum(probs[order]) - probs[order]
        kept[row] &= z >= z[order][before < top_p].min()
    return kept


@pytest.mark.parametrize("top_k, top_p", [(0, 0.9), (50, 1.0), (7, 0.5), (0, 0.3), (1, 1.0)])
def test_bisection_filters_equal_sorting(top_k, top_p):
    """On random logits over a 5000-token vocabulary, with repeated values and -inf entries."""
    rng = np.random.default_rng(top_k)
    logits = (rng.standard_normal((6, 5000)) * 3).astype(np.float32)
    logits[:, ::7] = np.round(logits[:, ::7])  # ties
    logits[:, :30] = -np.inf
    ours = np.isfinite(np.asarray(filter_logits(jnp.asarray(logits), top_k, top_p)))
    np.testing.assert_array_equal(ours, sorted_filter(logits, top_k, top_p))


def test_sampling_settings_are_checked():
    with pytest.raises(ConfigError, match="pad_id=1 is an end-of-sequence id"):
        Sampling(max_new_tokens=4, eos_ids=(1,), pad_id=1)
    with pytest.raises(ConfigError, match="temperature=0"):
        Sampling(max_new_tokens=4, eos_ids=(1,), pad_id=0, temperature=0)
    with pytest.raises(ConfigError, match="top_p"):
        Sampling(max_new_tokens=4, eos_ids=(1,), pad_id=0, top_p=0.0)
    model = load(FIXTURES / "gpt2")  # 32 positions
    sample = make_sampler(model.config, Sampling(max_new_tokens=21, eos_ids=(1,), pad_id=0))
    with pytest.raises(ConfigError, match="12 tokens \\+ max_new_tokens=21 exceed the model's 32 positions"):
        sample(model.params, *prompts("gpt2"), jax.random.key(0))


def test_bucket_widths_are_powers_of_two_from_16_capped_at_the_padded_width():
    """Every longest-prompt length 1..W maps to the smallest power of two >= it (at least 16, at most W),
    checked against a loop over the candidate widths; W = 100 gives 4 widths (16, 32, 64, 100), not 100."""
    full = 100
    widths = set()
    for longest in range(1, full + 1):
        expected = next(w for w in (16, 32, 64, 128) if w >= longest)
        assert bucket_width(longest, full, 16) == min(expected, full)
        widths.add(bucket_width(longest, full, 16))
    assert widths == {16, 32, 64, 100}
    assert bucket_width(5, 12, 16) == 12 and bucket_width(17, 40, 8) == 32 and bucket_width(3, 40, 1) == 4
    with pytest.raises(ConfigError, match="longest prompt 0"):
        bucket_width(0, 10, 16)


def test_trimmed_prompts_generate_what_the_full_width_generates():
    """Prompts padded to 40 columns, then cut to their bucket (16): the dropped columns are padding in every
    row, so sampling with the same key gives the same tokens and log-probabilities (within 1e-5)."""
    model = load(FIXTURES / "qwen2")
    prompt, prompt_mask = (np.asarray(x) for x in prompts("qwen2"))
    wide = np.zeros((len(prompt), 40), prompt.dtype)
    wide_mask = np.zeros((len(prompt), 40), bool)
    wide[:, -prompt.shape[1] :], wide_mask[:, -prompt.shape[1] :] = prompt, prompt_mask
    assert trim_prompts(wide, wide_mask, 0)[0] is wide  # (0: never cut)
    ids, mask = trim_prompts(wide, wide_mask, 16)
    assert ids.shape == (len(prompt), 16) and (ids[:, -prompt.shape[1] :] == prompt).all()
    sampling = Sampling(max_new_tokens=10, eos_ids=EOS_IDS, pad_id=PAD, temperature=1.3)
    sample = make_sampler(model.config, sampling)
    full = sample(model.params, jnp.asarray(wide), jnp.asarray(wide_mask), jax.random.key(5))
    cut = sample(model.params, jnp.asarray(ids), jnp.asarray(mask), jax.random.key(5))
    np.testing.assert_array_equal(np.asarray(full.tokens), np.asarray(cut.tokens))
    np.testing.assert_array_equal(np.asarray(full.mask), np.asarray(cut.mask))
    np.testing.assert_allclose(np.asarray(full.logprobs), np.asarray(cut.logprobs), atol=1e-5)
