"""LoRA adapter folders (PEFT's format) from the user's side: load a model with an adapter, merge an adapter into
a full Hugging Face folder (``ppox lm merge-lora ADAPTER --base BASE --out FOLDER``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ppox.errors import CheckpointError
from ppox.language.hf import LanguageModel, load, save
from ppox.language.lora import ADAPTER_CONFIG, LoRASpec, load_adapter, merged, save_adapter, with_adapters
from ppox.language.run_checks import lora_spec

MODEL_DIR = "model"  # a run's trained policy, a Hugging Face folder
ADAPTER_DIR = "adapter"  # a --lora-rank run's adapters instead, PEFT's format (merge-lora makes a full folder)


def is_adapter(folder) -> bool:
    """Whether ``folder`` is a PEFT adapter folder (holds adapter_config.json)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def load_with_adapter(adapter, base, dtype: str = "float32", merge: bool = False) -> tuple[LanguageModel, LoRASpec]:
    """(the base model with the adapter laid over its parameters, or merged into them with ``merge``, the spec)."""
    model = load(Path(base), dtype)
    adapters, spec = load_adapter(adapter, model.config)
    params = merged(model.params, adapters) if merge else with_adapters(model.params, adapters)
    return dataclasses.replace(model, params=params), spec


def merge_folder(adapter, base, out, dtype: str = "float32", overwrite: bool = False) -> LoRASpec:
    """Write ``out``: the base model (a Hugging Face folder) with W' = W + (alpha / r) A B in each adapted layer,
    its tokenizer files beside; a folder transformers loads as any other. Refused (one line) when ``out``
    holds files, unless ``overwrite``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f"--out {out} is not empty; choose a new folder (or --overwrite)")
    model, spec = load_with_adapter(adapter, base, dtype, merge=True)
    save(out, model, tokenizer_from=Path(base))
    return spec


def trained_model(config, model: LanguageModel, policy: dict) -> LanguageModel:
    """The trained policy of a run: ``policy``, or with --lora-rank the base with the adapters ``policy`` over it."""
    return dataclasses.replace(model, params=with_adapters(model.params, policy) if config.lora_rank else policy)


def save_policy(run_path: Path, config, model: LanguageModel, trained: LanguageModel, policy: dict) -> None:
    """RUN/model (a Hugging Face folder), or with --lora-rank RUN/adapter (PEFT's adapter folder, its
    base_model_name_or_path the run's --model)."""
    spec = lora_spec(config)
    if spec is not None:
        save_adapter(run_path / ADAPTER_DIR, model.config, policy, spec, str(config.model))
    else:
        save(run_path / MODEL_DIR, trained, tokenizer_from=Path(config.model))
