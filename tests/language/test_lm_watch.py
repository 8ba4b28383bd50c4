"""Several rewards (their weighted sum, each logged as rewards/<name>), and watching an LM run: sample
completions in RUN/samples.jsonl and TensorBoard, each metrics.csv row with its own update's wall time, and
``ppox plot`` on the run folder. A tiny GPT-2 of the randomwalks task (two pretraining steps: its
completions are near random, which is all these tests need)."""

import csv
import functools
import json

import numpy as np
import pytest

import ppox.lm
from ppox.cli.lm import reward_flags
from ppox.errors import ConfigError
from ppox.language import randomwalks as rw
from ppox.language.hf import save
from ppox.language.rewards import make_rewards, weighted_total
from ppox.language.run_config import LMRunConfig

GRAPH = rw.make_graph(seed=0)
PATHS = functools.partial(rw.path_scores, GRAPH)


def length(prompts, completions):
    return [float(len(c)) for c in completions]


def summary_values(event_file):
    """tag -> the summary values of a TensorBoard event file (TFRecord framing, Event protos)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    data, values, pos = event_file.read_bytes(), {}, 0
    while pos < len(data):
        (size,) = struct.unpack("<Q", data[pos:pos + 8])
        for value in Event.FromString(data[pos + 12:pos + 12 + size]).summary.value:
            values.setdefault(value.tag, []).append(value)
        pos += 12 + size + 4
    return values


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, _ = rw.pretrain(GRAPH, steps=2, seed=0)
    folder = tmp_path_factory.mktemp("tiny")
    save(folder, model)
    return folder


def settings(folder, tmp_path, **changes):
    base = dict(model=str(folder), run_dir=str(tmp_path), max_new_tokens=6, temperature=1.0, prompts_per_update=4,
                samples_per_prompt=2, advantage="grpo", epochs=1, learning_rate=1e-4, updates=3, checkpoint_every=0)
    return {**base, **changes}


@pytest.mark.long  # (55 s on the loaded 2-core machine: 34 s of it compiling)
def test_the_score_is_the_weighted_sum_and_each_reward_is_logged(tiny, tmp_path):
    result = ppox.lm.train(**settings(tiny, tmp_path, reward_weights=(1.0, 0.5), samples_every=2),
                           prompts=rw.start_prompts(GRAPH), reward={"paths": PATHS, "length": length})
    m = result.metrics
    np.testing.assert_allclose(m["episode_return"], m["rewards/paths"] + 0.5 * m["rewards/length"], rtol=1e-9)
    np.testing.assert_allclose(m["rewards/length"], m["episode_length"])  # (length: the tokens of a completion)
    run = result.run_path
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["update"] for r in rows] == ["0", "1", "2"] and "rewards/length" in rows[0]
    walls = [float(r["wall_time"]) for r in rows]
    assert walls[0] < walls[1] < walls[2]  # each update's own time (a run of 3 updates is one chunk or more)
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {s["update"] for s in samples} == {1}  # --samples-every 2: updates 1, 3, ...
    for s in samples:
        assert s["reward"] == pytest.approx(s["rewards"]["paths"] + 0.5 * s["rewards"]["length"])
        assert s["rewards"]["length"] == len(s["completion"].strip("[]").split(","))
    (event_file,) = (run / "tb" / "seed_0").rglob("events*")
    values = summary_values(event_file)
    assert "rewards/length" in values and "losses/rewards/length" not in values
    (table,) = [v.tensor.string_val[0].decode() for v in values["samples/text_summary"]]
    assert table.startswith("| update | prompt | completion | reward |") and "\n| 1 | [" in table
    from ppox.experiments.plots import draw_runs
    fig = draw_runs([run])
    titles = {ax.get_title() for ax in fig.axes}
    assert {"score", "KL to the reference", "policy loss", "reward length"} <= titles
    assert all(ax.get_xlabel() == "completions" for ax in fig.axes if ax.get_title())


def test_tensorboard_names_as_the_other_trackers():
    from ppox.storage import tensorboard, trackers
    assert tensorboard.SAMPLES == trackers.SAMPLES
    for name in ("episode_return", "policy_loss", "rewards/length"):
        assert tensorboard.chart_name(name) == trackers.chart_name(name)


def test_reward_weights_and_flags():
    assert reward_flags(["--reward", "a:f", "--updates", "3", "--reward=b:g", "--reward", "c:h", "d:i"]) == (
        ["a:f", "b:g", "c:h", "d:i"], ["--updates", "3"])
    rewards = make_rewards([("f", length), ("f", length)], (2, -1))
    assert rewards.names == ("f", "f_2") and rewards.metric_names == ("rewards/f", "rewards/f_2")
    assert make_rewards([("f", length)]).metric_names == ()  # one reward: its score is episode_return
    np.testing.assert_array_equal(weighted_total([np.array([1.0, 2.0]), np.array([3.0, 5.0])], (2.0, -1.0)), [-1, -1])
    with pytest.raises(ConfigError, match="--reward-weights: 1 weights for 2 rewards \\(f, g\\)"):
        make_rewards([("f", length), ("g", length)], (1.0,))
    with pytest.raises(ConfigError, match="--reward-weights: 3 weights for 2 rewards"):
        LMRunConfig(model="m", reward=("a:f", "b:g"), reward_weights=(1, 2, 3))
    with pytest.raises(ConfigError, match="--reward-weights: 2 weights for 3 rewards"):
        LMRunConfig(model="m", reward=("a:f", "b:g"), reward_model="rm", reward_weights=(1, 2))
    assert LMRunConfig(model="m", reward="a:f").reward == ("a:f",)  # (one string, as before)
    assert LMRunConfig.from_dict({"model": "m", "reward": None}).reward == ()


def test_a_reward_weights_count_given_in_python_is_checked_before_the_run(tiny, tmp_path):
    with pytest.raises(ConfigError, match="2 weights for 1 rewards"):
        ppox.lm.train(**settings(tiny, tmp_path, reward_weights=(1.0, 2.0)), prompts=rw.start_prompts(GRAPH),
                      reward=PATHS)
    with pytest.raises(ConfigError, match="reward x: int is not a function"):
        ppox.lm.train(**settings(tiny, tmp_path), prompts=rw.start_prompts(GRAPH), reward={"x": 3})


def test_mask_truncated_and_the_kl_in_the_loss_reach_the_update(tiny):
    """prepare: --mask-truncated takes the completions that did not end out of the loss mask (only them);
    token_loss: with --kl-in loss the token loss grows by beta times the token mean of k3 against the
    reference's log-probs, and the reward carries no KL."""
    import jax
    import jax.numpy as jnp

    from ppox.language.hf import load
    from ppox.language.losses import k3
    from ppox.language.ppo import prepare, token_loss
    from ppox.language.sampling import Sampling, make_sampler

    model = load(tiny)
    out = make_sampler(model.config, Sampling(6, model.eos_ids, GRAPH.pad_id, temperature=1.0))(
        model.params, jnp.arange(1, 9)[:, None] % GRAPH.nodes, jnp.ones((8, 1), bool), jax.random.PRNGKey(0))
    ended = jnp.asarray([True, False] * 4)
    params, beta = {"policy": model.params, "critic": None}, jnp.float32(0.3)
    scores = jnp.linspace(0, 1, 8, dtype=jnp.float32)
    args = (model.config, params, model.params, jnp.arange(1, 9)[:, None] % GRAPH.nodes, jnp.ones((8, 1), bool),
            out.tokens, out.mask, scores, beta, ended)
    base = LMRunConfig(model="m", advantage="grpo", samples_per_prompt=2, temperature=1.0)
    kept, _ = prepare(base, *args)
    masked, _ = prepare(base.replace(mask_truncated=True), *args)
    np.testing.assert_array_equal(kept.loss_mask, out.mask)
    np.testing.assert_array_equal(masked.loss_mask, np.asarray(out.mask) & np.asarray(ended)[:, None])
    in_loss, stats = prepare(base.replace(kl_in="loss"), *args)
    assert float(stats["non_score_reward"]) == 0.0
    rng = np.random.default_rng(0)
    batch = in_loss._replace(ref_logprobs=in_loss.old_logprobs + jnp.asarray(rng.normal(0, 0.3, out.mask.shape),
                                                                              jnp.float32))
    with_kl, _ = token_loss(base.replace(kl_in="loss"), model.config, params, batch, kl_coef=beta)
    without, _ = token_loss(base, model.config, params, batch, kl_coef=beta)
    mask = np.asarray(out.mask)
    expected = 0.3 * (np.asarray(k3(batch.old_logprobs, batch.ref_logprobs)) * mask).sum() / mask.sum()
    assert float(with_kl) - float(without) == pytest.approx(expected, rel=1e-4)


def test_a_resumed_run_drops_the_samples_after_its_checkpoint(tmp_path):
    """As metrics.csv's rows: the samples of updates at or after the update a run resumes from are written again."""
    from ppox.storage.runlog import _keep_samples_before

    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"update": u, "prompt": "p", "completion": "c", "reward": 0.0}) + "\n"
                            for u in (0, 1, 2, 3)) + "not json\n")
    _keep_samples_before(path, 2)
    assert [json.loads(line)["update"] for line in path.read_text().splitlines()] == [0, 1]
    _keep_samples_before(tmp_path / "none.jsonl", 2)  # (no file: nothing to do)
    assert not (tmp_path / "none.jsonl").exists()


@pytest.mark.parametrize("flags, words", [
    (["--reward", "a:f", "--reward", "b:g", "--reward-weights", "1"], "--reward-weights: 1 weights for 2 rewards"),
    (["--reward", "a:f", "b:g", "--reward-model", "rm", "--reward-weights", "1", "2"], "2 weights for 3 rewards"),
    (["--reward", "a:f", "--reward=nocolon"], "--reward nocolon: write it module:function"),
    (["--reward", "a:f", "--loss", "gspo"], "--loss gspo gives each completion one ratio"),
])
def test_the_command_line_refuses_bad_reward_and_loss_combinations_in_one_line(flags, words, capsys):
    from ppox.cli import main

    assert main(["lm", "train", "--model", "m", "--prompts", "p.jsonl", *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_the_trackers_table_has_a_column_per_reward():
    """W&B's and MLflow's table of sample completions: each of several rewards' score after the four columns."""
    from ppox.storage.trackers import SAMPLES, keep_samples, sample_columns

    names = ("episode_return", "rewards/paths", "rewards/length")
    assert sample_columns(names) == ["update", "prompt", "completion", "reward", "rewards/paths", "rewards/length"]
    assert sample_columns(("episode_return",)) == ["update", "prompt", "completion", "reward"]
    rows: list = []
    sample = {"update": 3, "prompt": "p", "completion": "c", "reward": 2.0, "rewards": {"paths": 1.0, "length": 2.0}}
    keep_samples(rows, {SAMPLES: [sample]}, 5, names)
    keep_samples(rows, {SAMPLES: [{"prompt": "q", "completion": "d", "reward": 1.5}]}, 5, ("episode_return",))
    assert rows == [[3, "p", "c", 2.0, 1.0, 2.0], [5, "q", "d", 1.5]]
