"""Checks of the LM run settings of issue 37 (held-out prompts, gradient accumulation, the optimiser's dtype),
kept apart from ``run_config`` so that it stays one screenful of fields and checks."""

from __future__ import annotations

import typing
from typing import Literal

OptimizerDType = Literal["float32", "params"]  # with bfloat16: a float32 master copy, or the parameters' dtype


def training_problems(config) -> list[tuple[bool, str]]:
    """(bad, message) for --eval-prompts/--eval-every, --grad-accum-steps and --optimizer-dtype."""
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
            config.optimizer_dtype not in typing.get_args(OptimizerDType),
            f"--optimizer-dtype {config.optimizer_dtype}: {' or '.join(typing.get_args(OptimizerDType))}",
        ),
    ]
