"""Completions of text prompts by a model folder, in fixed-shape batches (what ``ppox lm sample`` prints)."""

from __future__ import annotations

import jax
import numpy as np

from ppox.language.config import check_memory
from ppox.language.hf import LanguageModel
from ppox.language.models import params_dtype
from ppox.language.sampling import Sampling, make_sampler
from ppox.language.tokenizer import TextTokenizer


def complete(
    model: LanguageModel,
    tok: TextTokenizer,
    prompts: list[str],
    sampling: Sampling,
    batch: int = 8,
    seed: int = 0,
    max_prompt_tokens: int = 256,
    add_special_tokens: bool = True,
) -> list[str]:
    """One completion per prompt; prompts are left-padded to the longest (kept to their last
    ``max_prompt_tokens`` tokens), in batches of at most ``batch`` (never more than the prompts: the last
    batch is padded with copies, so that one program serves all). The memory a batch needs (its key/value
    cache and the prompt's logits) is checked against the machine's first. ``add_special_tokens=False`` for
    text a chat template wrote."""
    ids, mask = tok.encode(prompts, None, add_special_tokens)
    ids, mask = ids[:, -max_prompt_tokens:], mask[:, -max_prompt_tokens:]
    batch = max(1, min(batch, len(prompts)))
    c, width = model.config, np.dtype(params_dtype(model.params)).itemsize
    tokens = ids.shape[1] + sampling.max_new_tokens
    cache = 2 * c.num_layers * batch * tokens * c.num_kv_heads * c.head_dim * width
    check_memory(
        cache + batch * ids.shape[1] * c.vocab_size * 4,
        f"sampling {batch:,} prompts at once, {tokens:,} tokens each,",
        "lower --batch-size or --max-new-tokens",
    )
    sample, key, texts = make_sampler(model.config, sampling), jax.random.PRNGKey(seed), []
    for begin in range(0, len(prompts), batch):
        rows = np.arange(begin, begin + batch) % len(prompts)
        key, draw = jax.random.split(key)
        out = sample(model.params, ids[rows], mask[rows], draw)
        texts.extend(tok.decode(np.asarray(out.tokens), np.asarray(out.mask))[: len(prompts) - begin])
    return texts
