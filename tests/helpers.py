"""What many tests share: the repository's paths, a `ppox` subprocess, waiting for a checkpoint, and the
small-run settings of the quick tests."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ppox.acting.policy import POLICY_FILE
from ppox.storage.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# CartPole on the fused driver, long enough to be interrupted part-way, a checkpoint every 2 updates
# (every chunk: the run is 40 updates in chunks of 2).
FUSED = ["--total-timesteps", "40960", "--num-envs", "4", "--num-steps", "256", "--checkpoint-every", "2048",
         "--no-progress", "--no-tensorboard"]


def ppox_cli(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PPOX_CACHE_DIR": ""}
    return subprocess.Popen([sys.executable, "-m", "ppox.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list_checkpoints(run):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def policy_arrays(run: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / POLICY_FILE))


def stop_after_checks(n: int):
    """A StopOnSignal whose ``requested`` turns true at its n-th reading (the run loop reads it once a chunk)."""
    from ppox.utils.signals import StopOnSignal

    class StopAfter(StopOnSignal):
        calls = 0

        @property
        def requested(self):
            StopAfter.calls += 1
            return StopAfter.calls >= n

        @requested.setter
        def requested(self, value):
            pass

    return StopAfter



# A run of a few updates for tests that check plumbing, not learning (Config keyword arguments).
QUICK = dict(total_timesteps=2048, num_envs=4, num_steps=128, progress=False, tensorboard=False)
