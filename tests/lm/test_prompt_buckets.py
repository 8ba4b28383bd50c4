"""--prompt-bucket: each update's left-padded prompts are cut to the smallest power of two >= its longest prompt
(at least the bucket, at most the padded width), so a data set of varied lengths compiles a few programs."""

import jax.numpy as jnp
import pytest

from ppox.errors import ConfigError
from ppox.language.hf import load
from ppox.language.run_config import LMRunConfig
from ppox.lm.training import make_driver, make_task
from tests import helpers

QWEN2 = helpers.FIXTURES / "lm" / "qwen2"


class Sampled(Exception):
    """Raised by the recording sampler: the test needs the widths only, not the update."""


def widths_seen(bucket: int, updates: int = 24) -> tuple[list[int], list[int], int]:
    """(the prompt width the sampler got, the longest prompt of the batch) per update, and the padded width."""
    prompts = ["a" * n for n in (1, 2, 3, 5, 8, 13, 21, 30, 34, 40)]  # ("a" is one token each)
    settings = LMRunConfig(model=str(QWEN2), advantage="grpo", samples_per_prompt=2, prompts_per_update=2,
                           max_new_tokens=3, epochs=1, save=False, prompt_bucket=bucket)
    model = load(QWEN2)
    driver = make_driver(settings, model, make_task(settings, model, prompts, lambda p, c: [0.0] * len(c)))
    widths, longest = [], []

    def record(params, prompt, prompt_mask, key):
        widths.append(prompt.shape[1])
        raise Sampled

    driver.sample = record
    state = driver.init()
    for update in range(updates):
        longest.append(int(driver.task.mask[driver.prompt_rows(update)].sum(-1).max()))
        with pytest.raises(Sampled):
            driver.one_update(state.replace(update=jnp.int32(update)))
    return widths, longest, driver.task.ids.shape[1]


def test_updates_get_the_bucket_of_their_longest_prompt():
    """Bucket 16 over prompts of 1-40 tokens: widths 16, 32 or 40 (the padded width), each the smallest of
    those >= the batch's longest prompt, computed here by a loop over the candidates; bucket 0: always 40."""
    widths, longest, full = widths_seen(16)
    assert full == 40
    assert widths == [next(w for w in (16, 32, 40) if w >= n) for n in longest]
    assert len(set(widths)) > 1 and set(widths) <= {16, 32, 40}
    widths, _, _ = widths_seen(0, updates=4)
    assert widths == [40] * 4


def test_a_negative_bucket_is_refused():
    with pytest.raises(ConfigError, match="--prompt-bucket -1: a whole number of tokens >= 0"):
        LMRunConfig(model="m", prompt_bucket=-1)
    assert LMRunConfig(model="m").prompt_bucket == 64  # (the default: widths up to 64 compile once)
