"""A policy trained with action masks, used in one's own loop: ``act`` takes the legal actions (``mask=``, the
step's ``info``, or an env with ``action_masks()``), and refuses in one line where it is given none, since
acting without them can choose an illegal action."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.acting.policy import Policy
from ppox.agent.agent import init_params, make_network
from ppox.core.normalize import RunningMeanStd
from ppox.envs.spec import spec_from_action_space
from ppox.errors import ConfigError
from tests import toy_envs

QUICK = dict(num_envs=4, num_steps=32, num_minibatches=2, update_epochs=1, progress=False, tensorboard=False)


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    """A policy trained where info["action_mask"] allows actions 1 and 3 only (saved, to be loaded too)."""
    folder = tmp_path_factory.mktemp("masked")
    return ppox.train(ppox.Config(**QUICK, total_timesteps=256, run_dir=str(folder), run_name="m"),
                      env=toy_envs.masked_choice("info"))


def test_act_without_the_mask_refuses_in_one_line(masked_run):
    obs, _ = toy_envs.MaskedChoice("info").reset(seed=0)
    for policy in (masked_run.policy(), ppox.load(masked_run.run_path)):  # recorded with the saved policy too
        assert policy.masked and policy.spec.action_mask == "info"
        with pytest.raises(ValueError, match=r"trained with action masks \(info\['action_mask'\]\).*act\(obs, "
                                             r"mask=\.\.\.\)") as caught:
            policy.act(obs)
        assert "\n" not in str(caught.value)


def test_act_takes_the_mask_from_the_mask_the_info_or_the_env(masked_run):
    policy = masked_run.policy()
    env = toy_envs.MaskedChoice("info", legal=(2,))  # another env's legal action: the policy must follow it
    obs, info = env.reset(seed=0)
    assert policy.act(obs, info=info) == 2
    assert policy.act(obs, mask=np.array([0, 0, 0, 1], bool)) == 3
    by_method = gym.wrappers.RecordEpisodeStatistics(toy_envs.MaskedChoice("method", legal=(0,)))
    assert policy.act(obs, env=by_method) == 0  # action_masks() found through a wrapper
    with pytest.raises(ValueError, match="has no action_masks"):
        policy.act(obs, env=toy_envs.MaskedChoice("info"))


def test_a_vector_envs_info_masks_a_batch(masked_run):
    venv = gym.vector.SyncVectorEnv([toy_envs.masked_choice("info", legal=(0,)),
                                     toy_envs.masked_choice("info", legal=(2,))])
    obs, info = venv.reset(seed=0)
    assert policy_actions(masked_run.policy(), obs, info).tolist() == [0, 2]
    venv.close()


def policy_actions(policy, obs, info):
    return np.asarray(policy.act(obs, info=info, deterministic=False, key=jax.random.PRNGKey(1)))


def test_evaluating_a_masked_policy_on_an_env_without_masks_is_a_clear_error(masked_run):
    with pytest.raises(ConfigError, match="trained with action masks, and env tests.toy_envs:MaskedChoice offers none"):
        ppox.evaluate(masked_run.policy(), episodes=1, env=toy_envs.masked_choice("nowhere"))


def test_a_policy_trained_without_masks_acts_as_before():
    config = ppox.Config(action_mask="off", **QUICK)
    spec = spec_from_action_space((2,), gym.spaces.Discrete(4))
    params = init_params(make_network(config, spec), jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    policy = Policy(config, spec, params, RunningMeanStd.create((2,)))
    assert not policy.masked and policy.act(np.zeros(2, np.float32)) in range(4)


def test_a_pgx_game_policy_records_its_masks():
    pytest.importorskip("pgx")
    from ppox.envs.jax_envs import make_jax_env

    config = ppox.Config.preset("TicTacToe-pgx")
    spec = make_jax_env("TicTacToe-pgx")[2]
    assert spec.action_mask == "state"
    params = init_params(make_network(config, spec), jax.random.PRNGKey(0), jnp.zeros((1, *spec.obs_shape)))
    policy = Policy(config, spec, params, RunningMeanStd.create(spec.obs_shape))
    with pytest.raises(ValueError, match=r"its game's legal moves\).*act\(obs, mask=\.\.\.\)"):
        policy.act(np.zeros(spec.obs_shape, np.float32))
    legal = np.zeros(9, bool)
    legal[4] = True
    assert policy.act(np.zeros(spec.obs_shape, np.float32), mask=legal) == 4
