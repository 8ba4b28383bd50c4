"""Several rewards of one LM run: their names, functions and weights; the score is the weighted sum.

    score_i = sum_c w_c reward_c(prompts, completions)_i

Each component is logged as its own metric, ``rewards/<name>`` (its mean score over the update's
completions). A component given as 'module:function' is named by its function, a Python callable by its
``__name__``, a reward model ``reward_model``; a name used twice gets ``_2``, ``_3``, ...
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ppox.errors import ConfigError, as_users
from ppox.language.reward_model import load_reward_model
from ppox.language.run_config import LMRunConfig
from ppox.utils.imports import import_attribute

REWARD_MODEL = "reward_model"  # the name of the reward-model component
METRIC_PREFIX = "rewards/"


class Rewards(NamedTuple):
    """The reward components of a run, in order: the --reward functions, then the --reward-model."""

    names: tuple[str, ...]
    functions: tuple[Callable[[list, list], Any], ...]
    weights: tuple[float, ...]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """rewards/<name> of each component; none for a single one (its score is ``episode_return``)."""
        return tuple(METRIC_PREFIX + name for name in self.names) if len(self.names) > 1 else ()


def component_name(reward: Any) -> str:
    """'module:function' -> function; a callable -> its __name__ (its class's for an object)."""
    if isinstance(reward, str):
        return reward.rpartition(":")[2] or reward
    return getattr(reward, "__name__", None) or type(reward).__name__


def unique(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with the second and later uses of a name suffixed _2, _3, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return tuple(out)


def make_rewards(components: Sequence[tuple[str, Callable]], weights: Sequence[float] = ()) -> Rewards:
    """Rewards of (name, function) pairs and their weights (none given: 1 each); ConfigError (one line) when
    there is no component, or the count or a value of the weights is wrong."""
    if not components:
        raise ConfigError("lm: give a reward: --reward module:function or --reward-model DIR (or reward= in Python)")
    weights = tuple(float(w) for w in weights) or (1.0,) * len(components)
    if len(weights) != len(components):
        names = ", ".join(name for name, _ in components)
        raise ConfigError(
            f"--reward-weights: {len(weights)} weights for {len(components)} rewards ({names}); give one weight "
            "per reward, in order (the --reward functions, then the reward model)"
        )
    if not all(math.isfinite(w) for w in weights):
        raise ConfigError(f"--reward-weights {' '.join(map(str, weights))}: must be finite")
    return Rewards(unique([name for name, _ in components]), tuple(f for _, f in components), weights)


def weighted_total(scores: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum_c w_c scores_c, float64 [B] (a single component with weight 1 is returned as it is)."""
    if len(scores) == 1 and weights[0] == 1.0:
        return np.asarray(scores[0], np.float64)
    return np.sum([w * np.asarray(s, np.float64) for w, s in zip(weights, scores)], axis=0)


class RewardError(ConfigError):
    """The reward failed the run: it called sys.exit, returned what is not one finite number per completion,
    or took longer than ``reward_timeout``. The run stops; its checkpoints stay, and the last completed update
    is checkpointed (``completed``, as on a ``UserCodeError``)."""

    completed: tuple | None = None


def call_reward(
    reward: Callable, prompts: list, completions: list, timeout: float | None, name: str | None = "the reward"
) -> Any:
    """``reward(prompts, completions)``; with ``timeout`` (seconds) it runs in a daemon thread, abandoned
    (RewardError) when it has not returned by then. SystemExit from the reward is a RewardError too; any other
    error it raises is a UserCodeError naming it (``name``; None: ppox's own reward model, raised as it is)."""
    if timeout is None:
        outcome = _outcome(reward, prompts, completions)
    else:
        box: list = []
        thread = threading.Thread(
            target=lambda: box.append(_outcome(reward, prompts, completions)), name="ppox-reward", daemon=True
        )
        thread.start()
        thread.join(timeout)
        if not box:
            raise RewardError(f"the reward did not return within --reward-timeout {timeout:g} s")
        outcome = box[0]
    value, error = outcome
    if isinstance(error, SystemExit):
        raise RewardError(f"the reward called sys.exit({error.code!r}) instead of returning its scores")
    if error is not None:
        raise error if name is None or not isinstance(error, Exception) else as_users(error, name)
    return value


def _outcome(reward: Callable, prompts: list, completions: list) -> tuple[Any, BaseException | None]:
    try:
        return reward(prompts, completions), None
    except (Exception, SystemExit) as err:  # noqa: BLE001  (raised again by the caller, in its thread)
        return None, err


def checked_scores(got: Any, count: int, who: str = "the reward") -> np.ndarray:
    """The reward's return value as ``count`` finite float64 scores; RewardError saying what it was otherwise
    (``who``: the reward, as the message names it)."""
    try:
        scores = np.asarray(got)
    except (ValueError, TypeError):
        scores = np.asarray(None)
    if scores.dtype.kind not in "biuf":
        kind = type(got).__name__ if scores.ndim == 0 else f"{type(next(iter(got), None)).__name__} values"
        raise RewardError(f"{who} returned {kind}: return a list of {count} numbers, one per completion")
    scores = scores.astype(np.float64).reshape(-1)
    if scores.shape != (count,):
        raise RewardError(f"{who} returned {scores.shape[0]} values for {count} completions")
    if not np.all(np.isfinite(scores)):
        raise RewardError("the reward returned a NaN or infinite score")
    return scores


def reward_components(config: LMRunConfig, reward) -> Rewards:
    """The run's rewards: ``reward`` (a function, a list of them, or a dict name -> function) or else the
    config's --reward functions, then its --reward-model; weighted by --reward-weights (one-line errors)."""
    if reward is None:
        given = [(component_name(spec), import_attribute(spec, what="--reward")) for spec in config.reward]
    elif isinstance(reward, dict):
        given = [(str(name), function) for name, function in reward.items()]
    elif isinstance(reward, (list, tuple)):
        given = [(component_name(function), function) for function in reward]
    else:
        given = [(component_name(reward), reward)]
    for name, function in given:
        if not callable(function):
            raise ConfigError(f"reward {name}: {type(function).__name__} is not a function of (prompts, completions)")
    if config.reward_model is not None:
        given.append((REWARD_MODEL, load_reward_model(config.reward_model)))
    return make_rewards(given, config.reward_weights)
