"""Gymnasium wrappers that ppox applies from the command line (and users may apply themselves)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ppox.errors import ConfigError


class HideObservation(gym.ObservationWrapper):
    """The env with the entries ``hidden`` of its flattened Box observation removed: any env made partially
    observed (``HideObservation(gym.make("CartPole-v1"), (1, 3))`` has no velocities)."""

    def __init__(self, env: gym.Env, hidden: tuple[int, ...]):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(f"--hide-obs needs a Box observation space; this env's is {type(space).__name__}")
        size = int(np.prod(space.shape))
        if any(i >= size for i in hidden):
            raise ConfigError(f"--hide-obs {list(hidden)}: this env's observation has {size} entries (0 to {size - 1})")
        self.keep = np.array([i for i in range(size) if i not in set(hidden)], np.int64)
        if not len(self.keep):
            raise ConfigError("--hide-obs hides every observation entry; leave at least one")
        self.observation_space = gym.spaces.Box(  # (Gymnasium's annotation omits dtype objects, which Box takes)
            space.low.reshape(-1)[self.keep],
            space.high.reshape(-1)[self.keep],
            dtype=space.dtype,  # type: ignore[arg-type]
        )

    def observation(self, observation):
        return np.asarray(observation).reshape(-1)[self.keep]


def hidden(factory, hide_obs: tuple[int, ...]):
    """``factory()``'s env behind HideObservation (a module-level function: a partial of it pickles for spawn)."""
    return HideObservation(factory(), hide_obs)
