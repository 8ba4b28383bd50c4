"""LoRA adapter folders (PEFT's format) from the user's side: load a model with an adapter, merge an adapter into
a full Hugging Face folder (``ppox lm merge-lora ADAPTER --base BASE --out FOLDER``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ppox.errors import CheckpointError
from ppox.language.hf import LanguageModel, load, save
from ppox.language.lora import ADAPTER_CONFIG, LoRASpec, load_adapter, merged, with_adapters


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
