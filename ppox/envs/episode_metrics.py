"""Metrics of finished episodes that a JAX env contributes to a run's metrics (metrics.csv, TensorBoard).

A family's env (the object its fused maker returns) may define, besides the gymnax API:

- ``episode_metric_names`` (a tuple of names) and ``episode_metrics(state, info) -> {name: scalar}``: values
  of the episode that ended at a step, read from the state that step reached and the step's info. A run
  logs, per update, their mean over the episodes that ended in the update's rollout (NaN where none did),
  as it logs ``episode_return``;
- ``summary_metric_names`` and ``summary_metrics(means) -> {name: scalar}``: metrics computed from those
  means and ``means["episode_return"]`` (Craftax's score, a function of the achievement success rates).

Envs without them add nothing. The functions here are pure: they are traced inside the fused program.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp


def episode_names(env: Any) -> tuple[str, ...]:
    """The names of the per-episode values ``env`` gives (none for an env without ``episode_metrics``)."""
    return tuple(getattr(env, "episode_metric_names", ())) if hasattr(env, "episode_metrics") else ()


def extra_metric_names(env: Any) -> tuple[str, ...]:
    """Every metric ``env`` adds to a run's metrics: its per-episode means, then its summaries."""
    summaries = tuple(getattr(env, "summary_metric_names", ())) if hasattr(env, "summary_metrics") else ()
    return episode_names(env) + summaries


def step_values(env: Any, state: Any, info: Any) -> dict[str, Any]:
    """``env``'s per-episode values at one step (meaningful where the episode ended there); {} for an env
    without them."""
    if not episode_names(env):
        return {}
    values = env.episode_metrics(state, info)
    return {name: jnp.asarray(values[name], jnp.float32) for name in episode_names(env)}


def update_means(env: Any, values: dict[str, Any], ended: Any, episode_return: Any) -> dict[str, Any]:
    """Per name, the mean of ``values`` (arrays [T, num_envs]) over the steps where ``ended`` (an episode
    ended there), NaN where none did; then ``env``'s summaries of those means and of ``episode_return`` (the
    mean return of the same episodes)."""
    count = ended.sum()
    means = {
        name: jnp.where(count > 0, jnp.where(ended, v, 0.0).sum() / jnp.maximum(count, 1), jnp.nan)
        for name, v in values.items()
    }
    names = tuple(getattr(env, "summary_metric_names", ())) if hasattr(env, "summary_metrics") else ()
    if names:
        summaries = env.summary_metrics({**means, "episode_return": episode_return})
        means.update({name: jnp.asarray(summaries[name], jnp.float32) for name in names})
    return means
