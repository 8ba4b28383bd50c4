"""Callbacks and stopping rules (issue 33, item 1): a callback sees each update and evaluation and may stop the run,
which saves a checkpoint and the policy and is finished; ``--stop-at-return R`` on the command line; SB3's two
stopping rules; a callback that raises ends the run as an error of the user's code."""

import json
import math

import numpy as np
import pytest

import ppox
import ppox.lm
from ppox.cli import main
from ppox.errors import CheckpointError, ConfigError, UserCodeError
from ppox.run.callbacks import EvaluationInfo, StopOnNoImprovement, StopOnReturn
from ppox.storage.checkpoint import list_checkpoints, read_newest_checkpoint
from tests import toy_envs
from tests.helpers import FIXTURES

# the host driver on a toy env: 40 updates of 32 steps (chunks of up to 2 updates), compiled in about a second
HOST = dict(num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1, total_timesteps=1280, progress=False,
            tensorboard=False)


class Recorder(ppox.Callback):
    """Records what it is shown; stops the run after update ``stop_at`` (None: never)."""

    def __init__(self, stop_at=None):
        self.updates, self.evaluations, self.stop_at = [], [], stop_at

    def on_update(self, info):
        self.updates.append(info)
        return False if info.update == self.stop_at else None

    def on_evaluation(self, info):
        self.evaluations.append(info)


def test_a_callback_sees_every_update_and_stopping_saves_a_finished_run(tmp_path, capsys):
    """(Before: TypeError, train() got an unexpected keyword argument 'callbacks'.)"""
    seen = Recorder(stop_at=5)
    result = ppox.train(env=toy_envs.countdown, callbacks=[seen], **HOST, run_dir=str(tmp_path), run_name="r")
    done = result.metrics["episode_return"].shape[1]
    assert 6 <= done < 40 and not result.interrupted
    assert result.stopped_by == "Recorder.on_update returned False at update 5"
    assert [i.update for i in seen.updates] == list(range(done))  # every update once, in order, the chunk's rest too
    info = seen.updates[3]
    assert info.global_step == 4 * 32 and info.num_updates == 40
    assert info.metrics["episode_return"] == pytest.approx(np.nanmean(result.metrics["episode_return"][:, 3]))
    assert info.per_seed["policy_loss"].shape == (1,)
    run = tmp_path / "r"
    assert (run / "policy.safetensors").is_file()
    assert read_newest_checkpoint(run).meta["stopped_by"] == result.stopped_by
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == result.stopped_by and summary["interrupted"] is False
    assert f"stopped early after {done} of 40 updates: Recorder.on_update returned False" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="already finished"):  # finished early, not interrupted
        ppox.resume(run, env=toy_envs.countdown)


def test_stop_at_return_on_the_command_line(tmp_path, capsys):
    """`ppox train --stop-at-return R` stops at the first update whose mean return reaches R, says why in a line, and
    leaves the checkpoint and the policy. (Before: the flag was parsed and the run went on to its end.)"""
    args = ["train", "--env", "tests.toy_envs:countdown", "--num-envs", "2", "--num-steps", "16",
            "--num-minibatches", "2", "--update-epochs", "1", "--total-timesteps", "1280", "--no-progress",
            "--no-tensorboard", "--run-dir", str(tmp_path), "--run-name", "r", "--stop-at-return", "3"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "stopped early after" in err and "reached --stop-at-return 3; the run is finished" in err, err
    run = tmp_path / "r"
    assert (run / "policy.safetensors").is_file() and list_checkpoints(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["total_timesteps"] < summary["planned_timesteps"] and "--stop-at-return" in summary["stopped_by"]


def test_stop_on_return_watches_evaluations_where_the_run_has_them(tmp_path):
    seen = Recorder()
    result = ppox.train(env=toy_envs.countdown, callbacks=[seen, StopOnReturn(1.0)], **HOST, eval_episodes=2,
                        checkpoint_every=4 * 32, save=False)
    assert result.stopped_by.startswith("the mean evaluation return ") and "after update 3 reached StopOnReturn(1.0)" \
        in result.stopped_by
    assert result.metrics["episode_return"].shape[1] == 4 and [e.update for e in seen.evaluations] == [3]
    assert seen.evaluations[0].global_step == 4 * 32 and len(seen.evaluations[0].returns) == 1


def test_stop_on_no_improvement_counts_as_sb3_does():
    rule = StopOnNoImprovement(max_no_improvement_evals=2, min_evals=1)
    said = [rule.on_evaluation(EvaluationInfo(i, 0, r, (r,))) for i, r in enumerate([5, 1, 6, 6, 2, 3])]
    assert said == [None, None, None, None, None, False]  # evaluations 4, 5, 6 do not beat 6: more than 2
    assert "did not improve in 3 evaluations" in rule.reason
    with pytest.raises(ConfigError, match="set eval_episodes"):
        ppox.train(env=toy_envs.countdown, callbacks=[StopOnNoImprovement(3)], **HOST, save=False)


@pytest.mark.parametrize("callbacks, words", [
    ([print], "is not a callback"),
    ([StopOnReturn], "is not a callback"),
])
def test_what_is_not_a_callback_is_refused_before_any_work(tmp_path, callbacks, words):
    with pytest.raises(ConfigError, match=words):
        ppox.train(env=toy_envs.countdown, callbacks=callbacks, **HOST, run_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())
    for bad in (math.nan, "10", None):
        with pytest.raises(ConfigError, match="StopOnReturn"):
            StopOnReturn(bad)


class Raises(ppox.Callback):
    def on_update(self, info):
        if info.update == 2:
            raise ConnectionError("the dashboard went away")


def test_a_callback_that_raises_ends_the_run_as_the_users_error(tmp_path):
    with pytest.raises(UserCodeError, match="the callback Raises.on_update raised ConnectionError") as caught:
        ppox.train(env=toy_envs.countdown, callbacks=[Raises()], **HOST, run_dir=str(tmp_path), run_name="r")
    err = caught.value
    assert isinstance(err.__cause__, ConnectionError) and "test_callbacks.py" in err.user_frames()
    assert err.saved == read_newest_checkpoint(tmp_path / "r").update >= 3  # the chunk in flight finished first
    assert err.resume.startswith("ppox.resume(")  # (an env factory: the resume is in Python)
    resumed = ppox.resume(tmp_path / "r", env=toy_envs.countdown)
    assert resumed.metrics["episode_return"].shape[1] == 40 and resumed.stopped_by is None


def test_a_language_model_run_takes_callbacks(tmp_path):
    ones = lambda prompts, completions: [1.0] * len(completions)  # noqa: E731
    result = ppox.lm.train(model=str(FIXTURES / "lm" / "gpt2"), prompts=["the cat", "a dog"], reward=ones,
                           prompts_per_update=2, max_new_tokens=2, epochs=1, tensorboard=False, updates=5,
                           callbacks=[StopOnReturn(0.5)], run_dir=str(tmp_path), run_name="r")
    assert result.stopped_by.startswith("the mean episode return 1 of update 0 reached StopOnReturn(0.5)")
    assert result.metrics["episode_return"].shape[1] == 1
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["stopped_by"] == result.stopped_by
    with pytest.raises(CheckpointError, match="already finished .*stopped early by"):
        ppox.lm.resume(tmp_path / "r")
