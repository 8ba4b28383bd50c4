"""A multi-agent policy's input and output as dicts by agent (``Policy.act(obs_by_agent)``): each agent's
observation made into its row as in training (``ppox.envs.jaxmarl``), the rows' actions given back by agent."""

from __future__ import annotations

import numpy as np

from ppox.config.config import Config
from ppox.envs.spec import EnvSpec


def local_size(spec: EnvSpec, config: Config) -> int:
    """The width of an agent's own observation in a row (zero-padded to the widest agent's)."""
    ids = len(spec.agents) if config.agent_id else 0
    return (spec.actor_obs or spec.obs_shape[0]) - ids


def agent_rows(spec: EnvSpec, config: Config, obs_by_agent: dict) -> tuple[np.ndarray, bool]:
    """(rows [batch * agents, D], whether one observation per agent was given) of a dict agent -> observation
    (one, or a batch [batch, ...]). With --critic world_state the critic's part is zeros: the actor does not
    read it, so the actions are those of training (``Policy.value`` of such rows is not the critic's)."""
    missing = [a for a in spec.agents if a not in obs_by_agent]
    if missing:
        raise ValueError(f"act(obs_by_agent): no observation for {', '.join(missing)} (agents: {list(spec.agents)})")
    size, count = local_size(spec, config), len(spec.agents)
    local = [np.asarray(obs_by_agent[a], np.float32) for a in spec.agents]
    single = all(x.ndim <= 1 for x in local)
    flat = [x.reshape(1, -1) if single else x.reshape(x.shape[0], -1) for x in local]
    if any(x.shape[1] > size for x in flat):
        raise ValueError(f"act(obs_by_agent): an agent's observation has more than the {size} values of training")
    batch = flat[0].shape[0]
    rows = np.zeros((batch, count, spec.obs_shape[0]), np.float32)
    for i, x in enumerate(flat):
        rows[:, i, : x.shape[1]] = x
        if config.agent_id:
            rows[:, i, size + i] = 1.0
            if spec.actor_obs:
                rows[:, i, spec.obs_shape[0] - count + i] = 1.0
    return rows.reshape(batch * count, -1), single


def agent_masks(spec: EnvSpec, mask_by_agent: dict | None) -> np.ndarray | None:
    """The legal actions of the rows [batch * agents, n] of a dict agent -> mask (one, or [batch, n])."""
    if mask_by_agent is None:
        return None
    masks = [np.asarray(mask_by_agent[a], bool) for a in spec.agents]
    return np.stack([m.reshape(-1, m.shape[-1]) for m in masks], axis=1).reshape(-1, masks[0].shape[-1])


def by_agent(spec: EnvSpec, actions: np.ndarray, single: bool) -> dict:
    """Actions of the rows [batch * agents] as a dict agent -> action (one, or [batch])."""
    per_agent = np.asarray(actions).reshape(-1, len(spec.agents))
    return {a: per_agent[0, i] if single else per_agent[:, i] for i, a in enumerate(spec.agents)}
