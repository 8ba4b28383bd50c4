"""Fused data parallelism: envs split across (forced) CPU devices, one set of parameters."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ppox
from ppox.config.config import ConfigError
from tests.helpers import ROOT


SCRIPT = r"""
import jax, numpy as np, ppox
assert jax.device_count() == 2, jax.devices()
cfg = ppox.Config(total_timesteps=8 * 512, save=False, progress=False)
one, two = ppox.train(cfg), ppox.train(cfg.replace(devices=2))
for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(two.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
for name in ("policy_loss", "value_loss", "approx_kl", "episode_return"):
    np.testing.assert_allclose(one.metrics[name], two.metrics[name], rtol=1e-3, atol=1e-5, err_msg=name)
learned = ppox.train(ppox.Config(total_timesteps=150_000, devices=2, save=False, progress=False))
print("final", float(learned.final_return()[0]))
assert learned.final_return()[0] >= 150, learned.final_return()
"""


@pytest.mark.long
@pytest.mark.learning
def test_two_devices_match_one_and_learn():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(ROOT),
           "PPOX_CACHE_DIR": ""}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "final" in proc.stdout


def test_device_errors_say_what_to_change():
    with pytest.raises(ConfigError, match="--num-envs 4 must divide by --devices 3"):
        ppox.Config(devices=3)
    with pytest.raises(ConfigError, match="needs the fused driver"):
        ppox.Config(devices=2, driver="host")
    with pytest.raises(ConfigError, match="xla_force_host_platform_device_count=64"):
        ppox.train(ppox.Config(devices=64, num_envs=64, total_timesteps=8192, save=False, progress=False))
