"""Action masks: masked actions have probability exactly 0 when acting, in the update and in evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.core.distributions import Categorical
from ppox.errors import ConfigError
from tests import toy_envs

QUICK = dict(num_envs=4, num_steps=32, num_minibatches=2, update_epochs=2, progress=False, tensorboard=False)


def test_masked_logits_have_zero_probability_and_zero_gradient():
    logits = jnp.array([[0.3, 2.0, -1.0, 0.5]])
    mask = jnp.array([[True, False, True, True]])
    dist = Categorical(logits, mask)
    assert float(jnp.exp(dist.log_probs())[0, 1]) == 0.0
    samples = jax.vmap(lambda k: dist.sample(k))(jax.random.split(jax.random.PRNGKey(0), 2000))
    assert not np.any(np.asarray(samples) == 1)
    grad = jax.grad(lambda lg: Categorical(lg, mask).log_prob(jnp.array([2]))[0]
                    + Categorical(lg, mask).entropy()[0])(logits)
    assert float(grad[0, 1]) == 0.0 and np.all(np.asarray(grad[0, [0, 2, 3]]) != 0.0)


@pytest.mark.parametrize("via", ["method", "info", "obs"])
def test_every_mask_source_keeps_training_legal(via, tmp_path):
    result = ppox.train(ppox.Config(**QUICK, total_timesteps=4096, run_dir=str(tmp_path), run_name="m"),
                        env=toy_envs.masked_choice(via))
    assert np.nansum(result.metrics["illegal_actions"]) == 0
    assert np.nanmax(result.metrics["episode_length"]) == 8  # no episode ended early on an illegal action
    policy = ppox.load(result.run_path)
    returns = ppox.evaluate(policy, episodes=3, env=toy_envs.masked_choice(via), deterministic=False)
    assert np.all(returns == 8.0)  # evaluation keeps to the mask too


def test_without_masks_illegal_actions_happen():
    result = ppox.train(ppox.Config(**QUICK, total_timesteps=2048, save=False, action_mask="off"),
                        env=toy_envs.masked_choice("info"))
    assert np.nanmin(result.metrics["episode_length"]) < 8
    assert "illegal_actions" not in result.metrics


def test_the_update_uses_the_masks_of_acting():
    """Old log-probs are taken under the mask: with masks, the first epoch's ratio is exactly 1."""
    result = ppox.train(ppox.Config(**{**QUICK, "update_epochs": 1, "num_minibatches": 1}, total_timesteps=128,
                                    save=False, anneal_lr=False), env=toy_envs.masked_choice("method"))
    assert abs(float(result.metrics["approx_kl"][0, 0])) < 1e-6  # one step from the collecting policy: no drift


def test_a_mask_that_allows_nothing_is_a_clear_error():
    with pytest.raises(ConfigError, match="every action is masked at step 3"):
        ppox.train(ppox.Config(**QUICK, total_timesteps=256, save=False),
                   env=toy_envs.masked_choice("info", none_legal_at=3))


def test_a_loaded_policy_takes_a_mask():
    result = ppox.train(ppox.Config(**QUICK, total_timesteps=1024, save=False), env=toy_envs.masked_choice("obs"))
    policy = result.policy()
    obs = {"observation": np.zeros(2, np.float32), "action_mask": np.array([0, 0, 1, 0], np.int8)}
    assert policy.act(obs) == 2  # the Dict observation's own mask
    assert policy.act(obs, mask=np.array([1, 0, 0, 0], bool)) == 0


@pytest.mark.long
@pytest.mark.learning
def test_taxi_learns_faster_with_masks_and_never_acts_illegally():
    config = ppox.Config(env="Taxi-v4", total_timesteps=49152, num_envs=8, save=False, progress=False)
    masked = ppox.train(config)
    unmasked = ppox.train(config.replace(action_mask="off"))
    assert np.nansum(masked.metrics["illegal_actions"]) == 0
    assert masked.final_return()[0] > unmasked.final_return()[0] + 100  # measured -165 against -480


def test_fused_driver_takes_masks_from_the_env_state():
    """TicTacToe-pgx on the fused driver: pgx's legal_action_mask is stored with each step, every sampled move
    is legal, and the update's log-probabilities are over the legal moves only."""
    pytest.importorskip("pgx")
    import jax

    from ppox.drivers.fused_program import build

    config = ppox.Config(env="TicTacToe-pgx", total_timesteps=2048, num_envs=8, num_steps=32, progress=False,
                         save=False)
    fused = build(config)
    assert fused.masked
    _, traj = fused.collect(fused.init(jax.random.PRNGKey(0)))
    mask, action = np.asarray(traj.mask), np.asarray(traj.action)
    assert not mask.all()  # occupied squares were masked
    assert np.take_along_axis(mask, action[..., None], -1).all()  # never an illegal move
    off = build(config.replace(action_mask="off"))
    assert not off.masked and off.collect(off.init(jax.random.PRNGKey(0)))[1].mask is None


@pytest.mark.long
@pytest.mark.learning
def test_masked_tictactoe_beats_a_random_opponent():
    """100k steps against a random opponent: masked PPO wins clearly more than it loses (mean return > 0.3);
    a trained policy evaluates with the masks too."""
    pytest.importorskip("pgx")
    result = ppox.train(ppox.Config.preset("TicTacToe-pgx", total_timesteps=100_000, progress=False, save=False))
    assert result.final_return()[0] > 0.3, result.final_return()
    assert ppox.evaluate(result.policy(), episodes=50, deterministic=False).mean() > 0.3
