"""Tiny Gymnasium environments with known dynamics, for testing the host driver."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Countdown(gym.Env):
    """obs = [steps taken]; reward 1 per step; terminates at step 3 when the first action was 0,
    otherwise runs into the TimeLimit (5 steps) and is truncated."""

    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.first = 0, None
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.first = int(action) if self.first is None else self.first
        self.t += 1
        terminated = self.first == 0 and self.t == 3
        return np.array([float(self.t)], np.float32), 1.0, terminated, False, {}


def countdown():
    return gym.wrappers.TimeLimit(Countdown(), max_episode_steps=5)


class DictObsMultiAction(gym.Env):
    """Dict observation (Box + Discrete) and a MultiDiscrete action; reward for matching the hidden target."""

    observation_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "mode": spaces.Discrete(3)})
    action_space = spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.mode = int(self.np_random.integers(3))
        return self._obs(), {}

    def _obs(self):
        return {"pos": self.np_random.uniform(-1, 1, 2).astype(np.float32), "mode": self.mode}

    def step(self, action):
        self.t += 1
        reward = float(action[0] == self.mode) + 0.5 * float(action[1] == 1)
        return self._obs(), reward, self.t >= 10, False, {}


class ContinuousTarget(gym.Env):
    """Box action in [-2, 2]^2; reward -|a - 1|^2; episodes of 8 steps end by truncation."""

    observation_space = spaces.Box(-1, 1, (3,), np.float32)
    action_space = spaces.Box(-2, 2, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        assert np.all(np.abs(action) <= 2.0), "actions reach the env clipped to the bounds"
        return np.zeros(3, np.float32), -float(np.sum((np.asarray(action) - 1.0) ** 2)), False, self.t >= 8, {}


class MultiBinaryAction(gym.Env):
    observation_space = spaces.Box(0, 255, (4, 4, 1), np.uint8)
    action_space = spaces.MultiBinary(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros((4, 4, 1), np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.full((4, 4, 1), 255, np.uint8), float(np.sum(action)), self.t >= 4, False, {}


class TextObs(gym.Env):
    observation_space = spaces.Text(5)
    action_space = spaces.Discrete(2)


class NanRewardAfter(gym.Env):
    """A 2-action env whose reward becomes NaN after ``steps`` steps (for the non-finite guard)."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, steps: int):
        self.steps, self.t = steps, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float("nan") if self.t > self.steps else 1.0
        return np.zeros(2, np.float32), reward, False, self.t % 50 == 0, {}


class CrashOnce(gym.Env):
    """A small env whose process dies (os._exit) at step ``at``, once across all its copies: the marker file
    records it."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, marker: str, at: int):
        self.marker, self.at, self.t = marker, at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        import os

        self.t += 1
        if self.t == self.at:
            try:  # O_EXCL: of the workers that get here together, exactly one creates the marker and dies
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os._exit(1)  # the whole worker process dies, as on a crash or a lost machine
        return np.full(2, 0.1 * (action - 0.5), np.float32), 1.0, False, self.t % 20 == 0, {}


class _Broken(gym.Env):
    """Base of envs that break the Gymnasium API in one way each (for the clear-error tests)."""

    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


class WrongShapeObs(_Broken):
    def step(self, action):
        return np.zeros(5, np.float32), 0.0, False, False, {}


class ResetNotTuple(_Broken):
    def reset(self, *, seed=None, options=None):
        return np.zeros(3, np.float32)


class FourTupleStep(_Broken):
    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, {}


class NoneObs(_Broken):
    def reset(self, *, seed=None, options=None):
        return None, {}


class TextInBox(_Broken):
    def step(self, action):
        return np.array(["a", "b", "c"]), 0.0, False, False, {}


class NoSpaces(gym.Env):
    def reset(self, *, seed=None, options=None):
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


class MaskedChoice(gym.Env):
    """Four actions; only ``legal`` ones are allowed, offered through ``via`` ("method", "info" or "obs").
    An illegal action ends the episode with reward -10; a legal one pays 1. Episodes last 8 steps."""

    action_space = spaces.Discrete(4)

    def __init__(self, via: str = "method", legal=(1, 3), none_legal_at: int | None = None):
        self.via, self.legal, self.none_legal_at = via, np.isin(np.arange(4), legal), none_legal_at
        box = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = (spaces.Dict({"observation": box, "action_mask": spaces.MultiBinary(4)})
                                  if via == "obs" else box)
        if via == "method":  # sb3-contrib's convention
            self.action_masks = lambda: self._mask().astype(bool)

    def _mask(self):
        if self.none_legal_at is not None and self.t >= self.none_legal_at:
            return np.zeros(4, np.int8)
        return self.legal.astype(np.int8)

    def _out(self):
        obs = np.array([self.t / 8.0, 0.0], np.float32)
        obs = {"observation": obs, "action_mask": self._mask()} if self.via == "obs" else obs
        return obs, ({"action_mask": self._mask()} if self.via == "info" else {})

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._out()

    def step(self, action):
        self.t += 1
        ok = bool(self.legal[int(action)])
        obs, info = self._out()
        return obs, 1.0 if ok else -10.0, not ok, self.t >= 8, info


def masked_choice(via: str, **kwargs):
    return lambda: MaskedChoice(via, **kwargs)
