"""PPO over response tokens (RLHF): the policy, a critic (a value head on a copy of the policy), and a
frozen reference. Each response token is a step; the episode ends at the response's last token.

``prepare`` turns a batch of sampled completions and their scores into training data (old log-probs from
a forward pass at the sampling temperature, the reference's, values, KL-penalised rewards, advantages);
``make_update`` compiles epochs x shuffled minibatches of the clipped PPO loss as one scan.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding

from ppox.core.losses import value_loss
from ppox.language.advantages import LMAdvantageParams, kl_penalized_rewards, masked_mean, masked_whiten
from ppox.language.config import LMConfig
from ppox.language.lora import with_adapters
from ppox.language.losses import LossInputs, k3
from ppox.language.models import forward, hidden_states
from ppox.language.precision import accumulated, float32_master
from ppox.language.run_config import LMRunConfig


class Rollout(NamedTuple):
    """One update's completions and what PPO needs of them, [B, N] per token unless said."""

    prompt: jax.Array  # [B, P] left-padded prompt ids
    prompt_mask: jax.Array  # [B, P]
    tokens: jax.Array  # response ids
    mask: jax.Array  # response tokens (a prefix of each row)
    old_logprobs: jax.Array  # log pi_old,T(y_t | ...)
    old_values: jax.Array  # V_old(prefix before y_t); 0 without a critic
    advantages: jax.Array
    returns: jax.Array  # value targets A + V
    ref_logprobs: jax.Array  # log pi_ref,T(y_t | ...) (for the KL in the loss)
    loss_mask: jax.Array  # the tokens the policy loss counts: ``mask``, less truncated completions' under
    # --mask-truncated


def init_value_head(config: LMConfig, policy_params: dict, key: jax.Array) -> dict:
    """The critic: a copy of the policy's parameters and a linear head V = h w + b on the final hidden
    state (w ~ N(0, 1 / (width + 1)), b = 0)."""
    width = config.hidden_size
    head = {
        "kernel": jax.random.normal(key, (width,), jnp.float32) / jnp.sqrt(width + 1.0),
        "bias": jnp.zeros((), jnp.float32),
    }
    return {"trunk": jax.tree.map(jnp.array, policy_params), "head": head}


def _joined(prompt, prompt_mask, tokens, mask):
    return (
        jnp.concatenate([prompt, tokens], axis=1),
        jnp.concatenate([prompt_mask.astype(bool), mask.astype(bool)], axis=1),
    )


def response_values(config: LMConfig, critic: dict, prompt, prompt_mask, tokens, mask) -> jax.Array:
    """V_t [B, N]: the head on the hidden state of the token before response token t; 0 outside ``mask``."""
    ids, full = _joined(prompt, prompt_mask, tokens, mask)
    h = hidden_states(config, critic["trunk"], ids, full)[:, prompt.shape[1] - 1 : -1]
    return jnp.where(mask, h @ critic["head"]["kernel"] + critic["head"]["bias"], 0.0)


def response_logprobs(
    config: LMConfig, params: dict, prompt, prompt_mask, tokens, mask, temperature: float, dropout_key=None
) -> tuple[jax.Array, jax.Array]:
    """(log pi_T(y_t | x, y_<t), H[pi_T(. | x, y_<t)]) [B, N] from one forward pass; 0 outside ``mask``.
    ``dropout_key``: LoRA dropout's (training)."""
    ids, full = _joined(prompt, prompt_mask, tokens, mask)
    logits = forward(config, params, ids, full, dropout_key)[:, prompt.shape[1] - 1 : -1] / temperature
    log_p = jax.nn.log_softmax(logits, axis=-1)
    taken = jnp.take_along_axis(log_p, tokens[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
    return jnp.where(mask, taken, 0.0), jnp.where(mask, entropy, 0.0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def prepare(
    config: LMRunConfig,
    model: LMConfig,
    params: dict,
    ref_params: dict,
    prompt,
    prompt_mask,
    tokens,
    mask,
    scores,
    kl_coef,
    ended=None,
):
    """(Rollout, stats): old log-probs, the reference's, values, r_t = -beta kl_t + [last] score (with
    --kl-in loss: r_t = [last] score, the KL going to the loss instead), (scaled to unit variance over the
    response tokens, mean kept, when ``whiten_rewards``), then the advantages of the --advantage variant
    (``LM_ADVANTAGES``: GAE (gamma, lambda) with the critic, or RLOO/GRPO on the sequence return sum_t r_t),
    whitened over the response tokens when ``whiten_advantages``. ``ended`` [B] bool: which completions
    ended with an end-of-sequence token (with --mask-truncated the others get no policy loss; None: all).
    stats: kl_ref, the mean per-completion sum of the --kl-estimator's kl_t (k1 by default), and the
    non-score reward -beta sum_t kl_t (0 with --kl-in loss)."""
    mask = mask.astype(bool)
    policy = policy_params(config, params, ref_params)
    old, _ = response_logprobs(model, policy, prompt, prompt_mask, tokens, mask, config.temperature)
    ref, _ = response_logprobs(model, ref_params, prompt, prompt_mask, tokens, mask, config.temperature)
    reward_beta = kl_coef if config.kl_in == "reward" else jnp.zeros_like(kl_coef)
    rewards, kl = kl_penalized_rewards(scores, old, ref, mask, reward_beta, config.kl_estimator)
    if config.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    if config.uses_critic:
        values = response_values(model, params["critic"], prompt, prompt_mask, tokens, mask)
    else:
        values = jnp.zeros_like(rewards)
    settings = LMAdvantageParams(config.gamma, config.gae_lambda, config.samples_per_prompt, config.scale_rewards)
    advantages, returns = config.variant.estimate(rewards, values, mask, settings)
    if config.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    stats = {"kl_ref": kl.sum(-1).mean(), "non_score_reward": -(reward_beta * kl).sum(-1).mean()}
    keep = mask if ended is None or not config.mask_truncated else mask & ended.astype(bool)[:, None]
    return Rollout(prompt, prompt_mask, tokens, mask, old, values, advantages, returns, ref, keep), stats


def policy_params(config: LMRunConfig, params: dict, base: dict | None) -> dict:
    """The policy's parameters: ``params["policy"]``, or with --lora-rank the frozen base with the adapters
    ``params["policy"]`` laid over it (``lora.with_adapters``: no copy of the base)."""
    if not config.lora_rank:
        return params["policy"]
    if base is None:
        raise ValueError("--lora-rank: the policy needs the frozen base parameters (base=)")
    return with_adapters(base, params["policy"])


def token_loss(config: LMRunConfig, model: LMConfig, params: dict, batch: Rollout, kl_coef=0.0, base=None, key=None):
    """L_policy + c1 mean_t 0.5 L_V - c2 mean_t H over the minibatch's response tokens, and its diagnostics
    (approx KL E[(r - 1) - log r], clip fraction, entropy). L_policy is the --loss variant's
    (``ppox.language.losses.LM_LOSSES``) over ``loss_mask``, with beta k3_t in it under --kl-in loss
    (beta: ``kl_coef``). With --lora-rank: ``base``, the frozen parameters; ``key``, LoRA dropout's."""
    mask = batch.mask
    dropout_key = key if config.lora_dropout > 0 else None
    logprobs, entropy = response_logprobs(
        model, policy_params(config, params, base), *batch[:3], mask, config.temperature, dropout_key
    )
    kl = kl_coef * k3(logprobs, batch.ref_logprobs) if config.kl_in == "loss" else jnp.zeros_like(logprobs)
    inputs = LossInputs(
        logprobs,
        batch.old_logprobs,
        batch.advantages,
        batch.loss_mask,
        jnp.where(batch.loss_mask, kl, 0.0),
        config.clip_coef,
        config.clip_high,
        config.max_new_tokens,
    )
    policy_loss, clip_fraction = config.loss_variant.loss(inputs)
    v_loss = jnp.zeros(())
    if config.uses_critic:
        values = response_values(model, params["critic"], batch.prompt, batch.prompt_mask, batch.tokens, mask)
        v_loss = 0.5 * masked_mean(value_loss(values, batch.old_values, batch.returns, config.vf_clip_coef), mask)
    mean_entropy = masked_mean(entropy, mask)
    log_ratio = jnp.where(mask, logprobs - batch.old_logprobs, 0.0)
    stats = {
        "policy_loss": policy_loss,
        "value_loss": v_loss,
        "entropy": mean_entropy,
        "approx_kl": masked_mean(jnp.expm1(log_ratio) - log_ratio, mask),
        "clip_fraction": clip_fraction,
    }
    return policy_loss + config.vf_coef * v_loss - config.ent_coef * mean_entropy, stats


def make_optimizer(config: LMRunConfig) -> optax.GradientTransformation:
    """Adam after global-norm clipping, over the policy and the critic together; stepped on the mean gradient
    of --grad-accum-steps minibatches, and for bfloat16 parameters on a float32 master copy unless
    --optimizer-dtype params (``ppox.language.precision``)."""
    adam = optax.adam(config.learning_rate, eps=config.adam_eps)
    if config.max_grad_norm is not None:
        adam = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adam)
    optimizer = accumulated(adam, config.grad_accum_steps)
    master = config.dtype == "bfloat16" and config.optimizer_dtype == "float32"
    return float32_master(optimizer) if master else optimizer


@functools.partial(jax.jit, static_argnums=(0, 1), static_argnames=("rows",))
def ppo_epochs(
    config: LMRunConfig,
    model: LMConfig,
    params: dict,
    opt_state,
    batch: Rollout,
    key: jax.Array,
    rows: NamedSharding | None = None,
    kl_coef=0.0,
    base=None,
):
    """(params, opt_state, mean stats): ``epochs`` passes over the rollout in ``minibatches`` shuffled
    minibatches of whole completions, one Adam step each, as one scan. ``rows``: how each minibatch is
    split across devices (its completions; default: as XLA chooses). ``kl_coef``: beta of the KL in the
    loss (--kl-in loss). ``base``: with --lora-rank, the frozen parameters the adapters (``params["policy"]``,
    all that is trained) lie over."""
    optimizer = make_optimizer(config)
    size, m = batch.tokens.shape[0], config.minibatches
    orders = jax.vmap(lambda k: jax.random.permutation(k, size))(jax.random.split(key, config.epochs))
    picks = orders.reshape(config.epochs * m, size // m)

    def step(carry, xs):
        params, opt_state = carry
        idx, dropout_key = xs
        minibatch = jax.tree.map(lambda x: x[idx], batch)
        if rows is not None:
            minibatch = jax.lax.with_sharding_constraint(minibatch, rows)
        loss = functools.partial(token_loss, config, model, kl_coef=kl_coef, base=base, key=dropout_key)
        grads, stats = jax.grad(loss, has_aux=True)(params, minibatch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), stats

    dropout_keys = jax.random.split(jax.random.fold_in(key, 1), len(picks))
    (params, opt_state), stats = jax.lax.scan(step, (params, opt_state), (picks, dropout_keys))
    return params, opt_state, jax.tree.map(jnp.mean, stats)
