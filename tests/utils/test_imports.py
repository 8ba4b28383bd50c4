"""'module:attribute' options (--env, --reward) import from the current folder, as ``python -m`` would, through
one importer with one-line errors; ``ppox lm train --reward rewards:score`` works from the folder of rewards.py."""

import json
import os
import subprocess
import sys

import pytest

from ppox.errors import ConfigError
from ppox.lm.training import import_reward
from ppox.utils.imports import import_attribute
from tests.helpers import FIXTURES, ROOT

REWARD = "def score(prompts, completions):\n    return [len(c) / 10 for c in completions]\n"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """``tmp_path`` as the current folder, and not on the import path (as under the `ppox` console script)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in ("d_rewards", "d_broken", "d_needs"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_a_reward_in_the_current_folder_imports(here):
    (here / "d_rewards.py").write_text(REWARD + "LIMIT = 3\n")
    assert import_reward("d_rewards:score")(["p"], ["abcde"]) == [0.5]
    assert import_attribute("d_rewards:LIMIT", what="--thing", need_callable=False) == 3


@pytest.mark.parametrize("spec, words", [
    ("nope", "--reward nope: write it module:function"),
    ("d_missing_xyz:score", "no module named 'd_missing_xyz' in the current folder"),
    ("d_rewards:nothing", "module 'd_rewards' ("),
    ("d_rewards:LIMIT", "'LIMIT' is a int, not a function"),
    ("d_broken:score", "cannot import it (ZeroDivisionError: division by zero)"),
    ("d_needs:score", "'d_needs' imports 'd_absent_xyz', which is missing"),
])
def test_import_errors_are_one_line_and_say_what(here, spec, words):
    (here / "d_rewards.py").write_text(REWARD + "LIMIT = 3\n")
    (here / "d_broken.py").write_text("1 / 0\n")
    (here / "d_needs.py").write_text("import d_absent_xyz\n")
    with pytest.raises(ConfigError) as caught:
        import_attribute(spec, what="--reward")
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_env_entry_points_use_the_same_importer(here):
    from ppox.envs.gym_make import env_factory

    (here / "d_rewards.py").write_text("import gymnasium\nclass Env(gymnasium.Env):\n    pass\n")
    assert env_factory("d_rewards:Env").__name__ == "Env"
    with pytest.raises(ConfigError, match="--env d_missing_xyz:Env: cannot import it: no module named"):
        env_factory("d_missing_xyz:Env")


def test_ppox_lm_train_finds_the_reward_in_the_current_folder(tmp_path):
    """As the `ppox` console script runs it: ``python -P`` leaves the current folder off the import path."""
    (tmp_path / "rewards.py").write_text(REWARD)
    prompts = ["the cat", "a dog sat", "policy", "ratio"]  # (the shapes of tests/lm/test_cli.py: its compiled programs)
    (tmp_path / "prompts.jsonl").write_text("\n".join(json.dumps({"prompt": p}) for p in prompts))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PPOX_CACHE_DIR": ""}
    done = subprocess.run(
        [sys.executable, "-P", "-m", "ppox.cli", "lm", "train", "--model", str(FIXTURES / "lm" / "gpt2"), "--prompts",
         "prompts.jsonl", "--reward", "rewards:score", "--updates", "1", "--prompts-per-update", "4",
         "--max-new-tokens", "4", "--no-save", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 updates" in done.stdout
