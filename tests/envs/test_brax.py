"""Brax on the fused driver (issue 35, item 1): ids and their one-line errors, the presets' mapping of Brax's PPO
settings, action repeat and reward scaling against plain references, a learning run past a random policy's
measured return, and two seeds that resume bit-identically and evaluate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.config import PRESETS, Config
from ppox.drivers.fused_program import build
from ppox.envs.action_repeat import ActionRepeat
from ppox.envs.families import BRAX_IDS, listing
from ppox.envs.jax_envs import make_jax_env
from ppox.envs.registry import driver_for
from ppox.errors import ConfigError

QUICK = {"save": False, "progress": False, "seed": 0}
# brax/inverted_pendulum under uniformly random actions in [-1, 1]: mean return 23.0 over 4,270 episodes (256 envs
# x 400 steps through ppox's env and autoreset, seed 0; docs/jax-envs.md)
RANDOM = 23.0
# a small Brax-like setting for brax/inverted_pendulum (Brax's own: 2048 envs, unroll 5, batch 1024 x 32)
PENDULUM = {
    "num_envs": 32,
    "num_steps": 16,
    "num_minibatches": 4,
    "update_epochs": 4,
    "learning_rate": 3e-4,
    "anneal_lr": False,
    "gamma": 0.97,
    "ent_coef": 1e-2,
    "norm_obs": True,
    "reward_scale": 10.0,
}


def test_ids_name_a_brax_env_and_a_cpu_backend_or_are_refused_in_one_line():
    brax = pytest.importorskip("ppox.envs.brax")
    assert brax.parse("brax/ant") == ("ant", "positional")
    assert brax.parse("brax/humanoid/generalized") == ("humanoid", "generalized")
    assert brax.parse("brax/hopper/spring") == ("hopper", "spring")
    for bad, says in [
        ("brax/antt", "'antt' is not a Brax env; Brax has ant, "),
        ("brax/ant/mjx", "backend 'mjx' is not one of Brax's CPU backends positional, generalized, spring"),
        ("brax/ant/positional/x", "a Brax id is brax/NAME or brax/NAME/BACKEND"),
        ("brax/", "a Brax id is brax/NAME"),
    ]:
        with pytest.raises(ConfigError, match=says) as err:
            brax.parse(bad)
        assert "\n" not in str(err.value)


def test_brax_is_listed_on_the_fused_driver_with_presets():
    listed = {i for section in listing() for i in section.ids}
    assert set(BRAX_IDS) <= listed
    for env_id in BRAX_IDS + ("brax/ant/generalized", "brax/humanoid/spring"):
        assert driver_for(env_id) == "fused" and env_id in PRESETS


@pytest.mark.parametrize(
    "name, brax",
    [  # Brax's training notebook: num_envs, batch_size, num_minibatches, unroll_length, num_updates_per_batch,
        # discounting, entropy_cost, reward_scaling, action_repeat, num_timesteps
        ("ant", (4096, 2048, 32, 5, 4, 0.97, 1e-2, 10, 1, 50_000_000)),
        ("humanoid", (2048, 1024, 32, 10, 8, 0.97, 1e-3, 0.1, 1, 50_000_000)),
        ("halfcheetah", (2048, 512, 32, 20, 8, 0.95, 1e-3, 1, 1, 50_000_000)),
        ("reacher", (2048, 256, 32, 50, 8, 0.95, 1e-3, 5, 4, 50_000_000)),
    ],
)
def test_presets_take_brax_settings(name, brax):
    envs, batch, minibatches, unroll, epochs, gamma, entropy, scale, repeat, steps = brax
    c = Config.preset(f"brax/{name}")
    assert c.batch_size == batch * minibatches * unroll  # env steps per update
    assert c.num_envs == envs and c.minibatch_size == batch * unroll and c.num_minibatches == minibatches
    assert (c.update_epochs, c.gamma, c.ent_coef, c.reward_scale, c.action_repeat) == (
        epochs,
        gamma,
        entropy,
        scale,
        repeat,
    )
    assert c.total_timesteps * repeat == steps and c.learning_rate == 3e-4 and not c.anneal_lr
    assert (c.clip_coef, c.vf_clip_coef, c.max_grad_norm, c.gae_lambda, c.norm_obs) == (0.3, None, None, 0.95, True)
    assert c.vf_coef == 0.25  # Brax's 0.5 * vf_coefficient 0.5 on (V - G)^2
    assert Config.preset(f"brax/{name}/generalized").batch_size == c.batch_size
    hopper = Config.preset("brax/hopper")
    assert hopper.batch_size == Config.preset("brax/ant").batch_size  # (Brax publishes SAC for hopper)


@pytest.mark.parametrize("backend", ["generalized", "spring"])
def test_each_cpu_backend_makes_an_env_of_brax_bounds_and_time_limit(backend):
    pytest.importorskip("brax")
    env, params, spec = make_jax_env(f"brax/inverted_pendulum/{backend}")  # (a step is traced: eval_shape)
    assert spec.action_kind == "continuous" and spec.action_low == (-1.0,) and spec.action_high == (1.0,)
    assert spec.obs_shape == (4,) and params.max_steps_in_episode == 1000


def test_reward_scale_and_action_repeat_are_validated_in_one_line():
    with pytest.raises(ConfigError, match="--reward-scale must be above 0"):
        Config(reward_scale=0.0)
    with pytest.raises(ConfigError, match="--action-repeat must be a positive integer"):
        Config(action_repeat=0)
    with pytest.raises(ConfigError, match="--action-repeat needs the fused driver") as err:
        Config(env="CartPole-v1", driver="host", action_repeat=4)
    assert "\n" not in str(err.value)


def repeat_reference(env, params, key, state, action, repeat):
    """k steps of the env one after another in Python, stopping at the end of an episode: (reward in float64,
    terminated, the state reached)."""
    total, keys = 0.0, jax.random.split(key, repeat)
    for k in keys:
        _, state, reward, done, _ = env.step_env(k, state, action, params)
        total += float(np.float64(reward))
        if bool(done) or bool(env.is_truncated(state, params)):
            return total, bool(done), state
    return total, False, state


@pytest.mark.parametrize("repeat, action, steps_before", [(3, 1, 0), (4, 1, 5), (5, 0, 2)])
def test_action_repeat_sums_rewards_until_the_episode_ends(repeat, action, steps_before):
    env, params, _ = make_jax_env("CartPole-v1")
    params = params.replace(max_steps_in_episode=7)  # (the time limit is met inside a repeat: 5 + 4 > 7)
    wrapped = ActionRepeat(env, repeat)
    _, state = env.reset_env(jax.random.PRNGKey(1), params)
    for i in range(steps_before):
        _, state, _, _, _ = env.step_env(jax.random.PRNGKey(100 + i), state, action, params)
    key = jax.random.PRNGKey(7)
    _, got_state, reward, terminated, _ = jax.jit(wrapped.step_env)(key, state, jnp.asarray(action), params)
    want, want_terminated, want_state = repeat_reference(env, params, key, state, action, repeat)
    assert float(reward) == pytest.approx(want, abs=1e-6) and bool(terminated) == want_terminated
    assert int(got_state.time) == int(want_state.time)
    np.testing.assert_allclose(np.float64(got_state.x), np.float64(want_state.x), atol=1e-6)


def test_reward_scale_scales_what_is_learned_not_what_is_logged():
    base = Config(env="CartPole-v1", num_envs=4, num_steps=16, **QUICK)
    rollouts = []
    for scale in (1.0, 2.5):
        fused = build(base.replace(reward_scale=scale))
        rollouts.append(fused.collect(fused.init(jax.random.PRNGKey(0)))[1])
    np.testing.assert_allclose(np.asarray(rollouts[1].reward), 2.5 * np.asarray(rollouts[0].reward), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(rollouts[1].finished_return), np.asarray(rollouts[0].finished_return))


@pytest.mark.long  # (Brax's pipeline takes about a minute to compile on 2 loaded cores)
@pytest.mark.learning
def test_brax_inverted_pendulum_learns():
    """brax/inverted_pendulum (reward 1 a step until the pole falls, 1000 steps): uniformly random actions in
    [-1, 1] return RANDOM = 23.0 (4,270 episodes); 20,480 steps of ppox reach more than four times that (the mean
    of the last 5 updates, seed 0; measured 221, from 25 in the first 5)."""
    pytest.importorskip("brax")
    result = ppox.train(env="brax/inverted_pendulum", total_timesteps=20_480, **PENDULUM, **QUICK)
    last = float(np.nanmean(result.metrics["episode_return"][0, -5:]))
    assert last > 4 * RANDOM, result.metrics["episode_return"][0, -5:]


@pytest.mark.long
def test_brax_two_seeds_resume_bit_identically_and_evaluate(tmp_path):
    pytest.importorskip("brax")
    config = {**PENDULUM, "num_envs": 8, "num_steps": 8, "num_minibatches": 2, "run_dir": str(tmp_path)}
    first = ppox.train(
        env="brax/inverted_pendulum", total_timesteps=128, seeds=2, run_name="r", progress=False, **config
    )
    assert first.metrics["policy_loss"].shape == (2, 2)
    resumed = ppox.resume(first.run_path, total_timesteps=256)
    np.testing.assert_array_equal(resumed.metrics["policy_loss"][:, :2], first.metrics["policy_loss"])
    assert resumed.metrics["policy_loss"].shape == (2, 4)
    returns = ppox.evaluate(resumed.policy(), episodes=3)
    assert returns.shape == (3,) and np.isfinite(returns).all() and (returns >= 1).all()
    with pytest.raises(ConfigError, match="ppox does not film Brax worlds") as err:
        ppox.evaluate(resumed.policy(), episodes=1, video_folder=str(tmp_path / "video"))
    assert "\n" not in str(err.value)
