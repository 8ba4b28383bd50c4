"""Prompt data sets: rows from JSONL, Parquet or a Hugging Face ``datasets`` folder, as text prompts and the
extra columns that go to the reward as keyword arguments (as TRL passes them).

A row holds its prompt as ``"prompt"`` (text, or a conversation: a list of {"role", "content"} messages)
or as ``"messages"`` (a conversation). Conversations are rendered with the tokenizer's own chat template,
ending with the generation prompt (``ppox.language.chat``); their text is tokenized without adding special
tokens. Every other column is an extra column: ``reward(prompts, completions, **columns)`` receives, for
each, the list of values of the batch's rows (one per completion). A ``datasets`` folder is what
``Dataset.save_to_disk`` writes (state.json naming its .arrow files, in Arrow's stream format); it is read by
pyarrow, without the ``datasets`` package. Parquet and such folders need the ``parquet`` extra (pyarrow).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ppox.drivers.lm import TextTask
from ppox.errors import ConfigError
from ppox.language.chat import check_messages, load_chat_template
from ppox.language.config import shown
from ppox.language.hf import pad_id
from ppox.language.reward_model import json_lines
from ppox.language.tokenizer import load_tokenizer

PROMPT_KEYS = ("prompt", "messages")


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """Prompts as text (chat conversations already rendered), whether they came from a chat template (their
    text holds its special tokens), and the extra columns: name -> one value per prompt."""

    texts: list[str]
    chat: bool
    columns: dict[str, list]

    def columns_of(self, rows) -> dict[str, list]:
        """The extra columns' values of prompts ``rows`` (indices, one per completion)."""
        return {name: [values[int(i)] for i in rows] for name, values in self.columns.items()}


def read_rows(path, flag: str = "--prompts") -> list[dict]:
    """The rows of a JSONL file (.jsonl/.json), a Parquet file (.parquet) or a ``datasets`` folder;
    ConfigError (one line) for what is none of these, a row that is no object, or no rows."""
    path = Path(path)
    if path.is_dir():
        rows = _dataset_folder(path, flag)
    elif path.suffix == ".parquet":
        rows = _pyarrow(flag).parquet.read_table(path).to_pylist()
    else:
        rows = []
        for number, row in json_lines(path, flag):
            if not isinstance(row, dict):
                raise ConfigError(f"{flag} {path}, line {number}: expected a JSON object, got {shown(row)}")
            rows.append(row)
    if not rows:
        raise ConfigError(f"{flag} {path}: no prompts")
    return rows


def _pyarrow(flag: str):
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet  # noqa: F401  (pyarrow.parquet is a submodule)
    except ImportError:
        raise ConfigError(
            f"{flag}: Parquet files and datasets folders need pyarrow: pip install 'ppox[parquet]'"
        ) from None
    return pyarrow


def _dataset_folder(folder: Path, flag: str) -> list[dict]:
    """The rows of a folder ``Dataset.save_to_disk`` wrote: state.json's _data_files, each an Arrow stream."""
    state_path = folder / "state.json"
    if (folder / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in folder.iterdir() if (p / "state.json").is_file())
        raise ConfigError(f"{flag} {folder}: a dataset with splits {splits}: name one, e.g. {folder / splits[0]}")
    if not state_path.is_file():
        raise ConfigError(f"{flag} {folder}: not a datasets folder (no state.json; give a .jsonl or .parquet file)")
    try:
        state = json.loads(state_path.read_text())
        files = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{flag} {state_path}: expected a JSON object with _data_files [{{filename}}]") from None
    pa = _pyarrow(flag)
    rows: list[dict] = []
    for name in files:
        if Path(name).name != name:
            raise ConfigError(f"{flag} {state_path}: data file {shown(name)} is not a file name in the folder")
        with pa.memory_map(str(folder / name)) as source:
            rows.extend(pa.ipc.open_stream(source).read_all().to_pylist())
    return rows


def prompt_set(rows: list[dict], tokenizer_folder: Path | None, where: str = "--prompts") -> PromptSet:
    """The prompts of ``rows`` and their extra columns; conversations rendered with the chat template of
    ``tokenizer_folder``. ConfigError for a row without a prompt, rows of both kinds, or a column that some
    rows lack."""
    key = "messages" if "messages" in rows[0] else "prompt"
    names = [k for k in rows[0] if k not in PROMPT_KEYS]
    chat = isinstance(rows[0].get(key), list)
    texts: list[str] = []
    template = None
    for i, row in enumerate(rows):
        prompt: Any = row.get(key) if isinstance(row, dict) else None
        if not (isinstance(prompt, list) if chat else isinstance(prompt, str)):
            kind = "a list of messages" if chat else "a string"
            raise ConfigError(f"{where}: row {i} has {key}={shown(prompt)}: every row's {key!r} must be {kind}")
        if sorted(k for k in row if k not in PROMPT_KEYS) != sorted(names):
            raise ConfigError(f"{where}: row {i} has columns {sorted(row)}, row 0 has {sorted(rows[0])}")
        if chat:
            check_messages(prompt, f"{where}: row {i}")
            if template is None:
                if tokenizer_folder is None:
                    raise ConfigError(f"{where}: conversations need a model folder with a tokenizer and chat template")
                template = load_chat_template(tokenizer_folder)
            prompt = template.render(prompt, add_generation_prompt=True)
        texts.append(prompt)
    return PromptSet(texts, chat, {name: [row[name] for row in rows] for name in names})


def as_prompt_set(prompts: Any, tokenizer_folder: Path | None) -> PromptSet | None:
    """``prompts`` given in Python as a list of row dicts (a data set's rows), else None (texts or ids)."""
    if isinstance(prompts, list) and prompts and isinstance(prompts[0], dict):
        return prompt_set(prompts, tokenizer_folder, "prompts=")
    return None


def read_prompt_set(prompts_file: str, prompts: Any, tokenizer_folder: Path) -> PromptSet | None:
    """The run's prompt set: from ``prompts_file`` (--prompts) when ``prompts`` is None, else from ``prompts``
    when it is a list of row dicts; None for prompts given as texts or token ids (``given_prompts``)."""
    folder = tokenizer_folder if (tokenizer_folder / "tokenizer.json").is_file() else None
    if prompts is None:
        return prompt_set(read_rows(prompts_file), folder, f"--prompts {prompts_file}")
    return as_prompt_set(prompts, folder)


def held_out(config, model, task) -> dict:
    """{"eval_task": the --eval-prompts set as a TextTask with the run's reward} for a run that has one, else
    {} (keyword arguments of ``ppox.drivers.lm_eval.driver_class``'s driver)."""
    if not config.eval_prompts:
        return {}
    folder = Path(config.model)
    if not (folder / "tokenizer.json").is_file():
        raise ConfigError(f"--eval-prompts: {folder} has no tokenizer.json (held-out prompts are text)")
    data = prompt_set(read_rows(config.eval_prompts, "--eval-prompts"), folder, f"--eval-prompts {config.eval_prompts}")
    tok = load_tokenizer(folder, pad_id=pad_id(model))
    ids, mask = tok.encode(data.texts, None, add_special_tokens=not data.chat)
    ids, mask = ids[:, -config.max_prompt_tokens :], mask[:, -config.max_prompt_tokens :]
    if not mask.any(-1).all():
        raise ConfigError(f"--eval-prompts: prompt {int(mask.any(-1).argmin())} has no tokens")
    columns = data.columns_of if data.columns else None
    return {"eval_task": TextTask(ids, mask, tok.decode, task.reward, tok.pad_id, model.eos_ids, columns)}
