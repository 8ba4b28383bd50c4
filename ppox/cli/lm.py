"""``ppox lm train | sample | reward-model``: PPO on a language model, completions, a reward model."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from ppox.cli.flags import FlagError, Option, fail, given, parse_flags, scan, text
from ppox.cli.running import run_reported

SUMMARY = "language models: ppox lm train | sample | reward-model | merge-lora (ppox lm train --help)"

USAGE = """usage: ppox lm COMMAND [ARGS]

commands:
  train         PPO on a language model: ppox lm train --model DIR --prompts FILE.jsonl --reward module:function
                [--reward module:function ...] [--reward-model DIR] [--reward-weights W ...]
                [--advantage gae|rloo|grpo] [--loss token|sequence|dr_grpo|gspo] [--kl-in reward|loss]
                [--reward-timeout SECONDS] ...;
                ppox lm train --resume RUN [--reward module:function ...] [--reward-timeout SECONDS]
  sample        completions: ppox lm sample --model DIR --prompts FILE.jsonl
  reward-model  train a reward model on preference pairs: ppox lm reward-model --model DIR --pairs FILE.jsonl
                --out NEW_DIR [--overwrite]
  merge-lora    a full Hugging Face folder from a LoRA adapter (PEFT's format, e.g. RUN/adapter of a --lora-rank
                run): ppox lm merge-lora ADAPTER --base DIR --out NEW_DIR [--overwrite]
"""

RESUME_OPTIONS = {
    "resume": Option(value="RUN"),
    "reward": Option(value="module:function"),
    "reward-timeout": Option(value="SECONDS"),
    "trust-run-config": Option(),
}


def run(args: list[str]) -> int:
    """ppox lm COMMAND: the subcommand's run, or the usage."""
    commands = {"train": train, "sample": sample, "reward-model": reward_model, "merge-lora": merge_lora}
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] not in commands:
        return fail("lm", f"unknown command {args[0]!r}\n{USAGE}")
    return commands[args[0]](args[1:])


def train(args: list[str]) -> int:
    """ppox lm train [FLAGS]: the LMRunConfig of the flags (tyro), then the run and its summary."""
    from ppox.errors import ConfigError
    from ppox.language.run_config import LMRunConfig
    from ppox.lm.training import train_lm

    if given(args, "resume"):
        return resume(args)
    specs, args = reward_flags(args)
    args = args + (["--reward", *specs] if specs else [])
    try:
        config = parse_flags(LMRunConfig, args, "ppox lm train", description="PPO on a language model (RLHF).")
    except ConfigError as err:
        return fail("lm train", str(err))
    return run_reported("lm train", functools.partial(train_lm, config), report)


def reward_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(the values of every --reward, in order; the other args): --reward a:f --reward b:g gives two rewards
    (as --reward a:f b:g does)."""
    specs: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        flag, has_value, value = args[i].partition("=")
        i += 1
        if flag != "--reward":
            rest.append(args[i - 1])
        elif has_value:
            specs.append(value)
        else:
            while i < len(args) and not args[i].startswith("--"):
                specs.append(args[i])
                i += 1
    return specs, rest


def resume(args: list[str]) -> int:
    """ppox lm train --resume RUN [--reward module:function] [--reward-timeout S] [--trust-run-config]: continue
    a run."""
    from ppox.lm.training import import_reward, resume_lm

    specs, args = reward_flags(args)
    try:
        opts, rest = scan(args, RESUME_OPTIONS.get)
    except FlagError:  # (--resume or --reward without its value: the same message as any other misuse)
        opts, rest = {}, args
    if "resume" not in opts or rest:
        return fail(
            "lm train",
            "--resume RUN continues a run with its own settings (only --reward "
            "module:function, --reward-timeout SECONDS or --trust-run-config may go with it)",
        )
    timeout = text(opts, "reward-timeout")
    try:
        seconds = None if timeout is None else float(timeout)
    except ValueError:
        return fail("lm train", f"--reward-timeout {timeout}: a number of seconds")
    if seconds is not None and not 0 < seconds < float("inf"):
        return fail("lm train", f"--reward-timeout {timeout}: a finite number of seconds > 0")

    def start() -> Any:  # (a reward that does not import is a one-line error too)
        reward = [import_reward(spec) for spec in specs] or None
        trust = "trust-run-config" in opts
        return resume_lm(text(opts, "resume", ""), reward=reward, trust_run_config=trust, reward_timeout=seconds)

    return run_reported("lm train", start, report)


def report(result: Any) -> None:
    """Print an LM run's summary line: updates, time, the scores at the start and end, the KL, the folder."""
    from ppox.lm.training import lm_summary

    s = lm_summary(result)
    where = f" -> {s['run_path']}" if s["run_path"] else ""
    print(
        f"{result.config.env}: {s['updates']} updates in {s['wall_time_s']:.1f} s; mean score first 10% "
        f"{s['score_first']:.3f}, last 10% {s['score_last']:.3f}; KL to the reference {s['kl_ref_last']:.3f}"
        f"{where}"
    )


@dataclasses.dataclass(frozen=True)
class LMSample:
    """Print one completion per prompt as JSON lines {"prompt": ..., "completion": ...}."""

    model: str
    """A Hugging Face model folder with tokenizer.json (a run's RUN/model too)."""
    prompts: str
    """JSONL, Parquet or datasets folder of {"prompt": "..."} or {"messages": [...]} rows (chat templated)."""
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    """Take the most likely token at each step."""
    batch_size: int = 8
    seed: int = 0
    adapter: str = ""
    """A LoRA adapter folder (PEFT's format, e.g. a --lora-rank run's RUN/adapter) laid over --model, its base."""


def sample(args: list[str]) -> int:
    """ppox lm sample: one completion per prompt, as JSON lines."""
    from ppox.errors import CheckpointError, ConfigError

    opts = parse_flags(LMSample, args, "ppox lm sample")
    import ppox.lm
    from ppox.lm.data import read_rows

    try:
        rows = read_rows(opts.prompts)
        prompts = [row.get("messages", row.get("prompt")) for row in rows]
        bad = next((i for i, p in enumerate(prompts) if not isinstance(p, (str, list))), None)
        if bad is not None:
            raise ConfigError(f'--prompts {opts.prompts}: row {bad} has no "prompt" text or "messages" list')
        model: Any = opts.model
        if opts.adapter:
            from ppox.lm.lora import load_with_adapter

            model = load_with_adapter(opts.adapter, opts.model)[0]
        completions = ppox.lm.sample(
            model,
            prompts,
            tokenizer_from=opts.model,
            max_new_tokens=opts.max_new_tokens,
            temperature=opts.temperature,
            top_k=opts.top_k,
            top_p=opts.top_p,
            greedy=opts.greedy,
            batch_size=opts.batch_size,
            seed=opts.seed,
        )
    except (OSError, ConfigError, CheckpointError) as err:
        return fail("lm sample", str(err))
    for prompt, completion in zip(prompts, completions):
        print(json.dumps({"prompt": prompt, "completion": completion}))
    return 0


@dataclasses.dataclass(frozen=True)
class LMMergeLoRA:
    """Merge a LoRA adapter (PEFT's format) into its base model: a full Hugging Face folder, W + (alpha / r) B A."""

    adapter: str
    """The adapter folder (adapter_config.json, adapter_model.safetensors); also the first argument."""
    base: str
    """The base model's Hugging Face folder."""
    out: str
    """The folder to write (a new or empty one)."""
    overwrite: bool = False
    """Write into --out even if it holds files."""
    dtype: str = "float32"
    """float32 or bfloat16: the merged parameters' dtype."""


def merge_lora(args: list[str]) -> int:
    """ppox lm merge-lora ADAPTER --base DIR --out NEW_DIR: write the merged folder."""
    from ppox.errors import CheckpointError, ConfigError

    if args and not args[0].startswith("-"):
        args = ["--adapter", *args]
    opts = parse_flags(LMMergeLoRA, args, "ppox lm merge-lora")
    from ppox.lm.lora import merge_folder

    try:
        spec = merge_folder(opts.adapter, opts.base, opts.out, opts.dtype, opts.overwrite)
    except (OSError, ConfigError, CheckpointError) as err:
        return fail("lm merge-lora", str(err))
    print(f"merged {opts.adapter} (r {spec.rank}, alpha {spec.alpha:g}) into {opts.base} -> {opts.out}")
    return 0


@dataclasses.dataclass(frozen=True)
class LMRewardModel:
    """Train a reward model (Bradley-Terry) on preference pairs and save it as a model folder."""

    model: str
    """The Hugging Face folder whose trunk the reward model starts from (with tokenizer.json)."""
    pairs: str
    """JSONL file, one {"prompt": ..., "chosen": ..., "rejected": ...} per line."""
    out: str
    """The folder to write (model files + reward_head.safetensors)."""
    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 1e-5
    held_out: float = 0.1
    """Fraction of the pairs kept out of training to measure accuracy."""
    overwrite: bool = False
    """Write into --out even if it holds files (by default it must be a new or empty folder)."""
    normalize: bool = True
    """Shift the head's bias so that the training pairs' completions score 0 on average."""
    seed: int = 0


def reward_model(args: list[str]) -> int:
    """ppox lm reward-model: train on the pairs, save the folder, print the held-out accuracy."""
    from ppox.errors import CheckpointError, ConfigError

    opts = parse_flags(LMRewardModel, args, "ppox lm reward-model")
    from ppox.language.reward_model import check_settings, read_pairs, train_reward_model

    try:
        settings = (opts.epochs, opts.batch_size, opts.learning_rate, opts.held_out, opts.seed, 512)
        check_settings(opts.out, opts.overwrite, *settings)  # (before the pairs are read)
        _, result = train_reward_model(
            opts.model,
            read_pairs(opts.pairs),
            opts.out,
            epochs=opts.epochs,
            batch=opts.batch_size,
            learning_rate=opts.learning_rate,
            held_out=opts.held_out,
            seed=opts.seed,
            normalize=opts.normalize,
            overwrite=opts.overwrite,
        )
    except (OSError, ConfigError, CheckpointError, json.JSONDecodeError) as err:
        return fail("lm reward-model", str(err))
    print(
        f"reward model -> {opts.out}: {result['pairs_train']} pairs, {result['steps']} steps; held-out accuracy "
        f"{result['held_out_accuracy']:.3f} on {result['pairs_held_out']} pairs (loss {result['held_out_loss']:.3f})"
    )
    return 0
