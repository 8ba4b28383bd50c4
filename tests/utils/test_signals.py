"""Signals at any moment: every command answers SIGINT/SIGTERM within seconds, saves what it can, and a
second signal stops at once, even inside a long compiled call."""

import json
import signal
import time

import pytest

from ppox.storage.checkpoint import list_checkpoints
from tests.helpers import FUSED, ppox_cli


def stop_after(proc, seconds: float, sig=signal.SIGINT) -> float:
    """Send ``sig`` after ``seconds``; how long the process took to exit after it."""
    time.sleep(seconds)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return time.monotonic() - sent


@pytest.mark.parametrize("when", [0.2, 2.5], ids=["during-imports", "during-compilation"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_before_training_stops_at_once_and_leaves_no_folder(tmp_path, when, sig):
    proc = ppox_cli("train", *FUSED, "--run-dir", str(tmp_path))
    took = stop_after(proc, when, sig)
    _, err = proc.communicate()
    assert took < 4.0, err
    assert proc.returncode in (130, 128 + sig), err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir()), "no empty run folder is left"


@pytest.mark.long
def test_a_second_signal_inside_a_long_compiled_update_stops_at_once(tmp_path):
    # one update of 256 x 4096 steps takes seconds: the second signal arrives while XLA runs it
    proc = ppox_cli("train", "--num-envs", "256", "--num-steps", "4096", "--total-timesteps", str(256 * 4096 * 40),
                    "--no-progress", "--no-tensorboard", "--run-dir", str(tmp_path), "--run-name", "long")
    metrics = tmp_path / "long" / "metrics.csv"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 1):  # training, past the first chunk
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    _, err = proc.communicate()
    assert time.monotonic() - sent < 2.0, err
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "again: stopping at once" in err


@pytest.mark.long
def test_sigterm_stops_the_ladder_with_a_report_of_the_rungs_that_finished(tmp_path):
    out = tmp_path / "ladder"
    proc = ppox_cli("ladder", "--env", "CartPole-v1", "--seeds", "2", "--total-timesteps", "200704",
                    "--out", str(out), "--no-progress")
    for line in proc.stdout:  # the rungs print a line each as they finish
        if line.startswith("rung 2:"):
            break
    took = stop_after(proc, 1.0, signal.SIGTERM)  # during rung 3
    _, err = proc.communicate()
    assert proc.returncode == 0 and took < 6.0, err
    report = json.loads((out / "results.json").read_text())
    assert report["interrupted"] and len(report["rungs"]) == 2
    assert (out / "curves.png").exists() and "Stopped by a signal after 2 of 8 rungs" in (out / "table.md").read_text()
    assert "Traceback" not in err


def test_sigterm_in_the_first_rung_leaves_no_report_folder(tmp_path):
    out = tmp_path / "ladder"
    proc = ppox_cli("ladder", "--env", "CartPole-v1", "--seeds", "2", "--total-timesteps", "200704",
                    "--out", str(out), "--no-progress")
    took = stop_after(proc, 3.0, signal.SIGTERM)
    _, err = proc.communicate()
    assert took < 4.0 and proc.returncode in (130, 128 + signal.SIGTERM), err
    assert not out.exists() and "Traceback" not in err


def test_sigint_stops_a_long_evaluation(tmp_path):
    import ppox

    result = ppox.train(ppox.Config(total_timesteps=2048, num_envs=4, num_steps=128, run_dir=str(tmp_path),
                                    run_name="e", progress=False, tensorboard=False))
    proc = ppox_cli("eval", str(result.run_path), "--episodes", "100000")
    took = stop_after(proc, 4.0)
    _, err = proc.communicate()
    assert took < 4.0 and proc.returncode in (130, 128 + signal.SIGINT), err
    assert "Traceback" not in err


def test_a_signal_during_training_still_checkpoints_and_exits_0(tmp_path):
    proc = ppox_cli("train", *FUSED, "--run-dir", str(tmp_path), "--run-name", "t")
    deadline = time.monotonic() + 120
    while not list_checkpoints(tmp_path / "t"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    took = stop_after(proc, 0)
    _, err = proc.communicate()
    assert proc.returncode == 0 and "ppox train --resume" in err, err
    assert took < 4.0


SAVER = """
import os, signal, sys, time
from ppox.utils import signals
signals.install()
with signals.work_at_stake(save=lambda: print("saved", flush=True) or 3):
    if sys.argv[1] == "run-too":
        signals.STATE.at_stake += 1  # a checkpointing run inside: it must stop at its own pace
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not signals.STATE.requested:
        time.sleep(0.01)
    time.sleep(0.5)
print("main thread went on", flush=True)
"""


@pytest.mark.parametrize("case", ["saver-alone", "run-too"])
def test_a_saver_saves_from_the_watcher_unless_a_checkpointing_run_is_at_stake(case):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", SAVER, case], capture_output=True, text=True, timeout=60)
    if case == "saver-alone":  # saved by the watcher at once, exit status from the saver
        assert done.returncode == 3 and done.stdout == "saved\n", done
    else:  # the run is asked to stop and save itself; nothing exits under it
        assert done.returncode == 0 and done.stdout == "main thread went on\n", done
        assert "finishing the work in flight" in done.stderr
