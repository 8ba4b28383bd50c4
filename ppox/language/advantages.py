"""Rewards and advantages for PPO on generated text, as pure functions over [B, N] response arrays.

A response is an episode whose steps are its tokens: ``mask`` [B, N] marks them (a prefix of each row:
tokens, then padding), the episode ends at the last one (no bootstrapping past it, whether it was an
end-of-sequence token or the length limit), and a sequence-level score (a reward model's) arrives there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple

import jax
import jax.numpy as jnp

from ppox.core.advantages import gae

KL_ESTIMATORS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "k1": lambda log_ratio: log_ratio,  # log pi - log pi_ref
    "k3": lambda log_ratio: jnp.expm1(-log_ratio) + log_ratio,  # (rho - 1) - log rho, rho = pi_ref / pi
}
"""--kl-estimator name -> per-token KL(pi || pi_ref) estimate from log(pi / pi_ref) (see ``token_kl``)."""


def last_token(mask: jax.Array) -> jax.Array:
    """[B, N] bool: True at the last response token of each row (nowhere in an empty row)."""
    mask = mask.astype(bool)
    after = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
    return mask & ~after


def token_kl(logprobs: jax.Array, ref_logprobs: jax.Array, estimator: str = "k1") -> jax.Array:
    """Per-token estimate of KL(pi || pi_ref) from log-probabilities of tokens drawn from pi.

    k1: log pi - log pi_ref (unbiased, can be negative); k3: (rho - 1) - log rho with rho = pi_ref / pi
    (unbiased, never negative, lower variance when the policies are close).

    Args:
        logprobs: log pi(y_t | ...) of the sampled tokens, float [B, N].
        ref_logprobs: log pi_ref(y_t | ...) of the same tokens, float [B, N].
        estimator: a name in ``KL_ESTIMATORS``.

    Returns:
        The per-token estimate, float [B, N].

    Raises:
        ValueError: ``estimator`` is not in ``KL_ESTIMATORS``.
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator {estimator!r}: one of {', '.join(KL_ESTIMATORS)}")
    return KL_ESTIMATORS[estimator](logprobs - ref_logprobs)


def kl_penalized_rewards(
    scores: jax.Array,
    logprobs: jax.Array,
    ref_logprobs: jax.Array,
    mask: jax.Array,
    kl_coef: float | jax.Array,
    estimator: str = "k1",
) -> tuple[jax.Array, jax.Array]:
    """(rewards [B, N], kl [B, N]): r_t = -beta kl_t + [t is the last token] score, 0 outside ``mask``.

    ``scores`` [B] are the sequence-level rewards; ``kl_t`` is ``token_kl`` of the policy that sampled
    (``logprobs``) against the reference policy (``ref_logprobs``); beta is ``kl_coef``."""
    mask = mask.astype(bool)
    kl = jnp.where(mask, token_kl(logprobs, ref_logprobs, estimator), 0.0)
    rewards = -kl_coef * kl + jnp.where(last_token(mask), scores[:, None], 0.0)
    return rewards, kl


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """sum(x m) / sum(m) over all entries (0 if the mask is empty)."""
    mask = mask.astype(x.dtype)
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def masked_whiten(x: jax.Array, mask: jax.Array, shift_mean: bool = True, eps: float = 1e-8) -> jax.Array:
    """(x - mu) / sqrt(sigma^2 + eps) with mu and sigma^2 (population variance) over the masked entries only;
    ``shift_mean=False`` adds mu back (scales without centring). 0 outside ``mask``."""
    mean = masked_mean(x, mask)
    var = masked_mean(jnp.square(x - mean), mask)
    whitened = (x - mean) * jax.lax.rsqrt(var + eps)
    return jnp.where(mask, whitened if shift_mean else whitened + mean, 0.0)


def response_gae(
    rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma: float = 1.0, gae_lambda: float = 0.95
) -> tuple[jax.Array, jax.Array]:
    """(advantages, returns) [B, N] over response tokens, by ``ppox.core.advantages.gae``:
    A_t = delta_t + gamma lambda A_{t+1}, delta_t = r_t + gamma V_{t+1} - V_t, the episode terminated at the
    last token (V after it is 0); returns G_t = A_t + V_t. 0 outside ``mask``.

    ``values`` [B, N]: V_t, the value of the prefix before token t is generated."""
    mask = mask.astype(bool)
    values = jnp.where(mask, values, 0.0)
    next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
    ends = last_token(mask) | ~mask  # padding steps end at once, so nothing flows back through them
    advantages = gae(
        jnp.where(mask, rewards, 0.0).T, values.T, next_values.T, ends.T, jnp.zeros_like(ends.T), gamma, gae_lambda
    ).T
    advantages = jnp.where(mask, advantages, 0.0)
    return advantages, jnp.where(mask, advantages + values, 0.0)


def rloo_advantages(scores: jax.Array) -> jax.Array:
    """REINFORCE leave-one-out (Ahmadian et al. 2024) for ``scores`` [prompts, k], k >= 2 samples per prompt:
    A_i = r_i - (1 / (k - 1)) sum_{j != i} r_j = k / (k - 1) (r_i - mean_j r_j)."""
    k = scores.shape[-1]
    if k < 2:
        raise ValueError(f"RLOO needs at least 2 samples per prompt, not {k}")
    return (scores - scores.mean(axis=-1, keepdims=True)) * (k / (k - 1))


def grpo_advantages(scores: jax.Array, scale: bool = True, eps: float = 1e-6) -> jax.Array:
    """Group-relative advantages (Shao et al. 2024, GRPO) for ``scores`` [prompts, k]:
    A_i = (r_i - mean_j r_j) / (std_j r_j + eps), the population std of the group; ``scale=False`` leaves out
    the division (the variant of Liu et al. 2025, "Dr. GRPO"). A group whose scores are all equal gets 0."""
    centred = scores - scores.mean(axis=-1, keepdims=True)
    if not scale:
        return centred
    return centred / (scores.std(axis=-1, keepdims=True) + eps)


def scaled_grpo_advantages(scores: jax.Array, scale: str = "group", eps: float = 1e-6) -> jax.Array:
    """GRPO's advantages for ``scores`` [prompts, k] under --scale-rewards: (r_i - mean_group r) divided by
    the group's std + eps ("group", ``grpo_advantages``), by the std of every score of the batch + eps
    ("batch"), or by nothing ("none", Dr. GRPO). Population standard deviations."""
    if scale == "batch":
        return (scores - scores.mean(axis=-1, keepdims=True)) / (scores.std() + eps)
    return grpo_advantages(scores, scale=scale == "group", eps=eps)


# ----------------------------------------------------------------------------- the --advantage registry


class LMAdvantageParams(NamedTuple):
    """The settings an LM advantage variant may read."""

    gamma: float
    gae_lambda: float
    samples_per_prompt: int  # k: a batch's completions are [prompts, k] in order
    scale_rewards: str = "group"  # grpo's divisor: "group", "batch" or "none" (scaled_grpo_advantages)


class LMAdvantage(NamedTuple):
    """One --advantage variant of PPO on text: ``estimate(rewards, values, mask, params) -> (advantages,
    returns)``, each [B, N] and 0 outside ``mask``; without a critic ``values`` are zeros and ``returns``
    unused."""

    estimate: Callable[[jax.Array, jax.Array, jax.Array, LMAdvantageParams], tuple[jax.Array, jax.Array]]
    uses_critic: bool  # a value head is trained beside the policy, and its V_t reach ``estimate``
    min_samples: int  # the completions per prompt it needs


def per_completion(group_advantages, rewards: jax.Array, mask: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """(advantages, returns = 0) [B, N]: ``group_advantages`` of the completions' returns sum_t r_t, grouped
    [prompts, k] in order, given to every token of each completion (0 outside ``mask``)."""
    per_sequence = group_advantages(rewards.sum(-1).reshape(-1, k))
    return jnp.where(mask, per_sequence.reshape(-1)[:, None], 0.0), jnp.zeros_like(rewards)


LM_ADVANTAGES: dict[str, LMAdvantage] = {
    "gae": LMAdvantage(lambda r, v, m, p: response_gae(r, v, m, p.gamma, p.gae_lambda), True, 1),
    "rloo": LMAdvantage(lambda r, v, m, p: per_completion(rloo_advantages, r, m, p.samples_per_prompt), False, 2),
    "grpo": LMAdvantage(
        lambda r, v, m, p: per_completion(
            lambda s: scaled_grpo_advantages(s, p.scale_rewards), r, m, p.samples_per_prompt
        ),
        False,
        2,
    ),
}
"""--advantage name -> variant: gae (per-token GAE with a critic), rloo or grpo (k completions per prompt
compared, no critic). ``LMRunConfig``'s choices, its checks and ``ppox.language.ppo`` read it."""

if TYPE_CHECKING:
    LMAdvantageName = str
    KLEstimatorName = str
else:
    LMAdvantageName = Literal[tuple(LM_ADVANTAGES)]
    KLEstimatorName = Literal[tuple(KL_ESTIMATORS)]
