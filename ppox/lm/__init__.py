"""PPO on language models, in Python: the face of ``ppox lm train | sample | reward-model``.

    import ppox.lm
    result = ppox.lm.train(model="hf-folder", prompts=["..."], reward=my_reward, updates=50)
    texts = ppox.lm.sample(result.run_path / "model", ["..."], max_new_tokens=32)
    rm, report = ppox.lm.train_reward_model("hf-folder", ppox.lm.read_pairs("pairs.jsonl"), "rm-folder")

The parts (models, Hugging Face folders, the sampler, per-token advantages, the token-level PPO loss) live in
``ppox.language``, low in the layers; this module sits above the run loop, so it can hand a config to it.
See docs/lm.md.
"""

from __future__ import annotations

from pathlib import Path

from ppox.errors import ConfigError
from ppox.language import (
    CausalLM,
    Generation,
    LanguageModel,
    LMConfig,
    Sampling,
    TextTokenizer,
    forward,
    from_hf,
    grpo_advantages,
    init_params,
    kl_penalized_rewards,
    load,
    load_tokenizer,
    make_sampler,
    masked_whiten,
    parameter_count,
    read_config,
    response_gae,
    rloo_advantages,
    save,
    sequence_logprobs,
    to_hf,
    token_kl,
)
from ppox.language.chat import load_chat_template
from ppox.language.config import shown
from ppox.language.generate import complete
from ppox.language.hf import pad_id
from ppox.language.reward_model import RewardModel, load_reward_model, read_pairs, train_reward_model
from ppox.language.run_config import LMRunConfig
from ppox.lm.lora import load_with_adapter
from ppox.lm.lora import merge_folder as merge_lora
from ppox.lm.training import LMTrainResult, read_prompts
from ppox.lm.training import resume_lm as resume
from ppox.lm.training import train_lm as train


def sample(
    model: str | Path | LanguageModel,
    prompts: list,
    *,
    tokenizer_from: str | Path | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.7,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    batch_size: int = 8,
    seed: int = 0,
) -> list[str]:
    """One completion per prompt; each stops at the model's end-of-sequence token.

    Args:
        model: a model folder (with tokenizer.json), or a loaded ``LanguageModel``.
        prompts: the prompt texts, or conversations (lists of {"role", "content"} messages) rendered with the
            tokenizer folder's chat template, ending with the generation prompt.
        tokenizer_from: the folder with tokenizer.json, needed when ``model`` is a loaded model.
        max_new_tokens: at most this many tokens per completion.
        temperature: the logits are divided by it before sampling.
        top_k: sample among the ``top_k`` most likely tokens (0: all).
        top_p: sample among the fewest most likely tokens whose probability reaches ``top_p`` (1.0: all).
        greedy: take the most likely token at each step instead of sampling.
        batch_size: prompts generated together (at least 1; at most the prompts there are).
        seed: the seed of the sampling key.

    Returns:
        The completions, one text per prompt, in the prompts' order (the prompt not included).

    Raises:
        ConfigError: a loaded model without ``tokenizer_from``, sampling settings out of range, or a batch
            that needs more memory than the machine has.
    """
    if not (isinstance(seed, int) and 0 <= seed < 2**31):
        raise ConfigError(f"seed {shown(seed)}: a whole number in [0, 2^31)")
    if not isinstance(model, LanguageModel):
        tokenizer_from, model = tokenizer_from or model, load(Path(model))
    elif tokenizer_from is None:
        raise ConfigError("a loaded model has no tokenizer: pass tokenizer_from=FOLDER (a folder with tokenizer.json)")
    folder = Path(tokenizer_from)
    tok = load_tokenizer(folder, pad_id=pad_id(model))
    sampling = Sampling(max_new_tokens, model.eos_ids, tok.pad_id, temperature, top_k, top_p, greedy)
    prompts = list(prompts)
    chat = bool(prompts) and isinstance(prompts[0], list)
    if chat:
        template = load_chat_template(folder)
        prompts = [template.render(messages, add_generation_prompt=True) for messages in prompts]
    return complete(model, tok, prompts, sampling, max(1, batch_size), seed, add_special_tokens=not chat)


__all__ = [
    "CausalLM",
    "Generation",
    "LMConfig",
    "LMRunConfig",
    "LMTrainResult",
    "LanguageModel",
    "RewardModel",
    "Sampling",
    "TextTokenizer",
    "forward",
    "from_hf",
    "grpo_advantages",
    "init_params",
    "kl_penalized_rewards",
    "load",
    "load_reward_model",
    "load_tokenizer",
    "make_sampler",
    "masked_whiten",
    "parameter_count",
    "read_config",
    "read_pairs",
    "read_prompts",
    "response_gae",
    "resume",
    "rloo_advantages",
    "sample",
    "load_with_adapter",
    "merge_lora",
    "save",
    "sequence_logprobs",
    "to_hf",
    "token_kl",
    "train",
    "train_reward_model",
]
