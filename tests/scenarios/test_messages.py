"""Messages that are right where they appear (issue 33 item 8): a call from Python is told the Python argument,
the command line its flag; prompts given from Python and prompts files are checked in one line."""

import json
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import ppox
import ppox.lm
from ppox.cli import main
from ppox.errors import ConfigError
from ppox.utils import tensorfile
from tests.helpers import FIXTURES

GPT2 = FIXTURES / "lm" / "gpt2"
ENTRY_POINT = "tests.toy_envs:countdown"


def naming_an_entry_point(run: Path) -> Path:
    """A copy of a saved CartPole run whose policy and checkpoints name an entry point env (crafted files)."""
    shutil.copytree(FIXTURES.parent / "storage" / "fixtures" / "run_v1", run)
    for path in [run / "policy.safetensors", *sorted((run / "checkpoints").iterdir())]:
        with safe_open(str(path), framework="numpy") as f:
            metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        key, inner = ("meta", "config") if "meta" in metadata else ("config", None)
        data = json.loads(metadata[key])
        (data[inner] if inner else data)["env"] = ENTRY_POINT
        metadata[key] = json.dumps(data)
        save_file(arrays, str(path), metadata=tensorfile.sealed(arrays, metadata))
    return run


def zero_reward(prompts, completions):
    return [0.0] * len(completions)


def test_python_calls_are_told_arguments_and_the_command_line_flags(tmp_path, capsys):
    run = naming_an_entry_point(tmp_path / "run")
    policy = ppox.load(run)
    with pytest.raises(ConfigError) as evaluated:
        ppox.evaluate(policy, episodes=1)
    assert f"repeat it: env='{ENTRY_POINT}' (or pass trust_env=True)" in str(evaluated.value)
    with pytest.raises(ConfigError) as resumed:
        ppox.resume(run)
    assert f"repeat it: env='{ENTRY_POINT}' (or pass trust_run_config=True)" in str(resumed.value)
    with pytest.raises(ConfigError) as episodes:
        ppox.evaluate(policy, episodes=0, trust_env=True)
    assert str(episodes.value).startswith("episodes must be a positive integer")
    for message in (evaluated, resumed, episodes):
        assert "--" not in str(message.value).replace(str(tmp_path), "")
    # the same errors on the command line name the flags
    assert main(["eval", str(run)]) == 2
    assert main(["train", "--resume", str(run)]) == 2
    assert main(["eval", str(run), "--episodes", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert all(f"repeat it: --env {ENTRY_POINT} (or pass --trust-run-config)" in line for line in err[:2]), err
    assert "error: --episodes must be a positive integer" in err[2]


def test_config_errors_from_python_name_the_fields_too(capsys):
    with pytest.raises(ConfigError) as err:
        ppox.Config(num_envs=0)
    assert str(err.value) == "--num-envs must be a positive integer, got 0 (Config field num_envs)"
    with pytest.raises(ConfigError) as err:
        ppox.Config(baseline=False)
    assert str(err.value).endswith("(Config fields baseline, advantage)")
    assert main(["train", "--num-envs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "ppox train: error: --num-envs must be a positive integer, got 0"


@pytest.mark.parametrize("prompts, words", [
    ([], "prompts= is empty: give at least one prompt"),
    ("one string", "prompts='one string' is a single string; prompts= takes a list: prompts=[text] for one"),
    (["a", None], "prompts[1] is None: the prompts must be texts (str) or lists of token ids (int)"),
    ([[1, 2], "a"], "prompts[1] is 'a': the prompts must be texts"),
    (7, "prompts= takes a list of texts (str) or lists of token ids (int), all of one kind; got int"),
])
def test_lm_train_refuses_prompts_that_are_no_list_of_prompts(tmp_path, prompts, words):
    with pytest.raises(ConfigError) as err:
        ppox.lm.train(model=str(GPT2), prompts=prompts, reward=zero_reward, updates=1, prompts_per_update=2,
                      max_new_tokens=2, save=False, progress=False, run_dir=str(tmp_path))
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("line, words", [
    ('{"prompt": NaN}', "NaN is not JSON"),
    ('{"prompt": "a", "weight": -Infinity}', "-Infinity is not JSON"),
    ('{"prompt": "half \\ud800 a character"}', "without its pair is half a character"),
    ('{"prompt": "a",}', "Expecting property name"),
])
def test_an_invalid_json_line_of_prompts_is_reported_as_invalid_json(tmp_path, capsys, line, words):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "the cat"}) + "\n" + line + "\n")
    with pytest.raises(ConfigError) as err:
        ppox.lm.read_prompts(path)
    assert f"--prompts {path}, line 2: not a JSON value (invalid JSON: " in str(err.value) and words in str(err.value)
    assert main(["lm", "train", "--model", str(GPT2), "--prompts", str(path), "--reward", "json:dumps",
                 "--no-save", "--updates", "1", "--prompts-per-update", "2", "--max-new-tokens", "2"]) == 2
    assert capsys.readouterr().err.strip() == f"ppox lm train: error: {err.value}"


def test_a_prompts_file_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "the cat"}\n{"prompt": "\\ud83d\\ude00"}\n')
    assert ppox.lm.read_prompts(path) == ["the cat", "\U0001f600"]
