"""JaxMARL's multi-agent envs on the fused driver (issue 36, item 1): agents stacked as rows of the batch, the
per-agent reward and done bookkeeping against a hand-computed example, IPPO and MAPPO (--critic world_state)
learning on MPE simple_spread past a random policy's measured return, a recurrent MAPPO run of two seeds that
resumes bit-identically, a saved policy acting on a dict of observations, and the one-line refusals."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.errors import ConfigError

jaxmarl = pytest.importorskip("jaxmarl")

from jaxmarl.environments import spaces  # noqa: E402
from jaxmarl.environments.multi_agent_env import MultiAgentEnv  # noqa: E402

from ppox.drivers.agents import agent_metrics  # noqa: E402
from ppox.drivers.fused_program import build  # noqa: E402
from ppox.envs import jaxmarl as adapter  # noqa: E402
from ppox.envs.families import JAXMARL_IDS, listing  # noqa: E402

SPREAD = "MPE_simple_spread_v3"
QUICK = {"num_envs": 16, "num_steps": 128, "save": False, "progress": False, "seed": 0}
# A uniformly random policy on MPE_simple_spread_v3 (3 agents, shared reward, 26 steps): team return -82.9
# (standard error 0.55, std 24.6), each agent -27.6; measured over 2,000 episodes (docs/multi-agent.md).
RANDOM_TEAM_RETURN = -82.9


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class ToyState:
    t: jax.Array


class TwoAgents(MultiAgentEnv):
    """Agent "a" (observation [t, 1]) earns 1 a step, agent "b" (observation [t]) 10; b is done from its second
    step, the episode ends after the third (both done). No step limit of its own: every end is terminal."""

    def __init__(self):
        super().__init__(num_agents=2)
        self.agents = ["a", "b"]
        self.observation_spaces = {"a": spaces.Box(-1, 9, (2,)), "b": spaces.Box(-1, 9, (1,))}
        self.action_spaces = {"a": spaces.Discrete(3), "b": spaces.Discrete(3)}

    def obs(self, t):
        return {"a": jnp.stack([t, 1.0]).astype(jnp.float32), "b": jnp.asarray([t], jnp.float32)}

    def reset(self, key):
        return self.obs(0.0), ToyState(jnp.zeros((), jnp.int32))

    def step_env(self, key, state, actions):
        t = state.t + 1
        end = t >= 3
        dones = {"a": end, "b": t >= 2, "__all__": end}
        return self.obs(t.astype(jnp.float32)), ToyState(t), {"a": 1.0, "b": 10.0}, dones, {}


def toy_fused(monkeypatch, **config):
    monkeypatch.setattr(adapter, "make_jaxmarl_env", lambda env_id: TwoAgents())
    return build(ppox.Config(env="MPE_toy", num_envs=2, num_steps=6, save=False, progress=False, **config))


def test_the_rows_bookkeeping_matches_a_hand_computed_episode(monkeypatch):
    """Two envs of TwoAgents, 6 steps (two whole episodes each): rows are (env 0: a, b; env 1: a, b)."""
    fused = toy_fused(monkeypatch, agent_id=True)
    assert fused.agents == 2 and fused.spec.obs_shape == (4,) and fused.spec.agents == ("a", "b")
    runner, traj = fused.collect(fused.init(jax.random.PRNGKey(0)))
    # observations: a's [t, 1] and b's [t] zero-padded, then the one-hot agent id; t = 0, 1, 2, 0, 1, 2
    t = np.array([0, 1, 2, 0, 1, 2], np.float32)
    np.testing.assert_array_equal(np.asarray(traj.obs)[:, 0], np.stack([t, np.ones(6), np.ones(6), 0 * t], 1))
    np.testing.assert_array_equal(np.asarray(traj.obs)[:, 3], np.stack([t, 0 * t, 0 * t, np.ones(6)], 1))
    np.testing.assert_array_equal(np.asarray(traj.reward), np.tile([1.0, 10.0], (6, 2)))
    a_done, b_done = [False, False, True] * 2, [False, True, True] * 2  # b is done from its 2nd step
    np.testing.assert_array_equal(np.asarray(traj.terminated), np.stack([a_done, b_done] * 2, 1))
    assert not np.asarray(traj.truncated).any()
    # an episode is logged for every row when the env's episode ends: a returned 3, b 30, the team 33
    np.testing.assert_array_equal(np.asarray(traj.finished_return)[[2, 5]], [[3.0, 30.0] * 2] * 2)
    np.testing.assert_array_equal(np.asarray(traj.finished_length)[[2, 5]], [[3] * 4] * 2)
    metrics = jax.device_get(agent_metrics(fused.env, traj.finished_return, traj.finished_length))
    assert metrics == {"team_return": 33.0, "return_a": 3.0, "return_b": 30.0}
    assert fused.metric_names[-3:] == ("team_return", "return_a", "return_b")


def test_a_time_limit_truncates_every_row(monkeypatch):
    """--max-episode-steps 2 ends TwoAgents' episodes after 2 steps: truncated rows (b, done at step 2, is not
    terminated there: the episode was cut), then a reset."""
    fused = toy_fused(monkeypatch, max_episode_steps=2)
    _, traj = fused.collect(fused.init(jax.random.PRNGKey(0)))
    ends = np.array([False, True] * 3)
    np.testing.assert_array_equal(np.asarray(traj.truncated), np.stack([ends] * 4, 1))
    assert not np.asarray(traj.terminated).any()
    np.testing.assert_array_equal(np.asarray(traj.obs)[:, 0, 0], [0, 1] * 3)


def test_the_world_state_goes_to_the_critic_only():
    """MAPPO on simple_spread: each row is [own observation (18), every agent's observation (54)]; the actor's
    first layer reads 18 inputs, the critic's 54."""
    fused = build(ppox.Config(env=SPREAD, critic="world_state", **QUICK))
    assert fused.spec.obs_shape == (72,) and fused.spec.actor_obs == 18
    runner = fused.init(jax.random.PRNGKey(0))
    obs = np.asarray(runner.obs).reshape(16, 3, 72)
    np.testing.assert_array_equal(obs[:, :, 18:], np.repeat(obs[:, :, :18].reshape(16, 1, 54), 3, axis=1))
    params = runner.params["params"]
    assert params["actor_trunk"]["Dense_0"]["kernel"].shape[0] == 18
    assert params["critic_trunk"]["Dense_0"]["kernel"].shape[0] == 54


@pytest.mark.parametrize(
    "config, message",
    [
        ({"env": "CartPole-v1", "critic": "world_state"}, "are for multi-agent envs"),
        ({"env": "CartPole-v1", "agent_id": True}, "are for multi-agent envs"),
        ({"env": SPREAD, "critic": "world_state", "shared_trunk": True}, "drop --shared-trunk"),
        ({"env": "hanabi", "critic": "world_state"}, "hanabi has no world state"),
        ({"env": "MPE_no_such_v9"}, "not a JaxMARL id"),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(config, message):
    with pytest.raises(ConfigError, match=message) as err:
        ppox.train(**{**QUICK, **config})
    assert "\n" not in str(err.value)


def test_the_envs_are_listed():
    listed = {i for section in listing() for i in section.ids}
    assert set(JAXMARL_IDS) <= listed


def final_team_return(result, updates=10) -> float:
    return float(np.nanmean(result.metrics["team_return"][0, -updates:]))


@pytest.mark.long
@pytest.mark.learning
@pytest.mark.parametrize("critic, learning_rate", [("local", 2.5e-3), ("world_state", 1e-3)])
def test_ippo_and_mappo_learn_simple_spread(critic, learning_rate):
    """IPPO and MAPPO on simple_spread, JaxMARL's MPE settings (16 envs x 128 steps, 4 epochs of 4 minibatches)
    at a higher learning rate, 204,800 steps (90 s under load): a random policy's team return is -82.9 (2,000
    episodes); seed 0's last 10 updates measured -62 (IPPO, lr 2.5e-3) and -62 (MAPPO, lr 1e-3)."""
    result = ppox.train(env=SPREAD, total_timesteps=204_800, learning_rate=learning_rate, critic=critic, **QUICK)
    assert final_team_return(result) > -70.0, result.metrics["team_return"][0, -10:]


@pytest.mark.long
def test_a_recurrent_mappo_run_resumes_bit_identically_and_its_policy_acts_for_every_agent(tmp_path):
    """--memory gru --critic world_state --agent-id (with JaxMARL's --post-memory-sizes and --grad-clip per_network),
    two seeds, a constant learning rate: a run of 2 updates
    resumed to 4 equals a run of 4 (bit for bit); metrics.csv has the team's and each agent's return; the saved
    policy acts on a dict of observations and ``ppox.evaluate`` plays whole episodes (team returns)."""
    config = {
        **QUICK,
        "num_envs": 4,
        "num_steps": 16,
        "num_minibatches": 2,
        "memory": "gru",
        "memory_size": 16,
        "critic": "world_state",
        "agent_id": True,
        "post_memory_sizes": (8,),
        "grad_clip": "per_network",
        "seeds": 2,
        "anneal_lr": False,  # (annealed, the schedule of a run follows its own end: 2 updates or 4)
        "save": True,
        "run_dir": str(tmp_path),
    }
    first = ppox.train(env=SPREAD, total_timesteps=128, run_name="first", **config)
    resumed = ppox.resume(first.run_path, total_timesteps=256)
    whole = ppox.train(env=SPREAD, total_timesteps=256, run_name="whole", **config)
    for name in ("policy_loss", "value_loss", "episode_return", "team_return"):
        np.testing.assert_array_equal(resumed.metrics[name], whole.metrics[name])
    header = (whole.run_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"team_return", "return_agent_0", "return_agent_2"} <= set(header)
    policy = ppox.load(whole.run_path)
    obs = {f"agent_{i}": np.zeros(18, np.float32) for i in range(3)}
    actions, state = policy.act(obs, policy.initial_state(3))
    assert set(actions) == set(obs) and all(0 <= int(a) < 5 for a in actions.values())
    returns = ppox.evaluate(policy, episodes=4)
    assert returns.shape == (4,) and np.isfinite(returns).all() and (returns < 0).all()  # (distances: negative)
