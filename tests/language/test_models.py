"""ppox.lm models against transformers' PyTorch logits (fixtures made by tests/fixtures/lm/make_fixtures.py),
and Hugging Face folders saved and loaded back."""

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ppox.errors import CheckpointError
from ppox.language import CausalLM, LanguageModel, forward, from_hf, init_params, load, parameter_count, save
from ppox.language.layers import positions_from_mask
from ppox.language.models import new_cache
from tests import helpers

FIXTURES = helpers.FIXTURES / "lm"
FAMILIES = ["gpt2", "llama", "qwen2", "qwen2.5", "qwen3", "mistral", "gemma2", "gemma3"]


def reference(name: str) -> dict[str, np.ndarray]:
    return load_file(FIXTURES / name / "reference.safetensors")


def logits_of(model: LanguageModel, ref: dict) -> np.ndarray:
    return np.asarray(forward(model.config, model.params, jnp.asarray(ref["input_ids"]),
                              jnp.asarray(ref["attention_mask"], bool)))


@pytest.mark.parametrize("name", FAMILIES)
def test_logits_equal_transformers_in_float32(name):
    """Same logits as transformers (eager attention, float32) on a left-padded batch, at every real token."""
    model = load(FIXTURES / name)
    ref = reference(name)
    valid = ref["attention_mask"].astype(bool)
    assert valid.sum() < valid.size  # the batch has padding
    np.testing.assert_allclose(logits_of(model, ref)[valid], ref["logits"][valid], atol=1e-4, rtol=0)


def test_the_fixtures_cover_the_variants():
    """GPT-2 tied; Llama untied with grouped-query attention, head_dim != hidden / heads, Llama 3 RoPE and
    sharded weights; Qwen2 with q/k/v bias and tied embeddings."""
    gpt2, llama, qwen2 = (load(FIXTURES / n).config for n in FAMILIES[:3])
    assert gpt2.tie_embeddings and gpt2.family == "gpt2"
    assert llama.group_size == 2 and not llama.tie_embeddings and llama.rope_scaling[0] == "llama3"
    assert llama.num_heads * llama.head_dim != llama.hidden_size
    assert (FIXTURES / "llama" / "model.safetensors.index.json").is_file()
    assert qwen2.qkv_bias and qwen2.tie_embeddings and qwen2.group_size == 2 and not qwen2.out_bias


@pytest.mark.parametrize("name", FAMILIES)
def test_parameter_count_matches_the_parameters(name):
    model = load(FIXTURES / name)
    assert parameter_count(model.config) == sum(p.size for p in jax.tree.leaves(model.params))


@pytest.mark.parametrize("name", FAMILIES)
def test_save_then_load_gives_identical_logits(name, tmp_path):
    model = load(FIXTURES / name)
    save(tmp_path / name, model, tokenizer_from=FIXTURES / name)
    again = load(tmp_path / name)
    ref = reference(name)
    np.testing.assert_array_equal(logits_of(again, ref), logits_of(model, ref))
    assert (tmp_path / name / "tokenizer.json").read_bytes() == (FIXTURES / name / "tokenizer.json").read_bytes()
    assert again.eos_ids == model.eos_ids == (1,) and again.generation_config == model.generation_config
    written = load_file(tmp_path / name / "model.safetensors")
    originals = {}
    for file in sorted((FIXTURES / name).glob("model*.safetensors")):
        originals.update(load_file(file))
    assert set(written) == set(originals)  # Hugging Face's names, nothing more or less
    for key, array in written.items():
        np.testing.assert_array_equal(array, originals[key])


def test_sharded_save_writes_an_index_and_loads_back(tmp_path):
    model = load(FIXTURES / "qwen2")
    save(tmp_path / "m", model, max_shard_bytes=40_000)
    index = json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (tmp_path / "m" / "model.safetensors").exists()
    assert all((tmp_path / "m" / s).is_file() for s in shards)
    ref = reference("qwen2")
    np.testing.assert_array_equal(logits_of(load(tmp_path / "m"), ref), logits_of(model, ref))


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen3", "gemma2"])
def test_bfloat16_loads_saves_and_stays_close(name, tmp_path):
    """bfloat16 parameters compute in bfloat16 (norms and softmax in float32): close to float32, and saved as BF16."""
    model = load(FIXTURES / name, dtype="bfloat16")
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(model.params))
    ref = reference(name)
    valid = ref["attention_mask"].astype(bool)
    out = logits_of(model, ref)
    assert out.dtype == np.float32
    assert np.abs(out - ref["logits"])[valid].max() < 0.15 * np.abs(ref["logits"]).max()
    save(tmp_path / name, model)
    assert json.loads((tmp_path / name / "config.json").read_text())["dtype"] == "bfloat16"
    header = (tmp_path / name / "model.safetensors").read_bytes()[:2000]
    assert b'"BF16"' in header and b'"F32"' not in header
    np.testing.assert_array_equal(logits_of(load(tmp_path / name, dtype="bfloat16"), ref), out)


def test_a_missing_or_misshapen_tensor_is_named(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "gpt2", folder)
    hf = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**hf, "n_embd": 64}))
    with pytest.raises(CheckpointError, match="tensor .* has shape .* the config asks for"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**hf, "n_layer": 3}))
    with pytest.raises(CheckpointError, match="'transformer.h.2.[a-z_.]*' is missing"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**hf, "n_layer": 1}))
    with pytest.raises(CheckpointError, match="does not describe.*h.1"):
        load(folder)


def test_gpt2_files_named_without_the_transformer_prefix_load(tmp_path):
    """The original GPT-2 checkpoints name tensors h.0.attn.c_attn.weight (no prefix) and carry the causal
    mask as a h.N.attn.bias buffer: both are read."""
    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "gpt2", folder)
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(folder / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.uint8))
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    ref = reference("gpt2")
    np.testing.assert_array_equal(logits_of(load(folder), ref), logits_of(load(FIXTURES / "gpt2"), ref))


def test_unsupported_configs_are_refused_with_a_reason():
    with pytest.raises(CheckpointError, match="model_type 'bert' is not supported"):
        from_hf({"model_type": "bert"})
    base = {"model_type": "qwen2", "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 8}
    with pytest.raises(CheckpointError, match="bidirectional attention"):
        from_hf({**base, "model_type": "gemma3_text", "use_bidirectional_attention": True})
    with pytest.raises(CheckpointError, match="layer_types must list 1"):
        from_hf({**base, "use_sliding_window": True, "sliding_window": 4, "layer_types": ["x"]})
    with pytest.raises(CheckpointError, match="rope_type 'yarn'"):
        from_hf({**base, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}})
    with pytest.raises(CheckpointError, match="3 key/value heads"):
        from_hf({**base, "num_key_value_heads": 3})


@pytest.mark.parametrize("hf", [
    {"model_type": "gpt2", "vocab_size": 40, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 16,
     "tie_word_embeddings": False},
    {"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
     "num_key_value_heads": 1, "intermediate_size": 24, "attention_bias": True, "mlp_bias": True},
    {"model_type": "qwen2", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
     "intermediate_size": 24, "tie_word_embeddings": False},
    {"model_type": "gemma3_text", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
     "head_dim": 8, "intermediate_size": 24, "sliding_window": 3, "final_logit_softcapping": 5.0,
     "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e5},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}},
    {"model_type": "mistral", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
     "intermediate_size": 24, "sliding_window": 2}],
    ids=["gpt2-untied", "llama-biases", "qwen2-untied", "gemma3-windowed", "mistral-windowed"])
def test_a_new_random_model_saves_as_a_folder(hf, tmp_path):
    """A model made here (no config.json behind it) saves a folder that reads back to the same config and
    logits, and names no special tokens (transformers loads these: tests/fixtures/lm/README.md)."""
    config = from_hf(hf)
    model = LanguageModel(config, init_params(config, jax.random.key(0)), {})
    save(tmp_path / "m", model)
    again = load(tmp_path / "m")
    assert again.config == config and again.eos_ids == ()
    ids = jnp.arange(8, dtype=jnp.int32).reshape(2, 4)
    mask = jnp.ones((2, 4), bool)
    np.testing.assert_array_equal(forward(config, again.params, ids, mask), forward(config, model.params, ids, mask))


def test_the_new_families_cover_their_features():
    """Qwen2.5 is Qwen2's architecture; Qwen3 has per-head q/k norms; Mistral windows every layer; Gemma 2
    every other layer, with both softcaps and a query scalar other than head_dim; Gemma 3 has q/k norms,
    its own rotary base on the sliding layers and linear scaling on the global one."""
    q25, q3, mistral, g2, g3 = (load(FIXTURES / n).config for n in FAMILIES[3:])
    assert q25.model_type == "qwen2" and q25.qkv_bias and q25.rope_theta == 1e6 and not q25.sliding_window
    assert q3.qk_norm and not q3.qkv_bias and q3.num_heads * q3.head_dim != q3.hidden_size
    assert mistral.sliding_window == 5 and all(mistral.sliding_layers) and not mistral.gemma
    assert g2.gemma and g2.sliding_layers == (True, False, True) and (g2.attn_softcap, g2.final_softcap) == (2, 3)
    assert g2.query_scalar == 24 != g2.head_dim and not g2.qk_norm
    assert g3.qk_norm and g3.local_rope_theta == 1e4 and g3.rope_scaling == ("linear", 8.0)
    assert g3.sliding_layers == (True, False, True) and g3.final_softcap == 4 and not g3.attn_softcap


@pytest.mark.parametrize("name", ["mistral", "gemma2", "gemma3"])
def test_the_sliding_window_is_what_matches_transformers(name):
    """The 12-token batch is longer than the fixtures' 5-token window: without it the logits move away from
    transformers' (so the parity test above depends on the window)."""
    model = load(FIXTURES / name)
    ref = reference(name)
    valid = ref["attention_mask"].astype(bool)
    unwindowed = dataclasses.replace(model.config, sliding_window=0)
    out = np.asarray(forward(unwindowed, model.params, jnp.asarray(ref["input_ids"]), jnp.asarray(valid)))
    assert np.abs(out - ref["logits"])[valid].max() > 1e-2


@pytest.mark.parametrize("name", ["qwen3", "mistral", "gemma2", "gemma3"])
def test_generation_with_the_cache_equals_the_whole_pass(name):
    """Token by token through the key/value cache (as the sampler runs), the logits equal one pass over the
    whole left-padded batch: the window, the softcaps and the per-layer rotary bases hold in both."""
    model = load(FIXTURES / name)
    ref = reference(name)
    ids, mask = jnp.asarray(ref["input_ids"]), jnp.asarray(ref["attention_mask"], bool)
    whole = np.asarray(forward(model.config, model.params, ids, mask))
    cache = new_cache(model.config, mask)
    positions = positions_from_mask(mask)
    steps = []
    for t in range(ids.shape[1]):
        logits, cache = CausalLM(model.config).apply(
            {"params": model.params}, ids[:, t : t + 1], positions[:, t : t + 1], cache, t
        )
        steps.append(np.asarray(logits[:, 0]))
    valid = np.asarray(mask)
    np.testing.assert_allclose(np.stack(steps, 1)[valid], whole[valid], atol=1e-5, rtol=0)
