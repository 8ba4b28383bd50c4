"""The command line: bad input is a one-line error with exit code 2; a short run writes its folder."""

import json
import subprocess
import sys

import pytest

from ppox.cli import main


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--num-minibatches", "3"], "--num-minibatches"),
        (["train", "--env", "Cartpole"], "did you mean CartPole-v1"),
        (["train", "--learning-rate", "-1"], "--learning-rate must be a positive number"),
        (["train", "--seeds", "0"], "--seeds must be a positive integer"),
        (["trian"], "did you mean train"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert "Traceback" not in err


def test_unparsable_value_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "ppox.cli", "train", "--total-timesteps", "abc"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "total-timesteps" in proc.stderr


def test_unwritable_run_dir_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["train", "--run-dir", str(blocker / "sub"), "--total-timesteps", "1024", "--no-progress"])
    assert code == 2
    assert "cannot write the run folder" in capsys.readouterr().err


def test_short_run_writes_run_folder(tmp_path, capsys):
    code = main(["train", "--env", "CartPole-v1", "--total-timesteps", "4096", "--seeds", "2",
                 "--run-dir", str(tmp_path), "--run-name", "smoke", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "CartPole-v1" in out and "steps/s" in out
    run = tmp_path / "smoke"
    config = json.loads((run / "config.json").read_text())
    assert config["seeds"] == 2 and config["total_timesteps"] == 4096
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    for column in ("global_step", "episode_return", "policy_loss", "value_loss", "entropy", "approx_kl",
                   "clip_fraction", "explained_variance", "learning_rate", "steps_per_second"):
        assert column in header
    assert len(lines) == 1 + 8 * 2  # 8 updates x 2 seeds
    assert (run / "policy.safetensors").is_file()
    events = list((run / "tb").rglob("events.out.tfevents.*"))
    assert len(events) == 2
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["final_return_per_seed"]) == 2


def test_envs_lists_presets(capsys):
    assert main(["envs"]) == 0
    assert "Pendulum-v1" in capsys.readouterr().out


def _scalar_tags(event_file):
    """Tags of the scalar summaries in a TensorBoard event file (TFRecord framing, Event protos)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    data, tags, pos = event_file.read_bytes(), set(), 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event.FromString(data[pos + 12:pos + 12 + length])
        tags.update(v.tag for v in event.summary.value)
        pos += 12 + length + 4
    return tags


def test_tensorboard_events_hold_the_metrics(tmp_path):
    assert main(["train", "--total-timesteps", "2048", "--run-dir", str(tmp_path), "--run-name", "tb",
                 "--no-progress"]) == 0
    (event_file,) = (tmp_path / "tb" / "tb").rglob("events.out.tfevents.*")
    tags = _scalar_tags(event_file)
    for tag in ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
                "losses/clip_fraction", "losses/explained_variance", "losses/learning_rate",
                "charts/steps_per_second"):
        assert tag in tags, tag


class _WouldTrain(Exception):
    """Raised instead of training: the fuzzed input was accepted as a valid configuration."""


def _would_train(config, **kwargs):
    raise _WouldTrain


def test_fuzzed_command_lines_are_an_error_exit_2_or_a_valid_config():
    """Random flags with random values: either a clear error (exit 2, no traceback) or a Config that trains."""
    import contextlib
    import dataclasses
    import io
    from unittest import mock

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ppox.config.config import Config

    flags = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(Config)] + ["--resume", "--bogus"]
    values = st.one_of(
        st.integers(-(10**12), 10**12).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
        st.sampled_from(["None", "True", "false", "", "-", "1e999", "nan", "CartPole-v1", "Cartpole", "relu",
                         "host", "fused", "async", "64", "0", "/dev/null/x", "a:b", "os:system"]),
    )

    @settings(max_examples=120, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(flags), values), min_size=1, max_size=4))
    def check(pairs):
        args = ["train"] + [x for pair in pairs for x in pair]
        err = io.StringIO()
        with mock.patch("ppox.run.training.train", _would_train), mock.patch("ppox.run.training.resume", _would_train), \
                contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(args)
            except _WouldTrain:
                return
            except SystemExit as exit_:  # tyro's own parse errors
                code = exit_.code
        assert code == 2, (args, err.getvalue())
        assert "Traceback" not in err.getvalue(), args
        assert err.getvalue().strip(), args

    check()
