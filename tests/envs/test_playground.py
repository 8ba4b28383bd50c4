"""MuJoCo Playground on the fused driver (issue 35, item 2): ids and their one-line errors, the actor's observation,
the env's own steps and time limit kept, domain randomisation per env, the presets' mapping of Playground's own PPO
configs, and a learning run past a random policy's measured return."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.config import PRESETS, Config
from ppox.envs.families import PLAYGROUND_IDS, listing
from ppox.envs.jax_envs import make_jax_env
from ppox.envs.registry import driver_for
from ppox.errors import ConfigError

playground = pytest.importorskip("ppox.envs.playground")
registry = pytest.importorskip("mujoco_playground").registry

QUICK = {"save": False, "progress": False, "seed": 0}
# playground/CartpoleBalance cut to 200-step episodes, uniformly random actions in [-1, 1]: mean return 114.1 (std
# 14.2, max 183.7) over 512 episodes (seed 0, through ppox's env; docs/jax-envs.md)
RANDOM = 114.1


def test_ids_name_a_suite_or_locomotion_env_or_are_refused_in_one_line():
    assert playground.parse("playground/CartpoleBalance") == ("CartpoleBalance", False)
    assert playground.parse("playground/Go1JoystickFlatTerrain/randomized") == ("Go1JoystickFlatTerrain", True)
    for bad, says in [
        ("playground/Nope", "'Nope' is not in Playground's dm_control suite or locomotion registry; they have Acrobot"),
        ("playground/PandaPickCube", "'PandaPickCube' is not in Playground's dm_control suite or locomotion registry"),
        ("playground/CartpoleBalance/dr", "a Playground id is playground/NAME or playground/NAME/randomized"),
        ("playground/", "a Playground id is playground/NAME"),
        ("playground/CartpoleBalance/randomized", "Playground has no domain randomizer for CartpoleBalance"),
    ]:
        with pytest.raises(ConfigError, match=says) as err:
            playground.load(bad)
        assert "\n" not in str(err.value)


def test_locomotion_without_menagerie_is_refused_in_one_line_before_any_download():
    if playground.mjx_env.MENAGERIE_PATH.exists():
        pytest.skip("MuJoCo Menagerie is installed here")
    with pytest.raises(ConfigError, match="robots from MuJoCo Menagerie, which Playground git-clones") as err:
        playground.load("playground/Go1JoystickFlatTerrain")
    assert "\n" not in str(err.value) and not playground.mjx_env.MENAGERIE_PATH.exists()


def test_playground_is_listed_on_the_fused_driver_with_presets():
    listed = {i for section in listing() for i in section.ids}
    assert set(PLAYGROUND_IDS) <= listed
    suite = set(registry.dm_control_suite.ALL_ENVS)
    for env_id in PLAYGROUND_IDS:
        assert driver_for(env_id) == "fused" and env_id in PRESETS and env_id.removeprefix("playground/") in suite


def test_the_actor_takes_an_array_or_the_state_entry_of_a_dict():
    state, privileged = jnp.arange(3.0), jnp.arange(5.0)
    assert playground.actor_obs(state, "env") is state
    assert playground.actor_obs({"state": state, "privileged_state": privileged}, "env") is state
    for bad, says in [
        ({"privileged_state": privileged}, "a dict observation needs a 'state' entry"),
        ((state, privileged), "the observation is a tuple; ppox takes an array or a dict of them"),
    ]:
        with pytest.raises(ConfigError, match=says) as err:
            playground.actor_obs(bad, "--env playground/X")
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["CartpoleBalance", "CheetahRun", "WalkerWalk"])
def test_presets_take_playgrounds_own_ppo_config(name):
    rl = registry.dm_control_suite.get_default_config(name)  # (the env's episode length)
    ppo = pytest.importorskip("mujoco_playground.config.dm_control_suite_params").brax_ppo_config(name)
    c = Config.preset(f"playground/{name}")
    assert c.num_envs == ppo.num_envs and c.num_minibatches == ppo.num_minibatches
    assert c.batch_size == ppo.batch_size * ppo.num_minibatches * ppo.unroll_length
    assert c.minibatch_size == ppo.batch_size * ppo.unroll_length
    assert (c.update_epochs, c.gamma, c.learning_rate, c.ent_coef, c.reward_scale, c.action_repeat) == (
        ppo.num_updates_per_batch,
        ppo.discounting,
        ppo.learning_rate,
        ppo.entropy_cost,
        ppo.reward_scaling,
        ppo.action_repeat,
    )
    assert c.total_timesteps * ppo.action_repeat == ppo.num_timesteps and c.norm_obs == ppo.normalize_observations
    assert (c.clip_coef, c.vf_clip_coef, c.max_grad_norm, c.gae_lambda, c.anneal_lr) == (0.3, None, None, 0.95, False)
    assert ppo.episode_length == rl.episode_length == 1000


@pytest.mark.long  # (MJX compiles a step for about half a minute on 2 loaded cores)
def test_the_env_steps_as_playgrounds_own_and_truncates_at_its_episode_length():
    env, params, spec = make_jax_env("playground/CartpoleBalance")
    assert spec.action_kind == "continuous" and spec.action_low == (-1.0,) and spec.action_high == (1.0,)
    assert spec.obs_shape == (5,) and params.max_steps_in_episode == 1000
    raw = registry.load("CartpoleBalance", config_overrides={"impl": "jax"})
    key, action = jax.random.PRNGKey(3), jnp.asarray([0.7])
    obs, state = jax.jit(env.reset_env)(key, params)
    want = jax.jit(raw.reset)(jax.random.split(key)[0])
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(want.obs))
    step, raw_step = jax.jit(env.step_env), jax.jit(raw.step)
    for _ in range(3):
        obs, state, reward, done, _ = step(key, state, action, params)
        want = raw_step(want, action)
        np.testing.assert_array_equal(np.asarray(obs), np.asarray(want.obs))
        assert float(reward) == float(want.reward) and not bool(done)
    assert not bool(env.is_truncated(state, params))
    assert bool(env.is_truncated(state.replace(time=jnp.asarray(1000, jnp.int32)), params))


def randomize_pole_mass(model, rng):
    """A domain randomizer in Playground's form (rng: [N, 2] keys -> a model with N values of the fields it draws,
    and their in_axes): the pole's mass times a factor in [0.5, 2]."""
    mass = jax.vmap(lambda key: model.body_mass.at[2].multiply(jax.random.uniform(key, (), minval=0.5, maxval=2.0)))(
        rng
    )
    in_axes = jax.tree_util.tree_map(lambda x: None, model).tree_replace({"body_mass": 0})
    return model.tree_replace({"body_mass": mass}), in_axes


@pytest.mark.long  # (MJX compiles a step for about half a minute on 2 loaded cores)
def test_domain_randomisation_draws_a_model_per_env_and_steps_with_it():
    raw = registry.load("CartpoleBalance", config_overrides={"impl": "jax"})
    env, params = playground.as_gymnax(playground.PlaygroundWorld(raw, randomize_pole_mass), "env")
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    obs, states = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))(keys, params)
    (masses,) = states.inner[1]
    assert masses.shape == (4, raw.mjx_model.body_mass.shape[0])
    factors = np.asarray(masses[:, 2], np.float64) / float(raw.mjx_model.body_mass[2])
    assert len(set(np.round(factors, 6))) == 4 and ((factors >= 0.5) & (factors <= 2.0)).all()
    np.testing.assert_array_equal(np.asarray(masses[:, :2]), np.broadcast_to(raw.mjx_model.body_mass[:2], (4, 2)))
    action = jnp.full((4, 1), 1.0)
    step = jax.jit(jax.vmap(env.step_env, in_axes=(0, 0, 0, None)))
    for _ in range(5):
        obs, states, _, _, _ = step(keys, states, action, params)
    # the reference: env 0 stepped by Playground's own env with its model's mass set by hand
    ref = registry.load("CartpoleBalance", config_overrides={"impl": "jax"})
    ref.unwrapped._mjx_model = ref.mjx_model.tree_replace({"body_mass": masses[0]})
    want, ref_step = jax.jit(ref.reset)(jax.random.split(keys[0])[0]), jax.jit(ref.step)
    for _ in range(5):
        want = ref_step(want, action[0])
    np.testing.assert_allclose(np.asarray(obs[0]), np.asarray(want.obs), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(obs[0]), np.asarray(obs[1]))  # (other masses, other motions)


@pytest.mark.long  # (MJX compiles slowly: about a minute on 2 loaded cores)
@pytest.mark.learning
def test_playground_cartpole_balance_learns():
    """playground/CartpoleBalance cut to 200-step episodes (reward in [0, 1] a step: upright, centred, still, small
    control): uniformly random actions return RANDOM = 114.1 (max 183.7 of 512 episodes); 81,920 steps of PPO
    (16 envs x 128 steps, lr 1e-3 constant, discount 0.95, no entropy bonus, --norm-obs) reach more than 160 (the
    mean of the last 5 updates, seed 0; measured in docs/jax-envs.md)."""
    settings = {"num_envs": 16, "num_steps": 128, "learning_rate": 1e-3, "anneal_lr": False, "gamma": 0.95}
    config = Config(
        env="playground/CartpoleBalance",
        total_timesteps=81_920,
        max_episode_steps=200,
        norm_obs=True,
        ent_coef=0.0,
        vf_clip_coef=None,
        **settings,
        **QUICK,
    )
    result = ppox.train(config)
    last = float(np.nanmean(result.metrics["episode_return"][0, -5:]))
    assert last > 160, result.metrics["episode_return"][0]


@pytest.mark.long
def test_playground_two_seeds_resume_bit_identically_and_evaluate(tmp_path):
    config = {"num_envs": 4, "num_steps": 8, "num_minibatches": 2, "update_epochs": 2, "run_dir": str(tmp_path)}
    first = ppox.train(
        env="playground/CartpoleBalance", total_timesteps=64, seeds=2, run_name="r", progress=False, **config
    )
    assert first.metrics["policy_loss"].shape == (2, 2)
    resumed = ppox.resume(first.run_path, total_timesteps=128)
    np.testing.assert_array_equal(resumed.metrics["policy_loss"][:, :2], first.metrics["policy_loss"])
    assert resumed.metrics["policy_loss"].shape == (2, 4)
    returns = ppox.evaluate(resumed.policy(), episodes=2)
    assert returns.shape == (2,) and np.isfinite(returns).all() and (returns > 0).all()
