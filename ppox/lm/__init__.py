"""Language models for PPO on text: flax GPT-2 and Llama-family models, Hugging Face folders, tokenizer, sampler.

Loading and saving (``load``, ``save``) read and write local Hugging Face model folders; ``forward``
scores whole sequences; ``make_sampler`` generates with a key/value cache; ``sequence_logprobs`` gives
the policy's log-probabilities of a response; ``ppox.lm.advantages`` turns scores into per-token rewards
and advantages. Text needs the ``lm`` extra (the ``tokenizers`` package); ppox never imports PyTorch or
transformers. See docs/lm.md.
"""

from ppox.lm.advantages import (grpo_advantages, kl_penalized_rewards, masked_whiten, response_gae,
                                rloo_advantages, token_kl)
from ppox.lm.config import LMConfig, from_hf, parameter_count, to_hf
from ppox.lm.hf import LanguageModel, load, read_config, save
from ppox.lm.models import CausalLM, forward, init_params
from ppox.lm.sampling import Generation, Sampling, make_sampler, sequence_logprobs
from ppox.lm.tokenizer import TextTokenizer, load_tokenizer

__all__ = [
    "CausalLM",
    "Generation",
    "LMConfig",
    "LanguageModel",
    "Sampling",
    "TextTokenizer",
    "forward",
    "from_hf",
    "grpo_advantages",
    "init_params",
    "kl_penalized_rewards",
    "load",
    "load_tokenizer",
    "make_sampler",
    "masked_whiten",
    "parameter_count",
    "read_config",
    "response_gae",
    "rloo_advantages",
    "save",
    "sequence_logprobs",
    "to_hf",
    "token_kl",
]
