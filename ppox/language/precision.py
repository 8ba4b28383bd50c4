"""Mixed precision and gradient accumulation around the LM optimiser (optax transformations).

``float32_master``: bfloat16 parameters with a float32 master copy and float32 optimiser state, as mixed-
precision training keeps them. The gradient (computed in the parameters' dtype) is cast to float32, the inner
optimiser steps the master copy, and the update handed back moves each bfloat16 parameter to the master
rounded to bfloat16: theta_bf16 <- round_bf16(theta_32 + Delta). Steps too small to move a bfloat16 number
(lr 1e-5 on a weight of 0.05 is below half its spacing, 2^-9 relative) add up in the master instead of being
rounded away at every step.

``accumulated``: gradient accumulation. Each of k consecutive calls adds its gradient (in float32); the k-th
hands the inner optimiser their mean, g = (1/k) sum_i g_i, and the others leave the parameters as they are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class MasterState(NamedTuple):
    master: Any  # float32 copy of the parameters
    inner: Any  # the inner optimiser's state (over the master copy: float32)


def float32_master(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner`` run on a float32 master copy of the parameters; the updates it returns are float32 and take
    each parameter exactly to round(master) in its own dtype (optax.apply_updates adds them in float32)."""

    def init(params):
        master = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params)
        return MasterState(master, inner.init(master))

    def update(grads, state, params=None):
        grads = jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), grads)
        steps, inner_state = inner.update(grads, state.inner, state.master)
        master = optax.apply_updates(state.master, steps)
        if params is None:
            raise ValueError("float32_master needs the parameters in update()")
        updates = jax.tree.map(
            lambda m, p: m.astype(p.dtype).astype(jnp.float32) - p.astype(jnp.float32), master, params
        )
        return updates, MasterState(master, inner_state)

    return optax.GradientTransformation(init, update)


def accumulated(inner: optax.GradientTransformation, k: int) -> optax.GradientTransformation:
    """``inner`` stepped once every ``k`` calls, on the mean of their gradients (float32 accumulator)."""
    if k == 1:
        return inner
    return optax.MultiSteps(inner, every_k_schedule=k, use_grad_mean=True).gradient_transformation()
