"""The learner: from a collected rollout to new parameters, the same for every driver.

``batch_from_rollout`` computes advantages and value targets and flattens the rollout into a
``Batch``; ``ppo_update`` runs epochs x shuffled minibatches of ``minibatch_loss`` as one scan. The
optimiser is optax Adam (eps from the config) behind
global gradient-norm clipping, with the learning rate injected per update so that it can
be annealed linearly: lr_i = lr * (1 - i / num_updates).

The numbers that shape no array and no loop come in a ``Hyper`` (built from the config unless given), so
that the fused program can take them as a traced argument: one compilation serves every value, and a
sweep vmaps them beside the seeds. An option that is off (None) stays static: it removes code.
"""

from __future__ import annotations

from collections import namedtuple
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ppox.config.config import TRACED_FIELDS, Config
from ppox.core.advantages import ADVANTAGE_ESTIMATORS, EstimatorParams, Trajectory, discounted_returns
from ppox.core.losses import LossTerms, explained_variance, ppo_loss

if TYPE_CHECKING:  # (fields known only when the config module has run: to mypy each is Any)
    _HyperFields: Any = tuple
else:
    _HyperFields = namedtuple("Hyper", (*TRACED_FIELDS, "num_updates"))


class Hyper(_HyperFields):
    """The traced hyperparameters: the config's ``TRACED_FIELDS`` (declared with ``traced``), then the run's
    length ``num_updates`` (which the annealed learning rate counts down over). Each is a Python float (a
    constant) or an array (traced, vmappable); None means off."""

    __slots__ = ()

    @classmethod
    def from_config(cls, config: Config, dtype=None) -> Hyper:
        """The config's values: Python floats, or float arrays of ``dtype`` (to pass as a traced argument)."""
        cast = float if dtype is None else (lambda x: jnp.asarray(x, dtype))  # noqa: E731
        return cls(
            **{name: None if getattr(config, name) is None else cast(getattr(config, name)) for name in TRACED_FIELDS},
            num_updates=cast(config.num_updates),
        )


class Batch(NamedTuple):
    """One rollout's training data, flattened to [batch, ...]; for a recurrent policy kept time-major
    [T, N, ...] (whole per-env sequences), with the carry at the rollout's start and the episode starts."""

    obs: jax.Array  # the (normalised) observation the policy acted on
    actions: jax.Array  # the sampled action, unclipped
    log_probs: jax.Array  # log pi_old(a|s)
    values: jax.Array  # V_old(s)
    advantages: jax.Array
    returns: jax.Array  # value targets: advantages + values
    masks: jax.Array | None = None  # legal actions when acting (None: no masks); masked actions have probability 0
    carry: Any = None  # recurrent: each env's carry before the rollout's first step [N, ...]
    starts: jax.Array | None = None  # recurrent: obs[t] begins an episode (the carry is zeroed before it) [T, N]


class UpdateMetrics(NamedTuple):
    """Means over the update's minibatch steps (plus batch-level figures)."""

    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array
    clip_fraction: jax.Array
    explained_variance: jax.Array
    learning_rate: jax.Array
    minibatch_steps: jax.Array  # gradient steps taken (fewer than epochs * minibatches after a target-KL stop)


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam (eps = config.adam_eps), lr injectable per update. The global-norm clip (max_grad_norm, traced)
    is applied in ``ppo_update`` before it; the identity in its place keeps the optimiser state's layout."""

    def build(learning_rate):
        adam = optax.adam(learning_rate, eps=config.adam_eps)
        if config.max_grad_norm is None:
            return adam
        return optax.chain(optax.identity(), adam)

    return optax.inject_hyperparams(build)(learning_rate=config.learning_rate)


def critic_mask(params):
    """True on the critic's parameters (its trunk, cell, post-memory layers and the value head, ``Dense_0`` of the
    network's own scope), False on the actor's: a pytree shaped like ``params``, of NumPy bools (constants)."""

    def is_critic(path, leaf):
        names = [getattr(p, "key", "") for p in path]
        top = names[1] if names and names[0] == "params" and len(names) > 1 else names[0]
        return np.full(np.shape(leaf), top.startswith("critic_") or top == "Dense_0")

    return jax.tree_util.tree_map_with_path(is_critic, params)


def clip_per_group(grads, groups, max_norm):
    """Each group's part of ``grads`` clipped to norm ``max_norm`` apart (``--grad-clip per_network``):

        g_k <- g_k * min(1, max_norm / ||g_k||),   ||g_k|| = sqrt(sum over the entries of group k of g^2)

    ``grads`` a flat vector, ``groups`` a bool vector of its shape (True: the critic's entries, False: the actor's)."""
    squares = jnp.square(grads)
    norms = [jnp.sqrt(jnp.sum(jnp.where(groups == flag, squares, 0.0))) for flag in (False, True)]
    scales = [jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30)) for norm in norms]
    return grads * jnp.where(groups, scales[1], scales[0])


def init_opt_state(optimizer: optax.GradientTransformation, params):
    """Optimiser state over the parameters raveled into one vector (see ``ppo_update``)."""
    return optimizer.init(ravel_pytree(params)[0])


def advantages_and_targets(config: Config, rewards, values, next_values, terminated, truncated, hyper=None):
    """(advantages, value targets) [T, N] by ``config.advantage``, the estimator of that name in
    ``ADVANTAGE_ESTIMATORS`` (its targets: advantages + V(s_t)).

    With ``baseline=False`` (REINFORCE), the advantage is the discounted return G_t of the raw rewards,
    summed within the batch without bootstrapping from the critic. With ``bootstrap_truncated=False`` a truncated
    step counts as terminated (no V after it)."""
    hyper = Hyper.from_config(config) if hyper is None else hyper
    if not config.bootstrap_truncated:
        terminated, truncated = jnp.logical_or(terminated, truncated), jnp.zeros_like(truncated)
    if not config.baseline:
        returns = discounted_returns(rewards, jnp.zeros_like(rewards), terminated, truncated, hyper.gamma)
        return returns, returns
    estimate = ADVANTAGE_ESTIMATORS[config.advantage]
    trajectory = Trajectory(rewards, values, next_values, terminated, truncated)
    return estimate(trajectory, EstimatorParams(hyper.gamma, hyper.gae_lambda, config.nstep_n))


def learning_rate_at(config: Config, update_index, hyper=None) -> jax.Array:
    """lr * (1 - i / num_updates) when annealing, else the constant lr (both from ``hyper``: traced, so runs
    that differ only in their length share one program)."""
    hyper = Hyper.from_config(config) if hyper is None else hyper
    if not config.anneal_lr:
        return jnp.asarray(hyper.learning_rate, jnp.float32)
    return hyper.learning_rate * (1.0 - update_index / hyper.num_updates)


def batch_from_rollout(
    config: Config,
    obs,
    actions,
    log_probs,
    values,
    rewards,
    next_values,
    terminated,
    truncated,
    masks=None,
    memory=None,
    hyper=None,
) -> Batch:
    """A time-major rollout [T, N, ...] as one flat Batch [T * N, ...], with advantages and value targets
    (``advantages_and_targets``): V(s_{t+1}) of the true next observation bootstraps truncated episodes
    and the rollout's last step. ``memory`` = (carry at the start, starts): a recurrent policy's batch,
    kept time-major."""
    advantages, targets = advantages_and_targets(config, rewards, values, next_values, terminated, truncated, hyper)
    batch = Batch(obs, actions, log_probs, values, advantages, targets, masks)
    if memory is not None:
        return batch._replace(carry=memory[0], starts=memory[1])
    return jax.tree_util.tree_map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)


def minibatch_loss(params, apply_fn, minibatch: Batch, config: Config, hyper=None):
    """(loss, LossTerms) of one minibatch: ``ppo_loss`` at the current parameters, advantages normalised
    within the minibatch when norm_adv, and no value term for REINFORCE (--no-baseline)."""
    hyper = Hyper.from_config(config) if hyper is None else hyper
    if minibatch.carry is None:
        dist, values = apply_fn(params, minibatch.obs)
    else:  # the cell re-run over each whole sequence from its stored start carry
        _, dist, values = apply_fn(params, minibatch.carry, minibatch.obs, minibatch.starts)
    if minibatch.masks is not None:  # the same legal actions as when acting: log-probs and entropy over those
        dist = dist.replace(mask=minibatch.masks)
    log_prob = dist.log_prob(minibatch.actions)
    advantages = minibatch.advantages
    if config.norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    terms = ppo_loss(
        log_prob,
        minibatch.log_probs,
        advantages,
        values,
        minibatch.values,
        minibatch.returns,
        dist.entropy(),
        clip_coef=hyper.clip_coef,
        vf_clip_coef=hyper.vf_clip_coef,
        vf_coef=hyper.vf_coef if config.baseline else 0.0,  # REINFORCE: the critic gets no gradient
        ent_coef=hyper.ent_coef,
    )
    return terms.loss, terms


def shuffled_minibatches(config: Config, batch: Batch, key) -> Batch:
    """The batch in num_minibatches shuffled parts, stacked [num_minibatches, ...]: shuffled transitions, or
    for a recurrent batch shuffled whole envs (each a sequence [T, ...], with its start carry)."""
    num_mb = config.num_minibatches
    if batch.carry is None:
        order = jax.random.permutation(key, config.batch_size)
        return jax.tree_util.tree_map(lambda x: x[order].reshape((num_mb, config.minibatch_size) + x.shape[1:]), batch)
    order = jax.random.permutation(key, config.num_envs)
    envs_per_mb = config.num_envs // num_mb

    def by_env(x, axis):  # [.., N, ...] -> [num_mb, .., N / num_mb, ...]
        x = jnp.take(x, order, axis=axis)
        x = x.reshape(x.shape[:axis] + (num_mb, envs_per_mb) + x.shape[axis + 1 :])
        return jnp.moveaxis(x, axis, 0)

    carry = jax.tree_util.tree_map(lambda x: by_env(x, 0), batch.carry)
    timed = jax.tree_util.tree_map(lambda x: by_env(x, 1), batch._replace(carry=None))
    return timed._replace(carry=carry)


def ppo_update(params, opt_state, batch: Batch, key, update_index, *, apply_fn, optimizer, config: Config, hyper=None):
    """update_epochs passes, each over num_minibatches shuffled minibatches; returns (params, opt_state, metrics).

    The optimiser works on the parameters raveled into one vector: the same arithmetic as
    per-leaf Adam, in a few large ops instead of many small ones (less to compile).
    """
    hyper = Hyper.from_config(config) if hyper is None else hyper
    lr = learning_rate_at(config, update_index, hyper)
    opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
    flat_params, unravel = ravel_pytree(params)
    critic_entries = ravel_pytree(critic_mask(params))[0] if config.grad_clip == "per_network" else None
    grad_fn = jax.value_and_grad(
        lambda flat, mb: minibatch_loss(unravel(flat), apply_fn, mb, config, hyper), has_aux=True
    )

    def minibatch_step(carry, minibatch):
        params, opt_state, stopped = carry
        (_, terms), grads = grad_fn(params, minibatch)
        if hyper.max_grad_norm is not None and config.grad_clip == "per_network":
            grads = clip_per_group(grads, critic_entries, hyper.max_grad_norm)
        elif hyper.max_grad_norm is not None:  # ||g|| <= max_grad_norm: g * min(1, max_grad_norm / ||g||)
            grads, _ = optax.clip_by_global_norm(hyper.max_grad_norm).update(grads, optax.EmptyState())
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        if hyper.target_kl is None:
            return (new_params, new_opt_state, stopped), (terms, jnp.ones(()))
        # Early stop: once a minibatch's KL to the old policy exceeds target_kl, take no more steps.
        stopped = stopped | (terms.approx_kl > hyper.target_kl)
        keep = lambda new, old: jnp.where(stopped, old, new)  # noqa: E731
        params = jax.tree_util.tree_map(keep, new_params, params)
        opt_state = jax.tree_util.tree_map(keep, new_opt_state, opt_state)
        return (params, opt_state, stopped), (terms, 1.0 - stopped.astype(jnp.float32))

    def epoch(carry, epoch_key):
        return jax.lax.scan(minibatch_step, carry, shuffled_minibatches(config, batch, epoch_key))

    keys = jax.random.split(key, config.update_epochs)
    start = (flat_params, opt_state, jnp.zeros((), bool))
    terms: LossTerms  # stacked [epochs, minibatches]
    (flat_params, opt_state, _), (terms, taken) = jax.lax.scan(epoch, start, keys)
    metrics = UpdateMetrics(
        policy_loss=terms.policy_loss.mean(),
        value_loss=terms.value_loss.mean(),
        entropy=terms.entropy.mean(),
        approx_kl=terms.approx_kl.mean(),
        clip_fraction=terms.clip_fraction.mean(),
        explained_variance=explained_variance(batch.values, batch.returns),
        learning_rate=jnp.asarray(lr, jnp.float32),
        minibatch_steps=taken.sum(),
    )
    return unravel(flat_params), opt_state, metrics
