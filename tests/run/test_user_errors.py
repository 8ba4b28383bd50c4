"""Errors in the user's code are shown as the user's (issue 33, item 7), and messages that are right where they
appear (item 8): an env or a reward that raises (OSError, ConnectionError, ...) stops the run with status 1, a
message that names that code and shows its own frames, the last completed update checkpointed, and a resume
command that works as printed; the resume printed after Ctrl-C of an LM run names its --reward; the "no episode
has ended" warning knows the env's own time limit."""

import json
import shlex
import sys
import types

import gymnasium
import numpy as np
import pytest

import ppox
from ppox.cli import main
from ppox.envs import atari
from ppox.envs.spec import ATARI_FRAME_SKIP, episode_step_limit
from ppox.errors import UserCodeError
from ppox.run import loop
from ppox.storage.checkpoint import list_checkpoints, read_newest_checkpoint
from tests.helpers import FIXTURES, stop_after_checks

BROKEN_ENV = '''
import pathlib
import gymnasium as gym
import numpy as np

FLAG = pathlib.Path(__file__).with_name("broken")  # while it exists, the 150th step of all envs fails


class Broken(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        Broken.steps += 1
        self.t += 1
        if Broken.steps == 150 and FLAG.exists():
            read_scores()
        return np.zeros(2, np.float32), 1.0, self.t >= 5, False, {}


def read_scores():
    return open("/nonexistent/scores.txt").read()
'''

REWARD = '''
import pathlib

FLAG = pathlib.Path(__file__).with_name("broken")  # while it exists, the 3rd call fails
CALLS = []


def score(prompts, completions):
    CALLS.append(1)
    if len(CALLS) == 3 and FLAG.exists():
        raise ConnectionError("the scoring service went away")
    return [len(c) / 10 for c in completions]
'''


def user_code(tmp_path, monkeypatch, name, source):
    (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "broken").write_text("")
    monkeypatch.delitem(sys.modules, name, raising=False)  # (this test's file, not an earlier test's)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)


def printed_resume(err: str) -> list[str]:
    """The arguments of the `ppox ...` command that the message says continues the run."""
    command = shlex.split(err.split("continue with: ")[1].splitlines()[0])
    assert command[0] == "ppox"
    return command[1:]


def test_an_env_that_raises_is_shown_as_the_users_and_the_run_resumes_as_printed(tmp_path, monkeypatch, capsys):
    """(Before: `ppox train: error: [Errno 2] No such file or directory: '/nonexistent/scores.txt'`, status 2, no
    checkpoint.) 2 envs x 16 steps an update: the 150th env step is in the 5th update, so 4 are checkpointed."""
    user_code(tmp_path, monkeypatch, "brokenenv", BROKEN_ENV)
    args = ["train", "--env", "brokenenv:Broken", "--num-envs", "2", "--num-steps", "16", "--num-minibatches", "2",
            "--update-epochs", "1", "--total-timesteps", "2048", "--no-progress", "--no-tensorboard",
            "--run-dir", str(tmp_path), "--run-name", "r"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "ppox train: stopped: the env brokenenv:Broken raised an error (in your code, not ppox's)" in err, err
    frames = err.split("most recent call last):\n")[1].split("\nFileNotFoundError")[0]
    assert "brokenenv.py" in frames and "in read_scores" in frames and "in step" in frames
    assert "ppox" not in frames and "gymnasium" not in frames
    assert "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/scores.txt'" in err
    assert read_newest_checkpoint(tmp_path / "r").update == 4 and "4 updates were completed" in err
    assert printed_resume(err) == ["train", "--resume", str(tmp_path / "r"), "--env", "brokenenv:Broken"]
    (tmp_path / "broken").unlink()
    assert main(printed_resume(err)) == 0
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["total_timesteps"] == 2048


def test_from_python_the_error_is_a_user_code_error_caused_by_the_users_exception(tmp_path, monkeypatch):
    user_code(tmp_path, monkeypatch, "brokenenv", BROKEN_ENV)
    with pytest.raises(UserCodeError, match=r"the env brokenenv:Broken raised FileNotFoundError: \[Errno 2") as caught:
        ppox.train(env="brokenenv:Broken", num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1,
                   total_timesteps=640, progress=False, tensorboard=False, save=False)
    assert isinstance(caught.value.__cause__, FileNotFoundError) and caught.value.saved is None


def test_a_reward_that_raises_stops_with_the_last_update_saved_and_the_printed_resumes_work(tmp_path, monkeypatch,
                                                                                            capsys):
    """(Before: status 2, `ppox lm train: error: ...` with no checkpoint; the resume printed after Ctrl-C lacked
    --reward, so it was refused.) The 3rd reward call fails: 2 updates are checkpointed; the resume printed goes on,
    is interrupted, and the resume printed then finishes the run."""
    user_code(tmp_path, monkeypatch, "rewards", REWARD)
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["the cat", "a dog sat"]))
    assert main(["lm", "train", "--model", str(FIXTURES / "lm" / "gpt2"), "--prompts", "p.jsonl", "--reward",
                 "rewards:score", "--updates", "4", "--prompts-per-update", "2", "--max-new-tokens", "2", "--epochs",
                 "1", "--no-tensorboard", "--no-progress", "--run-dir", str(tmp_path), "--run-name", "r"]) == 1
    err = capsys.readouterr().err
    assert "ppox lm train: stopped: the reward rewards:score raised an error (in your code, not ppox's)" in err, err
    assert "rewards.py" in err and "ConnectionError: the scoring service went away" in err
    assert read_newest_checkpoint(tmp_path / "r").update == 2
    resume = printed_resume(err)
    assert resume == ["lm", "train", "--resume", str(tmp_path / "r"), "--reward", "rewards:score"]
    (tmp_path / "broken").unlink()
    listening = loop.StopOnSignal
    monkeypatch.setattr(loop, "StopOnSignal", stop_after_checks(1))  # Ctrl-C during the first update
    assert main(resume) == 0
    err = capsys.readouterr().err
    assert "ppox: stopped after 3 of 4 updates; to continue: " in err, err
    monkeypatch.setattr(loop, "StopOnSignal", listening)
    assert main(printed_resume(err.replace("to continue: ", "continue with: "))) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["updates"] == 4
    assert [c.name for c in list_checkpoints(tmp_path / "r")][-1] == "update_00000004.safetensors"


def test_the_no_episode_warning_knows_the_envs_own_time_limit(capsys):
    """(Before: on ALE/Pong-v5, whose games last up to 27,000 steps, a tenth of a short run warned that no episode
    had ended and told the user to set a time limit.)"""
    gymnasium.register_envs(pytest.importorskip("ale_py"))
    assert ATARI_FRAME_SKIP == atari.FRAME_SKIP and episode_step_limit("ALE/Pong-v5") == 27_000
    assert episode_step_limit("CartPole-v1") == 500 and episode_step_limit("CartPole-v1", 20) == 20
    assert episode_step_limit("brokenenv:Broken") is None and episode_step_limit("Breakout-MinAtar") is None

    def warned(env, updates_done):
        config = types.SimpleNamespace(env=env, max_episode_steps=None, num_updates=100, num_steps=128, batch_size=1024)
        loop.warn_if_no_episode_ended([{"episode_count": np.zeros((1, updates_done))}], updates_done, config)
        return capsys.readouterr().err

    assert warned("ALE/Pong-v5", 10) == ""  # 1,280 steps per env: a game may simply not have ended yet
    assert "though the env's time limit is 27,000 steps" in warned("ALE/Pong-v5", 211)  # past 27,000 per env
    unknown = warned("brokenenv:Broken", 10)
    assert "no episode has ended in the first 10,240 steps (1,280 per env): an episode may simply be long" in unknown
    assert "set one with --max-episode-steps N" in unknown
    game = warned("pettingzoo/mpe2.simple_spread_v3", 10)  # (a PettingZoo run refuses --max-episode-steps)
    assert "the game sets one (e.g. max_cycles)" in game and "--max-episode-steps" not in game
