"""The learning agent: networks, how it acts (``agent``), how it learns (``learner``: one PPO update), and the
metrics read from its updates."""
