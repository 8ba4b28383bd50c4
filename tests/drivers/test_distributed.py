"""Multi-process fused training through jax.distributed: two local processes, one CPU device each."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ppox
from tests.helpers import ROOT

ARGS = ["--total-timesteps", "4096", "--num-envs", "4", "--num-steps", "128", "--checkpoint-every", "1024",
        "--no-progress", "--no-tensorboard"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.long
def test_two_processes_train_one_model_and_write_one_run_folder(tmp_path):
    port = free_port()
    procs = []
    for i in range(2):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PPOX_CACHE_DIR": "", "XLA_FLAGS": "",
               "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ppox.cli", "train", "--distributed", "--devices", "2", *ARGS,
             "--run-dir", str(tmp_path), "--run-name", "dist"], env=env, cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["dist"]  # one run folder, by process 0
    run = tmp_path / "dist"
    assert (run / "policy.safetensors").exists() and len(list((run / "checkpoints").glob("update_*"))) == 3

    # the same program on one device: the same model up to the order of floating-point sums
    single = ppox.train(ppox.Config(total_timesteps=4096, num_envs=4, num_steps=128, save=False, progress=False))
    loaded = ppox.load(run)
    import jax

    for a, b in zip(jax.tree_util.tree_leaves(loaded.params),
                    jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x: x[0], single.params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_distributed_needs_the_fused_driver():
    import pytest

    with pytest.raises(ppox.ConfigError, match="--distributed runs the fused driver"):
        ppox.Config(distributed=True, driver="host")
