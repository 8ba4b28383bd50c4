"""--resume RUN --total-timesteps N (issue 33, item 3): a finished run goes on to a new end; and --resume takes
--no-progress (item 8)."""

import csv
import json
import shutil

import numpy as np
import pytest

import ppox
from ppox.errors import CheckpointError, ConfigError
from ppox.storage.checkpoint import read_newest_checkpoint
from tests.helpers import QUICK, policy_arrays


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished fused CartPole run of 4 updates of 512 steps (the tests continue copies of it)."""
    return ppox.train(env="CartPole-v1", run_dir=str(tmp_path_factory.mktemp("runs")), run_name="done", **QUICK)


@pytest.fixture
def run(finished, tmp_path):
    return shutil.copytree(finished.run_path, tmp_path / "run")


def test_a_finished_run_goes_on_to_a_new_end(finished, run):
    """The new end is the run's from then on (config.json, summary, checkpoint, policy file); metrics.csv goes
    on; the learning rate anneals over the new end: lr (1 - i / 8) from update 4 on, after lr (1 - i / 4)."""
    result = ppox.resume(run, total_timesteps=4096)
    assert result.metrics["episode_return"].shape == (1, 8)
    np.testing.assert_array_equal(result.metrics["policy_loss"][:, :4], finished.metrics["policy_loss"])
    assert json.loads((run / "config.json").read_text())["total_timesteps"] == 4096
    assert json.loads((run / "summary.json").read_text())["planned_timesteps"] == 4096
    newest = read_newest_checkpoint(run)
    assert (newest.update, newest.meta["config"]["total_timesteps"]) == (8, 4096)
    assert ppox.load(run).config.total_timesteps == 4096
    np.testing.assert_array_equal(policy_arrays(run)["params/params/Dense_1/kernel"],
                                  result.params["params"]["Dense_1"]["kernel"])
    with open(run / "metrics.csv") as file:
        assert [int(row["update"]) for row in csv.DictReader(file)] == list(range(8))
    lr = result.config.learning_rate
    expected = [lr * (1 - i / 4) for i in range(4)] + [lr * (1 - i / 8) for i in range(4, 8)]
    np.testing.assert_allclose(result.metrics["learning_rate"][0], expected, rtol=1e-6)


def test_an_end_not_past_the_updates_done_is_a_clear_error(run):
    """From Python, the messages name the argument (total_timesteps=); on the command line, the flag (below)."""
    with pytest.raises(CheckpointError, match=r"already finished \(4 of 4 updates\); to train it further, give a new "
                                              r"end: total_timesteps=N above 2,048"):
        ppox.resume(run)
    with pytest.raises(ConfigError, match=r"total_timesteps=2,048 is 4 update\(s\) of 512 steps, and the run has "
                                          r"done 4 \(2,048 steps\): give a new end above 2,048 steps"):
        ppox.resume(run, total_timesteps=2048)


def test_the_cli_resumes_to_a_new_end_with_no_progress(run, capsys):
    from ppox.cli import main

    assert main(["train", "--resume", str(run), "--no-progress"]) == 2  # (before: "drop --no-progress")
    assert "already finished (4 of 4 updates)" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--total-timesteps", "1000"]) == 2
    assert capsys.readouterr().err == (
        "ppox train: error: --total-timesteps 1,000 is 1 update(s) of 512 steps, and the run has done 4 (2,048 steps): "
        "give a new end above 2,048 steps\n"
    )
    assert main(["train", "--resume", str(run), "--total-timesteps", "3072", "--no-progress"]) == 0
    assert read_newest_checkpoint(run).update == 6
    assert json.loads((run / "config.json").read_text())["progress"] is False
