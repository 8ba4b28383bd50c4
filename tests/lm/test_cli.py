"""`ppox lm train | sample | reward-model` on the tiny GPT-2 fixture, with a reward named module:function."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from ppox.cli import main
from ppox.language.hf import load
from ppox.language.run_config import LMRunConfig
from ppox.lm.training import make_driver, make_task
from tests.helpers import FIXTURES

GPT2 = FIXTURES / "lm" / "gpt2"
REWARD = "def longer(prompts, completions):\n    return [len(c) / 10 for c in completions]\n"


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": p}) for p in ["the cat", "a dog sat", "policy", "ratio"]) + "\n")
    return path


def test_lm_train_then_sample_the_trained_model(tmp_path, prompts, monkeypatch, capsys):
    (tmp_path / "my_reward.py").write_text(REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["lm", "train", "--model", str(GPT2), "--prompts", str(prompts), "--reward", "my_reward:longer",
                 "--updates", "2", "--prompts-per-update", "4", "--max-new-tokens", "4", "--run-dir",
                 str(tmp_path / "runs"), "--run-name", "r", "--no-tensorboard"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "2 updates" in out.out and "KL to the reference" in out.out
    run = tmp_path / "runs" / "r"
    assert (run / "model" / "tokenizer.json").is_file() and (run / "metrics.csv").is_file()
    assert main(["lm", "sample", "--model", str(run / "model"), "--prompts", str(prompts), "--max-new-tokens",
                 "3", "--batch-size", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["prompt"] for line in lines] == ["the cat", "a dog sat", "policy", "ratio"]
    assert all(isinstance(line["completion"], str) for line in lines)


@pytest.mark.parametrize("args, words", [
    (["--reward", "nope"], "module:function"),
    (["--reward", "no_such_module_xyz:f"], "cannot import"),
    (["--reward", "json:dumps", "--advantage", "grpo"], "--samples-per-prompt 2"),
])
def test_lm_train_errors_are_one_line(tmp_path, prompts, capsys, args, words):
    code = main(["lm", "train", "--model", str(GPT2), "--prompts", str(prompts), "--no-save", *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_lm_without_a_command_prints_usage(capsys):
    assert main(["lm"]) == 2
    assert "reward-model" in capsys.readouterr().out


@pytest.mark.long
def test_reward_model_learns_a_preference_and_rewards_a_ppo_run(tmp_path, prompts, capsys):
    """Pairs that differ only in the last word ("yes" preferred to "no"): held-out accuracy 1 after 3 epochs;
    the saved folder scores a "yes" completion higher, and `lm train --reward-model` runs on it."""
    pairs = tmp_path / "pairs.jsonl"
    words = ["the cat", "a dog", "policy", "ratio", "clip", "value", "the mat", "a sat"]
    pairs.write_text("\n".join(json.dumps({"prompt": f"{a} {b}", "chosen": " yes", "rejected": " no"})
                               for a in words for b in words[:5]) + "\n")
    rm_dir = tmp_path / "rm"
    assert main(["lm", "reward-model", "--model", str(GPT2), "--pairs", str(pairs), "--out", str(rm_dir),
                 "--epochs", "3", "--learning-rate", "1e-3", "--held-out", "0.2"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("held-out accuracy ")[1].split()[0])
    assert accuracy >= 0.9, out
    from ppox.language.reward_model import load_reward_model

    rm = load_reward_model(rm_dir)
    texts = [json.loads(line)["prompt"] + json.loads(line)[k] for line in pairs.read_text().splitlines()
             for k in ("chosen", "rejected")]
    assert abs(float(rm.scores(texts).mean())) < 0.1  # normalised on the training pairs (80% of these)
    yes, no = rm(["the cat", "a new prompt"], [" yes", " yes"]), rm(["the cat", "a new prompt"], [" no", " no"])
    assert yes[0] > no[0] and yes[1] > no[1]
    assert main(["lm", "train", "--model", str(GPT2), "--prompts", str(prompts), "--reward-model", str(rm_dir),
                 "--updates", "1", "--prompts-per-update", "4", "--max-new-tokens", "3", "--no-save"]) == 0
    # the critic may start as the reward model: its trunk (trained, so not the policy's) and its head
    config = LMRunConfig(model=str(GPT2), prompts=str(prompts), reward_model=str(rm_dir), critic_from_reward_model=True)
    model = load(GPT2)
    critic = make_driver(config, model, make_task(config, model, None, None)).init().params["critic"]
    for a, b in zip(jax.tree.leaves(critic), jax.tree.leaves({"trunk": rm.model.params, "head": rm.head})):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(critic["trunk"]["wte"], model.params["wte"])


def test_lm_train_without_prompts_says_which_flag(capsys):
    assert main(["lm", "train", "--model", str(GPT2), "--reward", "json:dumps", "--no-save"]) == 2
    assert "--prompts FILE.jsonl" in capsys.readouterr().err


def test_an_empty_prompt_is_named(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "the cat"}\n{"prompt": ""}\n')
    assert main(["lm", "train", "--model", str(GPT2), "--prompts", str(path), "--reward", "json:dumps",
                 "--no-save"]) == 2
    assert "prompt 1 has no tokens" in capsys.readouterr().err
