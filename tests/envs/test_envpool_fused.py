"""EnvPool's Atari on the fused driver (``--vec envpool --driver fused``): training's view of EnvPool's
NEXT_STEP games (scripted, always), and the real pool stepped from compiled code (where EnvPool is installed)."""

import importlib.util
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.storage.checkpoint import list_checkpoints
from ppox.config.config import ConfigError
from ppox.envs.envpool_xla import PoolState, atari_step

needs_envpool = pytest.mark.skipif(importlib.util.find_spec("envpool") is None, reason='pip install "ppox[envpool]"')


def test_atari_step_makes_life_episodes_whole_games_and_a_terminal_reset_step():
    """Env 0: a life lost at step 2, the game over at step 3, EnvPool's reset step at 4 (action ignored, the
    next game's first frames, full lives again). Env 1: cut by the frame cap at step 3, reset step at 4."""
    lives = [[3, 2], [2, 2], [1, 2], [3, 2]]
    terminated = [[False, False], [False, False], [True, False], [False, False]]
    truncated = [[False, False], [False, False], [False, True], [False, False]]
    rewards = [[4.0, -2.0], [0.0, 0.0], [7.0, 1.0], [9.0, 9.0]]  # (EnvPool's reset step reports 0; 9 must be ignored)
    state = PoolState(jnp.zeros(1), jnp.array([3, 2]), jnp.zeros(2, bool))
    seen = []
    for t in range(4):
        obs = jnp.full((2, 4, 2, 3), t, jnp.uint8)
        state, stepped = atari_step(state, obs, jnp.array(rewards[t]), jnp.array(terminated[t]),
                                    jnp.array(truncated[t]), jnp.array(lives[t]))
        seen.append(jax.tree_util.tree_map(np.asarray, stepped))
    assert seen[0].obs.shape == (2, 2, 3, 4)  # channels last
    np.testing.assert_array_equal(seen[0].reward, [1.0, -1.0])  # clipped to the sign for training
    np.testing.assert_array_equal(seen[0].game_reward, [4.0, -2.0])  # the raw score for the log
    np.testing.assert_array_equal([s.terminated[0] for s in seen], [False, True, True, True])
    np.testing.assert_array_equal([s.game_over[0] for s in seen], [False, False, True, False])
    np.testing.assert_array_equal([s.truncated[1] for s in seen], [False, False, True, False])
    np.testing.assert_array_equal([s.terminated[1] for s in seen], [False, False, False, True])
    np.testing.assert_array_equal([s.game_over[1] for s in seen], [False, False, True, False])
    np.testing.assert_array_equal(seen[3].reward, [0.0, 0.0])  # the reset step: no reward, not a game
    np.testing.assert_array_equal(seen[3].game_reward, [0.0, 0.0])
    assert not np.asarray(state.game_ended).any() and np.asarray(state.lives).tolist() == [3, 2]


def test_fused_envpool_is_one_seed_on_one_device():
    with pytest.raises(ConfigError, match="cannot be vmapped"):
        ppox.Config(env="ALE/Breakout-v5", vec="envpool", driver="fused", seeds=2)
    with pytest.raises(ConfigError, match="or an Atari id with --vec envpool"):
        ppox.Config(env="ALE/Breakout-v5", driver="fused")


@needs_envpool
def test_the_compiled_steps_are_envpools_own():
    """The pool stepped inside jit + scan gives the frames and rewards of the same pool stepped from Python."""
    import envpool  # noqa: F401

    from ppox.envs.envpool_xla import EnvPoolXla

    actions = np.random.default_rng(0).integers(0, 4, size=(150, 4)).astype(np.int32)
    python = EnvPoolXla("ALE/Breakout-v5", 4, None, seed=3).pool
    first, _ = python.reset()
    expected = [python.step(a)[:2] for a in actions]
    compiled = EnvPoolXla("ALE/Breakout-v5", 4, None, seed=3)
    compiled.reset()

    @jax.jit
    def play(acts):
        obs, state = compiled.first()
        _, stepped = jax.lax.scan(lambda s, a: compiled.step(s, a), state, acts)
        return obs, stepped

    obs, stepped = play(jnp.asarray(actions))
    np.testing.assert_array_equal(np.asarray(obs), np.moveaxis(first, 1, -1))
    for t, (frames, reward) in enumerate(expected):
        np.testing.assert_array_equal(np.asarray(stepped.obs[t]), np.moveaxis(frames, 1, -1))
        np.testing.assert_array_equal(np.asarray(stepped.game_reward[t]), reward)
    python.close()


@needs_envpool
def test_a_fused_envpool_run_logs_whole_games_and_resumes(tmp_path):
    config = ppox.Config.preset("ALE/Breakout-v5", vec="envpool", driver="fused", num_envs=4, num_steps=64,
                                num_minibatches=2, update_epochs=1, total_timesteps=4 * 64 * 6, seed=1,
                                run_dir=str(tmp_path), run_name="ep", progress=False, tensorboard=False,
                                checkpoint_every=4 * 64 * 3)
    result = ppox.train(config)
    games = result.metrics["episode_count"].sum()
    assert games > 0 and np.nanmin(result.metrics["episode_return"]) >= 0  # whole games, raw scores
    newest = list_checkpoints(tmp_path / "ep")[-1]  # as if stopped after update 3: new games, same learner
    shutil.rmtree(newest) if newest.is_dir() else newest.unlink()
    resumed = ppox.resume(tmp_path / "ep")
    assert resumed.metrics["episode_return"].shape[1] == 6 and np.isfinite(resumed.metrics["policy_loss"]).all()
