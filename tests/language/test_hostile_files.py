"""Hostile model folders and input files (issue 32): each is refused in one line before anything is built, never
a traceback, a hang or gigabytes of memory."""

import json
import os
import re
import shutil
import threading

import jax
import numpy as np
import pytest

from ppox.errors import CheckpointError, ConfigError
from ppox.language import from_hf, init_params, load, load_tokenizer, save
from ppox.language import hf as hf_module
from ppox.language import weights
from ppox.language.reward_model import read_pairs
from ppox.lm.training import read_prompts
from tests import helpers

FIXTURES = helpers.FIXTURES / "lm"
GPT2 = {"model_type": "gpt2", "vocab_size": 40, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 16}
QWEN2 = {"model_type": "qwen2", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 1,
         "num_attention_heads": 2, "intermediate_size": 24}


def copy_of(name, tmp_path, **changes):
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    hf = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**hf, **changes}))
    return folder


@pytest.mark.parametrize("base, changes, words", [
    (GPT2, {"n_head": 0}, "n_head is 0"),
    (GPT2, {"n_embd": "x"}, "n_embd is 'x'"),
    (GPT2, {"n_embd": -1}, "n_embd is -1"),
    (GPT2, {"n_embd": 16.5}, "whole number"),
    (GPT2, {"n_embd": True}, "n_embd is True"),
    (GPT2, {"vocab_size": 0}, "vocab_size is 0"),
    (GPT2, {"n_layer": 10**6}, "n_layer is 1000000: it must be a whole number from 1 to 1024"),
    (GPT2, {"n_layer": 10**5000}, "an integer of"),
    (GPT2, {"n_positions": [16]}, "n_positions is [16]"),
    (GPT2, {"n_inner": -4}, "n_inner is -4"),
    (GPT2, {"layer_norm_epsilon": float("nan")}, "layer_norm_epsilon is nan"),
    (GPT2, {"layer_norm_epsilon": -1e-5}, "layer_norm_epsilon"),
    (GPT2, {"layer_norm_epsilon": "1e-5"}, "finite number"),
    (GPT2, {"tie_word_embeddings": "no"}, "true or false"),
    (GPT2, {"activation_function": {"a": 1}}, "must be a string"),
    (GPT2, {"model_type": ["gpt2"]}, "model_type ['gpt2'] is not supported"),
    (QWEN2, {"num_key_value_heads": 0}, "num_key_value_heads is 0"),
    (QWEN2, {"head_dim": -8}, "head_dim is -8"),
    (QWEN2, {"head_dim": 2**31}, "whole number from 1"),
    (QWEN2, {"head_dim": 1_500_000_000}, "2 heads of 1500000000 exceed 2147483647 features"),
    (QWEN2, {"rope_scaling": "linear"}, "rope_scaling is 'linear': it must be a JSON object"),
    (QWEN2, {"rope_parameters": {"rope_type": "llama3", "factor": "x"}}, "factor is 'x'"),
    (QWEN2, {"rope_theta": float("inf")}, "rope_theta is inf"),
    (QWEN2, {"rms_norm_eps": 0}, "rms_norm_eps is 0"),
    (QWEN2, {"attention_bias": "yes"}, "true or false"),
], ids=lambda x: None)
def test_config_values_of_the_wrong_type_sign_or_size_are_one_line_errors(base, changes, words):
    with pytest.raises(CheckpointError) as info:
        from_hf({**base, **changes})
    message = str(info.value)
    assert words in message and len(message.splitlines()) == 1 and len(message) < 300, message


@pytest.mark.parametrize("text, words", [
    ("[" * 200_000 + "]" * 200_000, "not readable JSON"),
    ('{"n_layer": ' + "1" * 5000 + "}", "not readable JSON"),
    (b'{"model_type": "gpt2\xff"}', "not readable JSON"),
    ("[1, 2]", "not a JSON object"),
])
def test_an_unreadable_config_json_is_one_line(tmp_path, text, words):
    folder = copy_of("gpt2", tmp_path)
    (folder / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CheckpointError, match=words):
        load(folder)


@pytest.mark.parametrize("file, changes, words", [
    ("config.json", {"eos_token_id": "x"}, "eos_token_id is 'x'"),
    ("config.json", {"eos_token_id": {"id": 1}}, "eos_token_id is {'id': 1}"),
    ("config.json", {"eos_token_id": [1, -3]}, "eos_token_id is [1, -3]"),
    ("config.json", {"pad_token_id": 96}, "pad_token_id is 96: it must be a token id (0 to 95)"),
    ("generation_config.json", {"eos_token_id": 1.5}, "eos_token_id is 1.5"),
])
def test_special_token_ids_are_token_ids(tmp_path, file, changes, words):
    folder = copy_of("gpt2", tmp_path)
    data = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps({**data, **changes}))
    with pytest.raises(CheckpointError, match=re.escape(words)):
        load(folder)


@pytest.mark.parametrize("hf", [
    GPT2, {**GPT2, "tie_word_embeddings": False, "n_inner": 24},
    {**QWEN2, "num_key_value_heads": 1, "tie_word_embeddings": False},
    {**QWEN2, "model_type": "llama", "attention_bias": True, "mlp_bias": True, "head_dim": 4, "num_hidden_layers": 11},
])
def test_the_parameter_shapes_worked_out_from_the_config_are_the_models(hf):
    config = from_hf(hf)
    built = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    flat = {tuple(k.key for k in path): leaf.shape for path, leaf in jax.tree_util.tree_flatten_with_path(built)[0]}
    assert list(weights.param_shapes(config).items()) == list(flat.items())  # the same order too


def no_data_read(*args, **kwargs):
    raise AssertionError("a tensor was read before the headers were checked against the config")


def test_a_missing_tensor_is_named_from_the_headers_before_any_data_is_read(tmp_path, monkeypatch):
    """(Before: 3,000 layers took 76 s and 757 MB to report it: every parameter was traced and every tensor read.)"""
    folder = copy_of("gpt2", tmp_path, n_layer=1024)
    monkeypatch.setattr(weights, "read_safetensors", no_data_read)
    with pytest.raises(CheckpointError, match=r"'transformer.h.\d+.[a-z_.]*' is missing"):
        load(folder)


def test_a_model_larger_than_the_machine_is_refused_before_reading(tmp_path, monkeypatch):
    """A Qwen2 head_dim of 10^8 (10^9 took 6 GB in 32 s before; it is now over the bound of 2^31 - 1 features):
    its parameters are counted from the config first."""
    folder = copy_of("qwen2", tmp_path, head_dim=10**8)
    monkeypatch.setattr(weights, "read_safetensors", no_data_read)
    with pytest.raises(CheckpointError, match=r"parameters .* need about [\d,.]+ GiB, more than this machine's"):
        load(folder)


@pytest.mark.parametrize("name, file", [("llama", "model-00002-of-00003.safetensors"), ("gpt2", "model.safetensors")])
def test_a_fifo_named_as_a_model_file_is_refused_not_opened(tmp_path, name, file):
    folder = copy_of(name, tmp_path)
    (folder / file).unlink()
    os.mkfifo(folder / file)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(CheckpointError, load, folder)), daemon=True)
    reader.start()
    reader.join(60)
    try:
        assert outcome, "load blocked on the FIFO"
        assert "is not a regular file" in str(outcome[0].value)
    finally:
        if reader.is_alive():  # (the code before the fix: let the blocked open() return)
            os.close(os.open(folder / file, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("text, words", [
    ("{", "not readable JSON"),
    ('{"weight_map": []}', "weight_map of tensor names to file names"),
    ("[]", "weight_map of tensor names to file names"),
    ('{"weight_map": {"a": 3}}', "weight_map of tensor names to file names"),
    ('{"weight_map": {"a": "../x.safetensors"}}', "is not a file name in the folder"),
])
def test_a_malformed_shard_index_is_one_line(tmp_path, text, words):
    folder = copy_of("llama", tmp_path)
    (folder / "model.safetensors.index.json").write_text(text)
    with pytest.raises(CheckpointError, match=words):
        load(folder)


@pytest.mark.parametrize("file, text, words", [
    ("tokenizer.json", "{", "reading it failed"),
    ("tokenizer.json", "[]", "reading it failed"),
    ("tokenizer_config.json", "{", "not readable JSON"),
    ("tokenizer_config.json", "[1]", "not a JSON object"),
    ("tokenizer_config.json", '{"eos_token": [1, "x"]}', "eos_token is"),
    ("tokenizer_config.json", '{"pad_token": 1.5}', "pad_token is 1.5"),
])
def test_malformed_tokenizer_files_are_one_line(tmp_path, file, text, words):
    folder = copy_of("gpt2", tmp_path)
    (folder / file).write_text(text)
    with pytest.raises(CheckpointError, match=words):
        load_tokenizer(folder)


def test_a_regex_the_tokenizer_gives_up_on_is_a_one_line_error(tmp_path, capfd):
    """A pre-tokenizer regex with catastrophic backtracking makes the Rust side panic (a BaseException) and
    print a backtrace: a one-line CheckpointError instead, with nothing printed."""
    folder = copy_of("gpt2", tmp_path)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    tok = load_tokenizer(folder)
    with pytest.raises(CheckpointError, match="encoding text failed .*retry-limit"):
        tok.encode(["a" * 40 + "!"])
    assert "panicked" not in capfd.readouterr().err
    assert tok.encode(["the cat"])[1].all()  # other text still encodes


def test_the_tokenizer_files_padding_and_truncation_are_ignored(tmp_path):
    """ppox pads and cuts itself: a tokenizer.json that pads every text to 100,000 tokens does not."""
    folder = copy_of("gpt2", tmp_path)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["padding"] = {"strategy": {"Fixed": 100_000}, "direction": "Right", "pad_to_multiple_of": None,
                       "pad_id": 0, "pad_type_id": 0, "pad_token": "<pad>"}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    ids, _ = load_tokenizer(folder).encode(["the cat", "a dog sat"])
    assert ids.shape[1] < 20


@pytest.mark.parametrize("reader, flag, line", [(read_prompts, "--prompts", '{"prompt": "x"}'),
                                                (read_pairs, "--pairs", '{"chosen": "a", "rejected": "b"}')])
@pytest.mark.parametrize("bad, words", [
    (b'{"prompt": "\xff\xfe"}', "line 2: not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "line 2: not a JSON value"),
    (b'{"prompt": ' + b"7" * 5000 + b"}", "line 2: not a JSON value"),
])
def test_prompts_and_pairs_files_name_the_bad_line(tmp_path, reader, flag, line, bad, words):
    path = tmp_path / "in.jsonl"
    path.write_bytes(line.encode() + b"\n" + bad + b"\n" + line.encode() + b"\n")
    with pytest.raises(ConfigError, match=f"{flag} .*{words}") as info:
        reader(path)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("row", [{"prompt": "a", "chosen": "", "rejected": "b"},
                                 {"prompt": "a", "chosen": "b", "rejected": ""},
                                 {"prompt": 3, "chosen": "b", "rejected": "c"}])
def test_pairs_need_text_in_each_completion(tmp_path, row):
    path = tmp_path / "pairs.jsonl"
    good = {"prompt": "x", "chosen": "a", "rejected": "b"}
    path.write_text("\n".join(json.dumps(r) for r in (good, row, good)) + "\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_pairs(path)


def test_save_writes_beside_the_old_files_and_never_deletes_first(tmp_path, monkeypatch):
    """Interrupted while writing the new tensors, the folder still holds the old, whole model."""
    model = load(FIXTURES / "gpt2")
    save(tmp_path / "m", model)
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    moved = model.params | {"wte": np.asarray(model.params["wte"]) + 1}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hf_module, "write", killed)
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path / "m", hf_module.LanguageModel(model.config, moved, model.hf_config))
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    monkeypatch.undo()
    save(tmp_path / "m", model, max_shard_bytes=20_000)  # a new layout: the old file goes only after it is written
    assert not (tmp_path / "m" / "model.safetensors").exists()
    np.testing.assert_array_equal(load(tmp_path / "m").params["wte"], model.params["wte"])
    save(tmp_path / "m", model)
    assert not list((tmp_path / "m").glob("model-*")) and not (tmp_path / "m" / "model.safetensors.index.json").exists()
