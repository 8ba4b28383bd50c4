"""Language models for PPO on text: flax GPT-2 and Llama-family models, Hugging Face folders, tokenizer, sampler.

Loading and saving (``load``, ``save``) read and write local Hugging Face model folders; ``forward``
scores whole sequences; ``make_sampler`` generates with a key/value cache. Text needs the ``lm`` extra
(the ``tokenizers`` package); ppox never imports PyTorch or transformers.
"""

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
    "init_params",
    "load",
    "load_tokenizer",
    "make_sampler",
    "parameter_count",
    "read_config",
    "save",
    "sequence_logprobs",
    "to_hf",
]
