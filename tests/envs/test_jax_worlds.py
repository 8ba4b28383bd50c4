"""navix, Jumanji and XLand-MiniGrid on the fused driver (issue 35, item 4): one task of each learns past a random
policy's measured return, a second trains two seeds in one run and resumes from its checkpoint, `ppox envs`
lists them, and Jumanji's legal-action masks go through ppox's mask path."""

import jax
import numpy as np
import pytest

import ppox
from ppox.drivers.fused_program import build
from ppox.envs.families import JUMANJI_IDS, NAVIX_IDS, XMINIGRID_IDS, listing
from ppox.envs.registry import driver_for
from ppox.errors import ConfigError

QUICK = {"num_envs": 16, "num_steps": 64, "save": False, "progress": False, "seed": 0}


def last_return(result, updates=5) -> float:
    return float(np.nanmean(result.metrics["episode_return"][0, -updates:]))


@pytest.mark.long
@pytest.mark.learning
def test_navix_empty_learns():
    """Navix-Empty-5x5-v0 (reward 1 at the goal, 100 steps): a uniformly random policy reaches the goal in 0.44
    of its episodes (measured over 2,344 episodes, mean length 81); 24,576 steps reach 1.0 (last 5 updates, seed 0)."""
    pytest.importorskip("navix")
    result = ppox.train(env="Navix-Empty-5x5-v0", total_timesteps=24_576, learning_rate=1e-3, **QUICK)
    assert last_return(result) > 0.8, result.metrics["episode_return"][0, -5:]


@pytest.mark.long
@pytest.mark.learning
def test_xminigrid_empty_learns():
    """XLand-MiniGrid-Empty-6x6 (reward 1 - 0.9 t / 144 at the goal): a uniformly random policy returns 0.17
    (measured over 1,526 episodes, mean length 123); 24,576 steps reach 0.95 (last 5 updates, seed 0)."""
    pytest.importorskip("xminigrid")
    result = ppox.train(env="XLand-MiniGrid-Empty-6x6", total_timesteps=24_576, learning_rate=1e-3, **QUICK)
    assert last_return(result) > 0.7, result.metrics["episode_return"][0, -5:]


@pytest.mark.long
@pytest.mark.learning
def test_jumanji_game2048_learns_with_masks():
    """Jumanji-Game2048-v1 with its legal-move masks: a uniformly random legal policy returns 1,071 (measured
    over 1,596 games, mean length 118); 81,920 steps reach 1,507 (last 10 updates, seed 0)."""
    pytest.importorskip("jumanji")
    result = ppox.train(
        env="Jumanji-Game2048-v1", total_timesteps=81_920, learning_rate=3e-3, **{**QUICK, "num_envs": 32}
    )
    assert last_return(result, 10) > 1250, result.metrics["episode_return"][0, -10:]


@pytest.mark.long  # (navix's and xminigrid's programs take their time to compile)
@pytest.mark.parametrize("env_id", [NAVIX_IDS[1], JUMANJI_IDS[1], XMINIGRID_IDS[1]])
def test_a_second_task_trains_two_seeds_and_resumes(env_id, tmp_path):
    pytest.importorskip({"N": "navix", "J": "jumanji", "X": "xminigrid"}[env_id[0]])
    config = {**QUICK, "num_envs": 4, "num_steps": 16, "save": True, "run_dir": str(tmp_path), "run_name": "r"}
    first = ppox.train(env=env_id, total_timesteps=128, seeds=2, **config)
    assert driver_for(env_id) == "fused" and first.metrics["episode_return"].shape == (2, 2)
    resumed = ppox.resume(first.run_path, total_timesteps=256)
    np.testing.assert_array_equal(resumed.metrics["policy_loss"][:, :2], first.metrics["policy_loss"])
    assert resumed.metrics["policy_loss"].shape == (2, 4)


def test_the_families_are_listed_and_jumanji_masks_are_the_envs():
    listed = {i for section in listing() for i in section.ids}
    assert set(NAVIX_IDS + JUMANJI_IDS + XMINIGRID_IDS) <= listed
    pytest.importorskip("jumanji")
    fused = build(ppox.Config(env="Jumanji-Knapsack-v1", num_envs=4, num_steps=32, save=False, progress=False))
    assert fused.masked and fused.spec.action_dims == (50,) and fused.spec.obs_shape == (150,)
    _, traj = fused.collect(fused.init(jax.random.PRNGKey(0)))
    mask, action = np.asarray(traj.mask), np.asarray(traj.action)
    assert not mask.all() and np.take_along_axis(mask, action[..., None], -1).all()  # packed items are masked


def test_an_xland_task_without_its_ruleset_is_refused_in_one_line():
    pytest.importorskip("xminigrid")
    with pytest.raises(ConfigError, match="an XLand task needs a ruleset of xminigrid's benchmarks"):
        ppox.train(env="XLand-MiniGrid-R1-9x9", **QUICK)
