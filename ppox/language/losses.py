"""The policy losses of PPO on text (the --loss registry), as pure functions over [B, N] response arrays.

Every variant maximises a clipped importance-weighted objective with separate clip bounds (clip-higher:
clip(r, 1 - eps_low, 1 + eps_high)); they differ in how the per-token terms are pooled into one number:

- ``token`` (DAPO, Yu et al. 2025; ppox's default): the mean over every response token of the minibatch.
- ``sequence`` (GRPO, Shao et al. 2024): each completion's token mean, then the mean over completions.
- ``dr_grpo`` (Liu et al. 2025): the sum over tokens divided by a constant, B x max_new_tokens.
- ``gspo`` (Zheng et al. 2025): one ratio per completion, s = exp(mean_t log(pi / pi_old)) (the geometric
  mean of its token ratios), clipped at the sequence level, with the completion's advantage; mean over
  completions.

With the KL to the reference in the loss (``--kl-in loss``) the objective of token t is
o_t - beta k3_t, k3_t = exp(log pi_ref - log pi) - (log pi_ref - log pi) - 1, pooled as above (for gspo: each
completion's token mean of k3). The loss is minus the pooled objective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple

import jax
import jax.numpy as jnp


class LossInputs(NamedTuple):
    """What a --loss variant reads; [B, N] arrays are 0 (or ignored) outside ``mask``."""

    logprobs: jax.Array  # log pi(y_t | ...) of the policy being trained
    old_logprobs: jax.Array  # log pi_old(y_t | ...) of the policy that sampled
    advantages: jax.Array  # A_t
    mask: jax.Array  # the tokens that count in the loss (bool [B, N])
    kl: jax.Array  # beta k3_t, the KL penalty per token (zeros when the KL is in the reward)
    eps_low: float
    eps_high: float
    max_tokens: int  # the length limit of a completion (dr_grpo's constant)


def clipped_objective(ratio: jax.Array, advantages: jax.Array, eps_low: float, eps_high: float) -> jax.Array:
    """min(r A, clip(r, 1 - eps_low, 1 + eps_high) A), per entry (to be maximised)."""
    return jnp.minimum(ratio * advantages, jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages)


def clipped_away(ratio: jax.Array, eps_low: float, eps_high: float) -> jax.Array:
    """Where r lies outside [1 - eps_low, 1 + eps_high] (float 0/1)."""
    return ((ratio < 1.0 - eps_low) | (ratio > 1.0 + eps_high)).astype(jnp.float32)


def k3(logprobs: jax.Array, ref_logprobs: jax.Array) -> jax.Array:
    """Per-token k3 estimate of KL(pi || pi_ref): exp(d) - d - 1 with d = log pi_ref - log pi (never negative)."""
    d = ref_logprobs - logprobs
    return jnp.expm1(d) - d


def token_mean(x: jax.Array, mask: jax.Array, max_tokens: int) -> jax.Array:
    """sum_{i,t} x m / sum_{i,t} m (0 for an empty mask)."""
    m = mask.astype(x.dtype)
    return (x * m).sum() / jnp.maximum(m.sum(), 1.0)


def row_means(x: jax.Array, mask: jax.Array) -> jax.Array:
    """[B]: each row's mean over its masked entries (0 for a row with none)."""
    m = mask.astype(x.dtype)
    return (x * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0)


def sequence_mean(x: jax.Array, mask: jax.Array, max_tokens: int) -> jax.Array:
    """(1 / B) sum_i (sum_t x m / sum_t m): rows without a counted token add 0."""
    return row_means(x, mask).mean()


def constant_mean(x: jax.Array, mask: jax.Array, max_tokens: int) -> jax.Array:
    """sum_{i,t} x m / (B max_tokens)."""
    return (x * mask.astype(x.dtype)).sum() / (x.shape[0] * max_tokens)


def per_token_loss(pool: Callable[[jax.Array, jax.Array, int], jax.Array]):
    """The loss of a variant with one ratio per token: -pool(min(r_t A_t, clip(r_t) A_t) - beta k3_t)."""

    def loss(x: LossInputs) -> tuple[jax.Array, jax.Array]:
        ratio = jnp.exp(jnp.where(x.mask, x.logprobs - x.old_logprobs, 0.0))
        objective = clipped_objective(ratio, x.advantages, x.eps_low, x.eps_high) - x.kl
        return -pool(objective, x.mask, x.max_tokens), token_mean(clipped_away(ratio, x.eps_low, x.eps_high), x.mask, 0)

    return loss


def gspo_loss(x: LossInputs) -> tuple[jax.Array, jax.Array]:
    """-(1 / B) sum_i [min(s_i A_i, clip(s_i) A_i) - beta mean_t k3_it], s_i = exp(mean_t log r_it), A_i the
    completion's mean token advantage; rows without a counted token add 0. Clip fraction: over completions."""
    counted = x.mask.any(-1)
    ratio = jnp.exp(row_means(x.logprobs - x.old_logprobs, x.mask))
    objective = clipped_objective(ratio, row_means(x.advantages, x.mask), x.eps_low, x.eps_high)
    objective = jnp.where(counted, objective - row_means(x.kl, x.mask), 0.0)
    clipped = (clipped_away(ratio, x.eps_low, x.eps_high) * counted).sum() / jnp.maximum(counted.sum(), 1)
    return -objective.mean(), clipped


class LMLoss(NamedTuple):
    """One --loss variant: ``loss(LossInputs) -> (loss, clip fraction)``."""

    loss: Callable[[LossInputs], tuple[jax.Array, jax.Array]]
    sequence_level: bool  # one ratio per completion: needs one advantage per completion (no per-token GAE)


LM_LOSSES: dict[str, LMLoss] = {
    "token": LMLoss(per_token_loss(token_mean), False),
    "sequence": LMLoss(per_token_loss(sequence_mean), False),
    "dr_grpo": LMLoss(per_token_loss(constant_mean), False),
    "gspo": LMLoss(gspo_loss, True),
}
"""--loss name -> variant: token (DAPO's token mean), sequence (GRPO's), dr_grpo (constant normaliser),
gspo (sequence-level ratio). ``LMRunConfig``'s choices and ``ppox.language.ppo.token_loss`` read it."""

KL_PLACES = ("reward", "loss")  # --kl-in: k1 per token in the reward (PPO-RLHF), or beta k3 in the loss (GRPO)
REWARD_SCALES = ("group", "batch", "none")  # --scale-rewards of grpo: divide by the group's std, the batch's, none

if TYPE_CHECKING:
    LMLossName = str
else:
    LMLossName = Literal[tuple(LM_LOSSES)]
