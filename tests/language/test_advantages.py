"""Rewards and advantages over response tokens, against float64 references and the identities they promise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppox.language.advantages import (grpo_advantages, kl_penalized_rewards, last_token, masked_whiten, response_gae,
                                      rloo_advantages, token_kl)

LENGTHS = [5, 1, 3, 0, 6]  # an empty row too


def response_mask(lengths=LENGTHS, n=6) -> np.ndarray:
    return np.arange(n)[None, :] < np.asarray(lengths)[:, None]


def test_last_token_marks_the_end_of_each_response():
    ends = np.asarray(last_token(jnp.asarray(response_mask())))
    assert ends.sum(1).tolist() == [1, 1, 1, 0, 1]
    assert [int(np.argmax(row)) for row in ends[[0, 1, 2, 4]]] == [4, 0, 2, 5]


def test_kl_penalty_is_per_token_and_the_score_lands_on_the_last_token():
    mask = response_mask()
    rng = np.random.default_rng(0)
    logprobs, ref = -rng.random((5, 6)), -rng.random((5, 6))
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    rewards, kl = (np.asarray(a) for a in kl_penalized_rewards(jnp.asarray(scores), jnp.asarray(logprobs),
                                                                jnp.asarray(ref), jnp.asarray(mask), kl_coef=0.1))
    expected_kl = np.where(mask, logprobs - ref, 0.0)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-6)
    expected = -0.1 * expected_kl
    for row, n in enumerate(LENGTHS):
        if n:
            expected[row, n - 1] += scores[row]
    np.testing.assert_allclose(rewards, expected, rtol=1e-6, atol=1e-7)
    assert rewards[3].tolist() == [0.0] * 6  # an empty response gets nothing, not even its score


def test_kl_estimators_are_unbiased_and_k3_is_never_negative():
    """E_{x~p}[k1] = E_{x~p}[k3] = KL(p || q), by Monte Carlo over 200k draws from p."""
    p, q = np.array([0.5, 0.3, 0.15, 0.05]), np.array([0.25, 0.25, 0.25, 0.25])
    draws = np.asarray(jax.random.categorical(jax.random.key(0), jnp.log(jnp.asarray(p)), shape=(200_000,)))
    logp, logq = jnp.asarray(np.log(p)[draws]), jnp.asarray(np.log(q)[draws])
    exact = float(np.sum(p * np.log(p / q)))
    for estimator in ("k1", "k3"):
        assert abs(float(token_kl(logp, logq, estimator).mean()) - exact) < 0.01
    assert float(token_kl(logp, logq, "k3").min()) >= 0
    with pytest.raises(ValueError, match="estimator 'k2'"):
        token_kl(logp, logq, "k2")


def test_masked_whiten_uses_only_the_masked_entries():
    mask = response_mask()
    x = np.random.default_rng(1).standard_normal((5, 6))
    garbage = np.where(mask, x, 1e6)
    out = np.asarray(masked_whiten(jnp.asarray(garbage), jnp.asarray(mask)))
    chosen = x[mask]
    np.testing.assert_allclose(out[mask], (chosen - chosen.mean()) / np.sqrt(chosen.var() + 1e-8), rtol=1e-5)
    assert (out[~mask] == 0).all()
    kept_mean = np.asarray(masked_whiten(jnp.asarray(x), jnp.asarray(mask), shift_mean=False))
    np.testing.assert_allclose(kept_mean[mask], out[mask] + chosen.mean(), rtol=1e-5)


def gae_reference(rewards, values, lengths, gamma, lam):
    """Float64 loop, one response at a time; the value after the last token is 0."""
    advantages = np.zeros_like(rewards, dtype=np.float64)
    for row, n in enumerate(lengths):
        running = 0.0
        for t in reversed(range(n)):
            next_value = values[row, t + 1] if t + 1 < n else 0.0
            running = rewards[row, t] + gamma * next_value - values[row, t] + gamma * lam * running
            advantages[row, t] = running
    return advantages


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (1.0, 0.0)])
def test_response_gae_equals_the_reference_and_ignores_padding(gamma, lam):
    mask = response_mask()
    rng = np.random.default_rng(2)
    rewards, values = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    padded = lambda a: jnp.asarray(np.where(mask, a, 99.0), jnp.float32)  # noqa: E731  (padding must not leak)
    advantages, returns = response_gae(padded(rewards), padded(values), jnp.asarray(mask), gamma, lam)
    expected = gae_reference(rewards, values, LENGTHS, gamma, lam)
    np.testing.assert_allclose(np.asarray(advantages), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(returns), np.where(mask, expected + values, 0.0), atol=1e-5)


def test_response_gae_identities():
    """lambda = 1, gamma = 1: A_t = sum_{s >= t} r_s - V_t (Monte Carlo); lambda = 0: the TD residual."""
    mask = response_mask()
    rng = np.random.default_rng(3)
    rewards, values = np.where(mask, rng.standard_normal((5, 6)), 0), np.where(mask, rng.standard_normal((5, 6)), 0)
    monte_carlo, _ = response_gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), 1.0, 1.0)
    to_go = np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]
    np.testing.assert_allclose(np.asarray(monte_carlo), np.where(mask, to_go - values, 0), atol=1e-5)
    td, _ = response_gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), 1.0, 0.0)
    next_values = np.concatenate([values[:, 1:], np.zeros((5, 1))], axis=1)  # 0 after the last token
    np.testing.assert_allclose(np.asarray(td), np.where(mask, rewards + next_values - values, 0), atol=1e-5)


def test_rloo_is_the_score_minus_the_mean_of_the_others():
    scores = np.random.default_rng(4).standard_normal((3, 4))
    out = np.asarray(rloo_advantages(jnp.asarray(scores)))
    for g in range(3):
        for i in range(4):
            np.testing.assert_allclose(out[g, i], scores[g, i] - np.delete(scores[g], i).mean(), rtol=1e-5)
    np.testing.assert_allclose(out.sum(1), 0, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 samples"):
        rloo_advantages(jnp.ones((3, 1)))


def test_grpo_standardises_each_group():
    scores = np.random.default_rng(5).standard_normal((3, 8)) * 4 + 2
    out = np.asarray(grpo_advantages(jnp.asarray(scores)))
    np.testing.assert_allclose(out.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(1), 1, atol=1e-4)
    np.testing.assert_allclose(np.asarray(grpo_advantages(jnp.asarray(scores), scale=False)),
                               scores - scores.mean(1, keepdims=True), atol=1e-5)
    assert (np.asarray(grpo_advantages(jnp.full((2, 4), 3.0))) == 0).all()  # all equal: no signal
