"""Craftax on the fused driver (issue 35, item 3): the ids are listed and made, the achievements and the Crafter
score are per-episode metrics (against float64 references), a run with --memory gru learns past a random
policy's measured return, and two seeds resume bit-identically from a checkpoint."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppox
from ppox.agent.metrics import final_return
from ppox.envs import families
from ppox.envs.episode_metrics import extra_metric_names, update_means
from ppox.envs.families import CRAFTAX_IDS, listing
from ppox.errors import ConfigError

craftax = pytest.importorskip("craftax")
from ppox.envs.craftax import crafter_score, make  # noqa: E402
from ppox.envs.jax_envs import make_autoreset_step, make_jax_env  # noqa: E402

CLASSIC = "Craftax-Classic-Symbolic-v1"


def test_the_ids_are_listed_and_made_with_their_shapes():
    listed = {i for section in listing() if section.family == "craftax" for i in section.ids}
    assert listed == set(CRAFTAX_IDS)
    env, params, spec = make_jax_env(CLASSIC)
    assert spec.obs_shape == (1345,) and spec.action_dims == (17,) and params.max_steps_in_episode == 10_000
    names = extra_metric_names(env)
    assert len(names) == 22 + 2 and names[0] == "achievement/collect_wood" and names[-2:] == ("score", "return_percent")
    _, _, pixels = make_jax_env("Craftax-Classic-Pixels-v1")
    assert pixels.obs_shape == (63, 63, 3)  # (an image: the CNN torso)
    assert ppox.Config.preset(CLASSIC).memory == "gru"


def test_an_unknown_id_and_a_missing_extra_are_one_line_errors(monkeypatch):
    with pytest.raises(ConfigError, match="not a Craftax id; they are Craftax-Classic-Symbolic-v1") as err:
        make("Craftax-Classic-Text-v1")
    assert "\n" not in str(err.value)
    monkeypatch.setattr(families.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r'the craftax envs need craftax: pip install "ppox\[craftax\]"'):
        families.load_maker(families.family_for(CLASSIC, "fused"), "fused")


def test_the_crafter_score_against_a_float64_reference():
    """S = exp(mean ln(1 + s_i)) - 1: for rates (100, 0, 50) that is the cube root of 101 * 1 * 51, minus 1."""
    rates = np.array([100.0, 0.0, 50.0])
    assert float(crafter_score(jnp.asarray(rates, jnp.float32))) == pytest.approx(5151 ** (1 / 3) - 1, rel=1e-6)
    rng = np.random.default_rng(0)
    rates = rng.uniform(0, 100, 22)
    reference = math.exp(sum(math.log(1 + s) for s in rates) / 22) - 1
    assert float(crafter_score(jnp.asarray(rates, jnp.float32))) == pytest.approx(reference, rel=1e-5)
    assert float(crafter_score(jnp.zeros(22))) == 0.0
    assert float(crafter_score(jnp.full(22, 100.0))) == pytest.approx(100)


@pytest.mark.long  # (a Craftax step and world generation compile for a minute or two on 2 busy cores)
def test_achievements_are_read_where_an_episode_ends():
    """An episode cut by the time limit ends truncated (not terminated) and reports what it unlocked."""
    env, params, _ = make_jax_env(CLASSIC, max_episode_steps=5)
    unlocked = jnp.zeros(22, bool).at[jnp.array([0, 3])].set(True)
    step = make_autoreset_step(env, params, with_episode_values=True)

    def four_steps_in(key):  # (one compiled program: craftax's world generation is slow op by op)
        _, state = env.reset(key, params)
        state = state.replace(achievements=unlocked, timestep=jnp.asarray(4, jnp.int32))
        return step(jax.random.split(key), state, 0)

    _, after, _, terminated, truncated, _, values = jax.jit(four_steps_in)(jax.random.PRNGKey(1))
    assert bool(truncated) and not bool(terminated) and int(after.timestep) == 0  # (reset)
    assert float(values["achievement/collect_wood"]) == 100.0 and float(values["achievement/collect_sapling"]) == 100
    assert float(values["achievement/place_table"]) == 0.0


def test_achievement_rates_are_means_over_the_episodes_that_ended():
    """The update's means count only the steps where an episode ended; the score and return_percent follow."""
    env, _, _ = make_jax_env(CLASSIC)
    # three steps x two envs, episodes ending at two of them: the rates are means over those two
    ended = np.array([[True, False], [False, False], [False, True]])
    per_name = {name: np.zeros((3, 2)) for name in env.episode_metric_names}
    per_name["achievement/collect_wood"] = np.array([[100.0, 100.0], [100.0, 100.0], [0.0, 100.0]])
    per_name["achievement/eat_cow"] = np.array([[100.0, 0.0], [0.0, 0.0], [100.0, 0.0]])
    means = update_means(env, {k: jnp.asarray(v, jnp.float32) for k, v in per_name.items()}, jnp.asarray(ended), 4.4)
    rates = np.zeros(22)
    rates[0], rates[2] = 100.0, 50.0  # collect_wood in both ended episodes, eat_cow in one of them
    assert float(means["achievement/collect_wood"]) == 100.0 and float(means["achievement/eat_cow"]) == 50.0
    assert float(means["score"]) == pytest.approx(math.exp(sum(math.log1p(s) for s in rates) / 22) - 1, rel=1e-5)
    assert float(means["return_percent"]) == pytest.approx(100 * 4.4 / 22, rel=1e-6)
    none = update_means(env, {k: jnp.asarray(v, jnp.float32) for k, v in per_name.items()}, jnp.zeros((3, 2), bool), 0)
    assert np.isnan(float(none["achievement/collect_wood"])) and np.isnan(float(none["score"]))


class Counter:
    """A toy gymnax-style env: the state counts steps from a random start in [100, 200); an action of 1 ends the
    episode; the observation is the count."""

    reset_ratio = 4

    def reset_env(self, key, params):
        start = jax.random.randint(key, (), 100, 200).astype(jnp.float32)
        return start[None], start

    def step_env(self, key, state, action, params):
        return (state + 1)[None], state + 1, jnp.float32(1), action == 1, {}

    def is_truncated(self, state, params):
        return jnp.zeros((), bool)


def test_optimistic_resets_hand_each_ended_episode_one_of_the_new_starts():
    """8 envs, ratio 4: two new starts per step; the envs whose episodes end take them in turn (the third takes
    the first again); the others step on, and every env's final observation is the one its step reached."""
    from ppox.envs.optimistic_reset import batched_step, reset_slots

    env = Counter()
    assert reset_slots(jnp.array([False, True, True, False, True]), 2).tolist() == [1, 0, 1, 1, 0]  # (1, 2, 4 ended)
    step = batched_step(env, None, 8, None)
    keys = jax.random.split(jax.random.PRNGKey(0), (8, 2))
    state = jnp.arange(8, dtype=jnp.float32)
    action = jnp.array([0, 1, 0, 1, 1, 0, 0, 0])
    obs, after, _, terminated, truncated, final_obs, values = step(keys, state, action)
    starts = [float(env.reset_env(keys[i, 1], None)[1]) for i in range(2)]
    assert np.asarray(final_obs)[:, 0].tolist() == list(range(1, 9)) and not truncated.any() and values == {}
    expected = [1.0, starts[0], 3.0, starts[1], starts[0], 6.0, 7.0, 8.0]
    assert np.asarray(after).tolist() == expected and np.asarray(obs)[:, 0].tolist() == expected
    assert np.asarray(terminated).tolist() == [bool(a) for a in action.tolist()]


SMALL = {"memory_size": 32, "hidden_sizes": (32,), "save": False, "progress": False, "seed": 0}


@pytest.mark.long  # (compile-bound: a Craftax program compiles for minutes on 2 busy cores)
def test_two_seeds_log_the_achievements_and_resume_bit_identically(tmp_path):
    """(A constant learning rate, so that a run resumed to a new end and one trained to it straight are the same.)"""
    config = {**SMALL, "num_envs": 4, "num_steps": 16, "num_minibatches": 2, "save": True, "run_dir": str(tmp_path)}
    config["anneal_lr"] = False
    first = ppox.train(env=CLASSIC, total_timesteps=128, seeds=2, run_name="r", **config)
    assert first.config.memory == "gru" and first.metrics["episode_return"].shape == (2, 2)
    assert first.metrics["achievement/collect_wood"].shape == (2, 2) and "score" in first.metrics
    header = (first.run_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"achievement/collect_wood", "achievement/collect_diamond", "score", "return_percent"} <= set(header)
    resumed = ppox.resume(first.run_path, total_timesteps=256)
    np.testing.assert_array_equal(resumed.metrics["policy_loss"][:, :2], first.metrics["policy_loss"])
    straight = ppox.train(env=CLASSIC, total_timesteps=256, seeds=2, run_name="s", **config)
    for name in ("policy_loss", "value_loss", "episode_return", "achievement/collect_wood"):
        np.testing.assert_array_equal(resumed.metrics[name], straight.metrics[name])


@pytest.mark.long  # (about 20 minutes on 2 cores shared with a dozen other processes; compile-bound)
@pytest.mark.learning
def test_craftax_classic_learns_past_a_random_policy():
    """Craftax-Classic-Symbolic-v1: a uniformly random policy returns 1.40 (std 1.23 over 438 episodes of 64 envs x
    1,000 steps, mean length 146; Crafter score 1.8). PPO (the preset with an MLP of two 128-unit layers instead of
    the GRU, 32 envs, lr 1e-3, seed 0) returns 3.0 after 41k steps and 3.84 over the last 10% of 204,800 steps
    (the mean of the updates' Crafter scores: 3.0)."""
    result = ppox.train(
        env=CLASSIC,
        total_timesteps=204_800,
        num_envs=32,
        num_steps=64,
        num_minibatches=4,
        learning_rate=1e-3,
        memory="none",
        hidden_sizes=(128, 128),
        save=False,
        progress=False,
        seed=0,
    )
    assert final_return(result.metrics)[0] > 2.5, result.metrics["episode_return"][0, -10:]


@pytest.mark.long  # (a minute on 2 busy cores: the renderer and the CNN compile)
def test_the_pixel_variant_trains_with_the_cnn_torso():
    config = {**SMALL, "num_envs": 4, "num_steps": 16, "num_minibatches": 2}
    result = ppox.train(env="Craftax-Classic-Pixels-v1", total_timesteps=128, **config)
    assert result.spec.obs_shape == (63, 63, 3) and "actor_cnn" in result.params["params"]
    assert np.isfinite(result.metrics["policy_loss"]).all()
