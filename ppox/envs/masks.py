"""Action masks: which actions are legal now, taken from whichever the env offers, in this order:
an ``action_masks()`` method (sb3-contrib's convention), ``info["action_mask"]`` (Gymnasium's toy-text
envs, e.g. Taxi), or a Dict observation with an ``action_mask`` entry (PettingZoo's convention).

A mask is a bool vector over the flat action layout: n entries for Discrete(n), the concatenation of
each dimension's entries for MultiDiscrete (as sb3-contrib's MaskablePPO takes them). True = legal.
"""

from __future__ import annotations

import numpy as np

from ppox.envs.contract import EnvContractError, env_name


def mask_source(env, obs, info) -> str | None:
    """Where ``env`` offers its masks ("method", "info" or "obs"), judged from its first reset; None: nowhere."""
    try:
        method = env.get_wrapper_attr("action_masks")
    except AttributeError:
        method = None
    if callable(method):
        return "method"
    if isinstance(info, dict) and "action_mask" in info:
        return "info"
    if isinstance(obs, dict) and "action_mask" in obs:
        return "obs"
    return None


def read_mask(env, source: str | None, obs, info, size: int) -> np.ndarray:
    """The env's current mask as bool [size]; EnvContractError if it is malformed."""
    if source == "method":
        mask = env.get_wrapper_attr("action_masks")()
    elif source == "info":
        mask = info.get("action_mask") if isinstance(info, dict) else None
    else:
        mask = obs.get("action_mask") if isinstance(obs, dict) else None
    mask = np.asarray(mask).astype(bool).reshape(-1) if mask is not None else None
    if mask is None or mask.shape != (size,):
        raise EnvContractError(
            f"env {env_name(env)}: its action mask ({source}) should be {size} booleans, got "
            f"{None if mask is None else list(mask.shape)}"
        )
    return mask


def check_some_legal(masks: np.ndarray, dims: tuple[int, ...], env, step: int) -> None:
    """EnvContractError naming the step and the env if a mask [envs, sum(dims)] allows no action at all in some
    action dimension."""
    parts = np.split(masks, np.cumsum(dims)[:-1], axis=-1)
    none = ~np.stack([part.any(axis=-1) for part in parts], axis=-1).all(axis=-1)
    if none.any():
        index = int(np.flatnonzero(none)[0])
        raise EnvContractError(
            f"env {env_name(env)}: every action is masked at step {step} (env {index}); a mask "
            "must allow at least one action"
        )


def legal(masks: np.ndarray, actions: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Per env: whether ``actions`` (indices, [envs] or [envs, dims]) are all allowed by ``masks`` [envs, sum(dims)]."""
    if len(dims) == 1 and actions.ndim == 1:
        return masks[np.arange(len(actions)), actions]
    offsets = np.concatenate([[0], np.cumsum(dims)[:-1]])
    return masks[np.arange(len(actions))[:, None], actions + offsets].all(axis=-1)
