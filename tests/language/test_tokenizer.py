"""Text to left-padded ids and back, with a fixture folder's tokenizer.json."""

from pathlib import Path

import numpy as np
import pytest

from ppox.errors import CheckpointError
from ppox.language import load_tokenizer
from tests import helpers

FIXTURES = helpers.FIXTURES / "lm"


def test_encode_pads_on_the_left_and_decode_returns_the_text():
    tok = load_tokenizer(FIXTURES / "llama")
    assert tok.pad_id == 0 and tok.eos_ids == (1,)
    texts = ["the cat sat on the mat", "a dog"]
    ids, mask = tok.encode(texts)
    assert ids.dtype == np.int32 and ids.shape == mask.shape
    assert mask[0].all() and not mask[1, 0] and mask[1, -1]  # the short row is padded on the left
    assert (ids[~mask] == tok.pad_id).all()
    assert tok.decode(ids, mask) == texts


def test_a_fixed_length_keeps_the_last_tokens():
    tok = load_tokenizer(FIXTURES / "gpt2")
    full, _ = tok.encode(["proximal policy optimization clips the ratio"])
    ids, mask = tok.encode(["proximal policy optimization clips the ratio", "the"], length=4)
    assert ids.shape == (2, 4) and mask[0].all()
    np.testing.assert_array_equal(ids[0], full[0, -4:])


def test_pad_id_can_be_named_and_a_folder_without_tokenizer_is_refused(tmp_path):
    assert load_tokenizer(FIXTURES / "qwen2", pad_id=5).pad_id == 5
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
