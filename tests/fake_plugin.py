"""A package that registers a Gymnasium env when imported, as ale_py, minigrid and highway_env do."""

import gymnasium as gym

gym.register("FakePlugin-v0", entry_point="tests.toy_envs:countdown")
