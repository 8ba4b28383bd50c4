"""--init-from RUN (issue 33, item 3): a new run starts from another run's parameters and observation statistics,
with a fresh optimiser; a run that does not fit the source is a ConfigError naming the mismatch, before any work."""

import jax
import numpy as np
import pytest

import ppox
from ppox.errors import ConfigError
from tests.helpers import QUICK

ONE_UPDATE = {**QUICK, "total_timesteps": 512, "learning_rate": 1e-12}  # (almost no step; the source's program)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished 4-update CartPole run (fused) with observation normalisation."""
    return ppox.train(env="CartPole-v1", norm_obs=True, run_dir=str(tmp_path_factory.mktemp("runs")), run_name="src",
                      **QUICK)


def largest_difference(a, b) -> float:
    return max(jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: float(np.abs(x - y).max()), a, b)))


@pytest.mark.parametrize("driver", ["fused", "host"])
def test_a_run_starts_from_the_source_policy(source, tmp_path, driver):
    """After one update of a learning rate of 1e-12, a run of another seed still has the source's parameters
    (a fresh initialisation differs by about 1); its observation statistics went on from the source's: their
    count is the source's plus the update's 512 observations."""
    run = ppox.train(env="CartPole-v1", driver=driver, seed=7, norm_obs=True, run_dir=str(tmp_path),
                     init_from=str(source.run_path), **ONE_UPDATE)
    assert largest_difference(source.params, run.params) < 1e-6
    np.testing.assert_allclose(run.obs_stats.count, source.obs_stats.count[0] + 512)
    assert ppox.load(run.run_path).config.init_from == str(source.run_path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"env": "Acrobot-v1"}, r"its policy observes shape \(4,\) but Acrobot-v1 gives \(6,\)"),
        ({"env": "Pendulum-v1"}, r"its policy observes shape \(4,\) but Pendulum-v1 gives \(3,\)"),
        ({"hidden_sizes": (256, 256)}, "it was trained with --hidden-sizes 64 64, this run has --hidden-sizes 256 256"),
        ({"norm_obs": False}, "it was trained with --norm-obs, this run has --no-norm-obs: give --norm-obs"),
        ({"activation": "relu"}, "it was trained with --activation tanh, this run has --activation relu"),
        ({"shared_trunk": True}, "it was trained with --no-shared-trunk, this run has --shared-trunk"),
    ],
)
def test_a_run_that_does_not_fit_the_source_is_a_config_error(source, tmp_path, change, message):
    config = {"env": "CartPole-v1", "norm_obs": True, **ONE_UPDATE, **change}
    with pytest.raises(ConfigError, match=f"--init-from {source.run_path}: {message}"):
        ppox.train(init_from=str(source.run_path), run_dir=str(tmp_path), **config)
    assert list(tmp_path.iterdir()) == []  # refused before the run folder was made


def test_the_cli_names_the_mismatch_in_one_line(source, tmp_path, capsys):
    from ppox.cli import main

    code = main(["train", "--env", "Acrobot-v1", "--init-from", str(source.run_path), "--run-dir", str(tmp_path),
                 "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"ppox train: error: --init-from {source.run_path}: its policy observes shape (4,) but Acrobot-v1 gives (6,)"
    )
    assert main(["train", "--init-from", str(tmp_path / "missing"), "--run-dir", str(tmp_path)]) == 2
    assert "--init-from" in capsys.readouterr().err
