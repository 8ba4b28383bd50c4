"""The parts of PPO on text (``ppox.lm`` is the face): flax GPT-2 and Llama-family models, Hugging Face
folders, tokenizer, sampler, per-token advantages, the token-level PPO loss, reward models.

Loading and saving (``load``, ``save``) read and write local Hugging Face model folders; ``forward``
scores whole sequences; ``make_sampler`` generates with a key/value cache; ``sequence_logprobs`` gives
the policy's log-probabilities of a response; ``ppox.language.advantages`` turns scores into per-token rewards
and advantages. Text needs the ``lm`` extra (the ``tokenizers`` package); ppox never imports PyTorch or
transformers. See docs/lm.md.
"""

from ppox.language.advantages import (
    KL_ESTIMATORS,
    LM_ADVANTAGES,
    grpo_advantages,
    kl_penalized_rewards,
    masked_whiten,
    response_gae,
    rloo_advantages,
    token_kl,
)
from ppox.language.config import LMConfig, parameter_count
from ppox.language.hf import LanguageModel, load, read_config, save, to_hf
from ppox.language.hf_config import from_hf
from ppox.language.models import CausalLM, forward, init_params
from ppox.language.sampling import Generation, Sampling, make_sampler, sequence_logprobs
from ppox.language.tokenizer import TextTokenizer, load_tokenizer

__all__ = [
    "KL_ESTIMATORS",
    "LM_ADVANTAGES",
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
