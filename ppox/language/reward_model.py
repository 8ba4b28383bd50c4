"""Reward models from preference pairs: a language model's trunk with a scalar head, trained with the
Bradley-Terry loss, saved as a model folder plus ``reward_head.safetensors``.

r(x, y) = h_last w + b, h_last the final hidden state of the last token of prompt + completion (with left
padding, the last column). P(chosen > rejected) = sigmoid(r_c - r_r); the loss is -log sigmoid(r_c - r_r).
transformers reads such a folder as the causal LM it came from; the head is ppox's own file.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ppox.errors import CheckpointError, ConfigError
from ppox.language.config import LMConfig, check_memory, parameter_count
from ppox.language.hf import LanguageModel, load, read_config, save
from ppox.language.models import hidden_states
from ppox.language.tokenizer import TextTokenizer, load_tokenizer
from ppox.utils.tensorfile import read, write

HEAD_FILE = "reward_head.safetensors"


def reward_scores(config: LMConfig, params: dict, ids: jax.Array, mask: jax.Array) -> jax.Array:
    """r [B] of left-padded sequences: the head on the last column's final hidden state."""
    h = hidden_states(config, params["trunk"], ids, mask)[:, -1]
    return h @ params["head"]["kernel"] + params["head"]["bias"]


_scores = jax.jit(reward_scores, static_argnums=0)


def bradley_terry_loss(config: LMConfig, params: dict, chosen, chosen_mask, rejected, rejected_mask):
    """(mean -log sigmoid(r_c - r_r), accuracy: the fraction with r_c > r_r)."""
    margin = reward_scores(config, params, chosen, chosen_mask) - reward_scores(config, params, rejected, rejected_mask)
    return -jnp.mean(jax.nn.log_sigmoid(margin)), jnp.mean((margin > 0).astype(jnp.float32))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _step(config: LMConfig, optimizer, params, opt_state, batch):
    (loss, accuracy), grads = jax.value_and_grad(functools.partial(bradley_terry_loss, config), has_aux=True)(
        params, *batch
    )
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, accuracy


def json_lines(path, flag: str) -> list[tuple[int, Any]]:
    """(line number, JSON value) of each non-blank line of a JSONL file; ConfigError (one line) naming the
    file, and the line, when it cannot be read, is not UTF-8 (a byte-order mark at its start is allowed) or is
    no valid JSON (``strict_json``; also nesting too deep, an integer of more than 4300 digits)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{flag} {path}: {err.strerror or err}") from None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        where = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{flag} {path}, line {where}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                rows.append((number, strict_json(line)))
            except (ValueError, RecursionError) as err:
                reason = str(err).splitlines()[0][:100]
                raise ConfigError(f"{flag} {path}, line {number}: not a JSON value (invalid JSON: {reason})") from None
    return rows


def strict_json(text: str) -> Any:
    """The JSON value of ``text``; ValueError where it is no standard JSON, including what Python's reader lets
    through: NaN, Infinity and -Infinity, and an escape of half a UTF-16 surrogate pair (no character)."""
    value = json.loads(text, parse_constant=_refuse_constant)
    if "\\u" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("an escape in \\ud800-\\udfff without its pair is half a character") from None
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (write a number, or null)")


def read_pairs(path) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of each JSONL line; ConfigError naming a line that lacks one, or whose
    completions are empty (a completion is scored at its last token: it needs one)."""
    pairs = []
    for number, row in json_lines(path, "--pairs"):
        ok = isinstance(row, dict) and all(isinstance(row.get(k, ""), str) for k in ("prompt", "chosen", "rejected"))
        if not (ok and "chosen" in row and "rejected" in row):
            raise ConfigError(f'--pairs {path}, line {number}: expected {{"prompt", "chosen", "rejected"}} strings')
        if not (row["chosen"] and row["rejected"]):
            raise ConfigError(f"--pairs {path}, line {number}: an empty completion; chosen and rejected need text")
        pairs.append((row.get("prompt", ""), row["chosen"], row["rejected"]))
    if len(pairs) < 2:
        raise ConfigError(f"--pairs {path}: at least 2 pairs are needed (one held out)")
    return pairs


@dataclasses.dataclass(frozen=True)
class RewardModel:
    """A trained reward model; called as reward(prompts, completions) -> list[float]."""

    model: LanguageModel
    head: dict
    tokenizer: TextTokenizer
    max_tokens: int = 512

    def scores(self, texts: list[str], batch: int = 16) -> np.ndarray:
        ids, mask = self.tokenizer.encode(texts, None)
        width = -(-ids.shape[1] // 32) * 32  # lengths in steps of 32: few compiled shapes
        ids, mask = _left_pad(ids, mask, min(width, self.max_tokens), self.tokenizer.pad_id)
        params = {"trunk": self.model.params, "head": self.head}
        return np.concatenate(
            [
                np.asarray(_scores(self.model.config, params, ids[i : i + batch], mask[i : i + batch]))
                for i in range(0, len(texts), batch)
            ]
        )

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        return self.scores([p + c for p, c in zip(prompts, completions)]).tolist()


def _left_pad(ids: np.ndarray, mask: np.ndarray, width: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    extra = width - ids.shape[1]
    if extra <= 0:
        return ids[:, -width:], mask[:, -width:]
    return (
        np.concatenate([np.full((len(ids), extra), pad, ids.dtype), ids], 1),
        np.concatenate([np.zeros((len(ids), extra), bool), mask], 1),
    )


def save_reward_model(folder: Path, rm: RewardModel, tokenizer_from: Path) -> None:
    save(folder, rm.model, tokenizer_from=tokenizer_from)
    write(
        Path(folder) / HEAD_FILE,
        {k: np.asarray(v, np.float32).reshape(-1) for k, v in rm.head.items()},
        {"format": "ppox-reward-head", "width": str(rm.model.config.hidden_size)},
    )


def load_reward_model(folder, pad_id: int | None = None) -> RewardModel:
    """A folder written by ``train_reward_model``; CheckpointError if it has no reward head."""
    folder = Path(folder)
    if not (folder / HEAD_FILE).is_file():
        raise CheckpointError(f"{folder}: no {HEAD_FILE}; train one with: ppox lm reward-model")
    model = load(folder)
    tensors, _ = read(folder / HEAD_FILE, "reward head")
    width = model.config.hidden_size
    if tensors.get("kernel", np.zeros(0)).shape != (width,) or tensors.get("bias", np.zeros(0)).size != 1:
        raise CheckpointError(f"{folder / HEAD_FILE}: expected kernel [{width}] and bias [1]")
    head = {"kernel": jnp.asarray(tensors["kernel"]), "bias": jnp.asarray(tensors["bias"].reshape(()))}
    pad = pad_id if pad_id is not None else model.hf_config.get("pad_token_id", 0)
    return RewardModel(model, head, load_tokenizer(folder, pad_id=pad))


def _encode_pairs(tok: TextTokenizer, pairs, max_tokens: int):
    chosen = tok.encode([p + c for p, c, _ in pairs], None)
    rejected = tok.encode([p + r for p, _, r in pairs], None)
    for mask in (chosen[1], rejected[1]):
        if not mask.any(-1).all():
            raise ConfigError(f"pair {int(np.argmin(mask.any(-1)))} has a completion without tokens: give it text")
    width = min(max(chosen[0].shape[1], rejected[0].shape[1]), max_tokens)
    return (*_left_pad(*chosen, width, tok.pad_id), *_left_pad(*rejected, width, tok.pad_id))


def check_settings(out, overwrite: bool, epochs, batch, learning_rate, held_out, seed, max_tokens) -> None:
    """ConfigError (one line) for a setting of ``train_reward_model`` out of range, or an ``out`` folder that
    holds files already (without ``overwrite``): checked before any work."""
    whole = lambda x, least=1: isinstance(x, int) and not isinstance(x, bool) and least <= x  # noqa: E731
    number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)  # noqa: E731
    problems = [
        (not whole(epochs), f"--epochs {epochs!r}: a whole number >= 1"),
        (not whole(batch), f"--batch-size {batch!r}: a whole number >= 1"),
        (not (number(learning_rate) and learning_rate > 0), f"--learning-rate {learning_rate!r}: a finite number > 0"),
        (not (number(held_out) and 0 < held_out < 1), f"--held-out {held_out!r}: a fraction in (0, 1)"),
        (not (whole(seed, 0) and seed < 2**31), f"--seed {seed!r}: a whole number in [0, 2^31)"),
        (not whole(max_tokens), f"max_tokens {max_tokens!r}: a whole number >= 1"),
    ]
    for bad, message in problems:
        if bad:
            raise ConfigError(f"reward model: {message}")
    folder = None if out is None else Path(out)
    if folder is not None and (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise ConfigError(f"--out {folder}: a file is there; name a new folder for the reward model")
    if folder is not None and folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out {folder} already holds files; name a new folder, or pass --overwrite to write the reward "
            "model there"
        )


def train_reward_model(
    model_dir,
    pairs: list,
    out=None,
    *,
    epochs: int = 1,
    batch: int = 8,
    learning_rate: float = 1e-5,
    held_out: float = 0.1,
    seed: int = 0,
    max_tokens: int = 512,
    pad_id: int | None = None,
    normalize: bool = True,
    overwrite: bool = False,
) -> tuple[RewardModel, dict]:
    """(reward model, {"train_accuracy", "held_out_accuracy", "held_out_loss", ...}): Adam on the
    Bradley-Terry loss over shuffled pairs, a ``held_out`` fraction (at least one pair) kept for evaluation;
    saved to ``out`` (a folder) when given: a new or empty one, unless ``overwrite``. The head starts at
    w ~ N(0, 1 / (width + 1)), b = 0; with ``normalize`` the bias is then shifted so that the training pairs'
    completions score 0 on average. The settings, the folder and the memory needed are checked first."""
    check_settings(out, overwrite, epochs, batch, learning_rate, held_out, seed, max_tokens)
    config, _ = read_config(Path(model_dir))
    count = parameter_count(config)
    check_memory(16 * count, f"a reward model of {count:,} parameters (with gradients and Adam)", "use a smaller model")
    base = load(model_dir)
    pad = pad_id if pad_id is not None else base.hf_config.get("pad_token_id", 0)
    tok = load_tokenizer(Path(model_dir), pad_id=pad)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_eval = max(1, int(round(held_out * len(pairs))))
    test, train = [pairs[i] for i in order[:n_eval]], [pairs[i] for i in order[n_eval:]]
    data, test_data = _encode_pairs(tok, train, max_tokens), _encode_pairs(tok, test, max_tokens)
    params, accuracies = _fit(base, data, epochs, batch, learning_rate, seed, rng)
    loss, accuracy = bradley_terry_loss(base.config, params, *test_data)
    rm = RewardModel(dataclasses.replace(base, params=params["trunk"]), params["head"], tok, max_tokens)
    if normalize:
        rm = normalized(rm, [p + c for p, c, _ in train] + [p + r for p, _, r in train])
    if out is not None:
        save_reward_model(Path(out), rm, Path(model_dir))
    report = {
        "pairs_train": len(train),
        "pairs_held_out": len(test),
        "steps": len(accuracies),
        "train_accuracy_last_epoch": float(np.mean(accuracies[-max(1, len(accuracies) // epochs) :])),
        "held_out_accuracy": float(accuracy),
        "held_out_loss": float(loss),
    }
    return rm, report


def _fit(base: LanguageModel, data: tuple, epochs: int, batch: int, learning_rate: float, seed: int, rng):
    """(trunk and head parameters, each step's accuracy) after ``epochs`` of Adam over shuffled batches."""
    width = base.config.hidden_size
    head = {
        "kernel": jax.random.normal(jax.random.PRNGKey(seed), (width,)) / np.sqrt(width + 1.0),
        "bias": jnp.zeros(()),
    }
    params, optimizer = {"trunk": base.params, "head": head}, optax.adam(learning_rate)
    opt_state, accuracies, n = optimizer.init(params), [], len(data[0])
    for _ in range(epochs):
        rows = rng.permutation(n)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            pick = rows[i : i + batch]
            params, opt_state, _, accuracy = _step(
                base.config, optimizer, params, opt_state, tuple(x[pick] for x in data)
            )
            accuracies.append(float(accuracy))
    return params, accuracies


def normalized(rm: RewardModel, texts: list[str]) -> RewardModel:
    """The reward model with b <- b - mean r(texts): those texts then score 0 on average (the differences
    that the Bradley-Terry loss and PPO's advantages see are unchanged)."""
    shift = float(np.mean(rm.scores(texts)))
    return dataclasses.replace(rm, head={**rm.head, "bias": rm.head["bias"] - shift})
