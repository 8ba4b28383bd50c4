"""Checks of the LM run settings of issue 37 (held-out prompts, gradient accumulation, the optimiser's dtype, LoRA),
kept apart from ``run_config`` so that it stays one screenful of fields and checks."""

from __future__ import annotations

import typing
from typing import Literal

from ppox.language.advantages import LM_ADVANTAGES
from ppox.language.lora import LoRASpec

OptimizerDType = Literal["float32", "params"]  # with bfloat16: a float32 master copy, or the parameters' dtype


def training_problems(config) -> list[tuple[bool, str]]:
    """(bad, message) for --eval-prompts/--eval-every, --grad-accum-steps, --prompt-bucket, --optimizer-dtype."""
    k, m = config.grad_accum_steps, max(config.minibatches, 1)
    return [
        (
            config.eval_every < 0 or bool(config.eval_prompts) != (config.eval_every > 0),
            f"--eval-prompts {config.eval_prompts or '(none)'} --eval-every {config.eval_every}: give both "
            "(a file and a number of updates > 0) or neither",
        ),
        (
            k < 1 or m % max(k, 1),
            f"--grad-accum-steps {k}: >= 1 and dividing --minibatches {config.minibatches} "
            "(each Adam step averages the gradients of that many minibatches)",
        ),
        (
            not isinstance(config.prompt_bucket, int) or config.prompt_bucket < 0,
            f"--prompt-bucket {config.prompt_bucket}: a whole number of tokens >= 0 (0: every update at the "
            "longest prompt's width)",
        ),
        (
            config.optimizer_dtype not in typing.get_args(OptimizerDType),
            f"--optimizer-dtype {config.optimizer_dtype}: {' or '.join(typing.get_args(OptimizerDType))}",
        ),
        *lora_problems(config),
    ]


def lora_problems(config) -> list[tuple[bool, str]]:
    """(bad, message) for --lora-rank, --lora-alpha, --lora-dropout and --lora-targets."""
    rank = config.lora_rank
    return [
        (not isinstance(rank, int) or rank < 0, f"--lora-rank {rank}: a whole number >= 0 (0: no LoRA)"),
        (not config.lora_alpha > 0, f"--lora-alpha {config.lora_alpha}: must be > 0"),
        (not 0 <= config.lora_dropout < 1, f"--lora-dropout {config.lora_dropout}: in [0, 1)"),
        (
            rank == 0 and (bool(config.lora_targets) or config.lora_dropout > 0),
            "--lora-targets and --lora-dropout need --lora-rank r > 0",
        ),
        (
            rank > 0 and getattr(LM_ADVANTAGES.get(config.advantage), "uses_critic", False),
            f"--lora-rank with --advantage {config.advantage}: its critic is a full copy of the model; "
            "use --advantage grpo or rloo (no critic)",
        ),
    ]


def lora_spec(config):
    """The LoRASpec of the run's --lora-* settings (targets split at commas), None without --lora-rank."""
    if not config.lora_rank:
        return None
    targets = tuple(t.strip() for t in config.lora_targets.split(",") if t.strip())
    return LoRASpec(config.lora_rank, float(config.lora_alpha), float(config.lora_dropout), targets)
