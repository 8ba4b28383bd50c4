"""Hostile settings, rewards and folders for `ppox lm` (issue 32): one-line errors before any work, rewards that
misbehave stop the run with the last checkpoint kept, and a run killed before RUN/model gets it on resume."""

import errno
import json
import shutil
import threading

import jax
import numpy as np
import pytest

import ppox.lm
from ppox.cli import main
from ppox.drivers import lm as lm_driver
from ppox.errors import ConfigError, RunWriteError
from ppox.language import generate
from ppox.language import reward_model as reward_model_module
from ppox.language.hf import load
from ppox.lm import training
from ppox.storage import tensorboard
from ppox.storage.checkpoint import list_checkpoints
from tests.helpers import FIXTURES

GPT2 = FIXTURES / "lm" / "gpt2"
PROMPTS = ["the cat", "a dog sat", "policy", "ratio"]
QUICK = dict(model=str(GPT2), prompts_per_update=2, max_new_tokens=2, epochs=1, tensorboard=False)


def length(prompts, completions):
    return [len(c) / 10 for c in completions]


def not_loaded(*args, **kwargs):
    raise AssertionError("the model was loaded before the settings were checked")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "chosen": " yes", "rejected": " no"}) + "\n" for p in PROMPTS))
    return path


def test_reward_model_out_must_be_new_and_its_settings_are_checked_first(tmp_path, pairs, capsys, monkeypatch):
    """(Before: --out over a Qwen2 folder made it a GPT-2 reward model; --learning-rate nan saved a NaN model.)"""
    qwen = tmp_path / "qwen2"
    shutil.copytree(FIXTURES / "lm" / "qwen2", qwen)
    before = {p.name: p.read_bytes() for p in qwen.iterdir()}
    monkeypatch.setattr(reward_model_module, "load", not_loaded)
    base = ["lm", "reward-model", "--model", str(GPT2), "--pairs", str(pairs)]
    assert main([*base, "--out", str(qwen)]) == 2
    err = one_line_error(capsys)
    assert "already holds files" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in qwen.iterdir()} == before
    for lr in ("nan", "-1", "inf"):
        assert main([*base, "--out", str(tmp_path / "new"), "--learning-rate", lr]) == 2
        assert "--learning-rate" in one_line_error(capsys)
    assert main([*base, "--out", str(tmp_path / "new"), "--seed", "-3"]) == 2
    assert "--seed -3" in one_line_error(capsys)
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    rm, _ = ppox.lm.train_reward_model(GPT2, ppox.lm.read_pairs(pairs), qwen, overwrite=True)
    assert load(qwen).config == rm.model.config and (qwen / "reward_head.safetensors").is_file()


@pytest.mark.parametrize("args, words", [
    (["--reward", ":f"], "write it module:function"),
    (["--reward", ".x:f"], "write it module:function"),
    (["--reward", "bad_at_import:f"], "cannot import it (RuntimeError: no"),
    (["--reward", "exits_at_import:f"], "cannot import it (SystemExit: 0)"),
    (["--reward-timeout", "nan"], "--reward-timeout nan"),
])
def test_resume_with_a_reward_that_cannot_be_used_is_one_line(tmp_path, capsys, monkeypatch, args, words):
    (tmp_path / "bad_at_import.py").write_text("raise RuntimeError('no')\n")
    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["lm", "train", "--resume", str(tmp_path / "run"), *args]) == 2
    assert words in one_line_error(capsys)


@pytest.mark.parametrize("seed", ["-1", str(2**80)])
def test_an_lm_seed_out_of_range_is_one_line(capsys, monkeypatch, seed):
    monkeypatch.setattr(training, "load", not_loaded)
    assert main(["lm", "train", "--model", str(GPT2), "--prompts", "p.jsonl", "--reward", "json:dumps",
                 "--seed", seed, "--no-save"]) == 2
    assert "--seed" in one_line_error(capsys)
    with pytest.raises(ConfigError, match="seed"):
        ppox.lm.sample(GPT2, PROMPTS, seed=int(seed))


def test_an_update_larger_than_the_machine_is_refused_before_anything_is_built(monkeypatch):
    """(Before: --prompts-per-update 10^7 ran 88 s into an XLA out-of-memory traceback.) With the prompts'
    length known, before the sampler or the state is made; a lower bound before the model loads at all."""
    monkeypatch.setattr(lm_driver, "make_sampler", not_loaded)
    with pytest.raises(ConfigError, match=r"10,000,000 completions .* need about [\d,.]+ GiB, more than this machine's"):
        ppox.lm.train(**{**QUICK, "prompts_per_update": 10**7}, prompts=PROMPTS, reward=length, save=False)
    monkeypatch.setattr(training, "load", not_loaded)
    with pytest.raises(ConfigError, match=r"--prompts-per-update, --samples-per-prompt, --max-new-tokens"):
        ppox.lm.train(**{**QUICK, "prompts_per_update": 10**10}, prompts=PROMPTS, reward=length, save=False)


def test_lm_sample_never_pads_beyond_the_prompts(monkeypatch):
    """(Before: --batch-size 10^9 with 4 prompts padded the batch to 10^9 rows: 6 GB.)"""
    rows = []
    real = generate.make_sampler

    def recording(config, sampling):
        sample = real(config, sampling)
        return lambda params, ids, mask, key: rows.append(len(ids)) or sample(params, ids, mask, key)

    monkeypatch.setattr(generate, "make_sampler", recording)
    assert len(ppox.lm.sample(GPT2, PROMPTS, max_new_tokens=2, batch_size=64)) == 4
    assert rows == [4]
    assert len(ppox.lm.sample(GPT2, PROMPTS, max_new_tokens=2, batch_size=10**9)) == 4
    with pytest.raises(ConfigError, match="--max-new-tokens"):
        ppox.lm.sample(GPT2, PROMPTS, max_new_tokens=10**12)


def test_a_run_name_that_holds_a_run_names_the_lm_resume(tmp_path, monkeypatch):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "metrics.csv").write_text("update\n")
    monkeypatch.setattr(training, "load", not_loaded)
    with pytest.raises(ConfigError, match=f"continue that run with: ppox lm train --resume {tmp_path / 'taken'}"):
        ppox.lm.train(**QUICK, prompts=PROMPTS, reward=length, run_dir=str(tmp_path), run_name="taken")


def test_a_reward_returning_strings_is_named(tmp_path):
    words = lambda prompts, completions: ["good"] * len(completions)  # noqa: E731
    with pytest.raises(ConfigError, match="the reward returned str values: return a list of 2 numbers"):
        ppox.lm.train(**QUICK, updates=1, prompts=PROMPTS, reward=words, save=False)


def test_a_reward_calling_sys_exit_is_reported_as_its_error(tmp_path, capsys, monkeypatch):
    """(Before: the run ended with exit 0 and no message.)"""
    (tmp_path / "quitting.py").write_text("import sys\ndef score(prompts, completions):\n    sys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    assert main(["lm", "train", "--model", str(GPT2), "--prompts", str(prompts), "--reward", "quitting:score",
                 "--updates", "1", "--prompts-per-update", "2", "--max-new-tokens", "2", "--no-save"]) == 2
    assert "the reward called sys.exit(0)" in one_line_error(capsys)


def test_a_reward_past_its_timeout_stops_the_run_and_keeps_the_checkpoint(tmp_path):
    release, calls = threading.Event(), []

    def hangs_on_the_second_call(prompts, completions):
        calls.append(1)
        if len(calls) == 2:
            release.wait(60)
        return [0.0] * len(completions)

    try:
        with pytest.raises(ConfigError, match=r"did not return within --reward-timeout 2 s; the checkpoints written "
                                              r"before are kept: .* ppox lm train --resume .*r$"):
            ppox.lm.train(**QUICK, updates=3, checkpoint_every=1, reward_timeout=2, prompts=PROMPTS,
                          reward=hangs_on_the_second_call, run_dir=str(tmp_path), run_name="r")
    finally:
        release.set()
    assert [c.name for c in list_checkpoints(tmp_path / "r")] == ["update_00000001.safetensors"]


def test_a_full_disk_names_the_lm_resume(tmp_path, monkeypatch):
    """The disk fills after the first checkpoint: the message names the file, the cause and the LM resume."""
    calls = []
    real = tensorboard.TensorBoardTracker.write

    def fills_up(self, *args):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args)

    monkeypatch.setattr(tensorboard.TensorBoardTracker, "write", fills_up)
    with pytest.raises(RunWriteError, match="No space left on device.*continue with: ppox lm train --resume"):
        ppox.lm.train(**{**QUICK, "tensorboard": True}, updates=3, checkpoint_every=1, prompts=PROMPTS,
                      reward=length, run_dir=str(tmp_path), run_name="r")
    assert len(list_checkpoints(tmp_path / "r")) == 1


def test_a_run_killed_before_its_model_was_saved_gets_it_on_resume(tmp_path):
    """Killed between the final checkpoint and RUN/model: resume writes RUN/model (and summary.json) from the
    checkpoint, with no reward needed; then the run is finished."""
    result = ppox.lm.train(**QUICK, updates=2, checkpoint_every=1, prompts=PROMPTS, reward=length,
                           run_dir=str(tmp_path), run_name="r")
    run = result.run_path
    shutil.rmtree(run / "model")
    (run / "summary.json").write_text(json.dumps({"updates": 1, "interrupted": True}))  # an earlier session's
    again = ppox.lm.resume(run)
    for a, b in zip(jax.tree.leaves(result.model.params), jax.tree.leaves(load(run / "model").params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.metrics["episode_return"], result.metrics["episode_return"])
    assert json.loads((run / "summary.json").read_text())["updates"] == 2
    with pytest.raises(Exception, match="already finished"):
        ppox.lm.resume(run)
