"""``ppox.train_lm`` and ``ppox.resume_lm``: PPO on a language model through the one run loop.

The run folder, metrics.csv, TensorBoard, checkpoints, resume, signals and the non-finite guard are
``ppox.run.loop``'s; the model, prompts and reward become an ``LMDriver``. The trained policy is saved as a
Hugging Face folder, RUN/model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ppox.drivers.distributed import device_mesh
from ppox.drivers.lm import LM_METRICS, LMDriver, RewardError, TextTask, ids_task, initial_state
from ppox.drivers.lm_eval import driver_class
from ppox.errors import CheckpointError, ConfigError, RunWriteError, UserCodeError
from ppox.language.hf import LanguageModel, load, pad_id, read_config
from ppox.language.models import params_dtype
from ppox.language.reward_model import RewardModel, json_lines, load_reward_model
from ppox.language.rewards import reward_components
from ppox.language.run_config import LMRunConfig, check_run_memory
from ppox.language.tokenizer import load_tokenizer
from ppox.lm.data import held_out, read_prompt_set
from ppox.lm.lora import save_policy, trained_model
from ppox.lm.prompts import given_prompts
from ppox.run.callbacks import Callbacks, started_callbacks
from ppox.run.loop import Outcome, Start, run_loop
from ppox.storage.checkpoint import list_checkpoints, read_newest_checkpoint, restore_state
from ppox.storage.runfolder import RunLock, discard_if_empty, make_run_path
from ppox.storage.runlog import RunLog
from ppox.utils.files import atomic_write_text
from ppox.utils.imports import import_attribute
from ppox.utils.naming import named


@dataclasses.dataclass
class LMTrainResult:
    """What an LM run produced: the config, the trained policy, metrics[name] [1, updates]."""

    config: LMRunConfig
    model: LanguageModel
    metrics: dict[str, np.ndarray]
    wall_time: float
    run_path: Path | None
    interrupted: bool = False  # stopped by a signal: resume_lm continues it
    stopped_by: str | None = None  # why a callback (a stopping rule) ended the run early: it is finished


def read_prompts(path) -> list[str]:
    """The "prompt" of each line of a JSONL file; ConfigError naming the line that has none (or is no JSON)."""
    prompts = []
    for number, row in json_lines(path, "--prompts"):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str):
            raise ConfigError(f'--prompts {path}, line {number}: expected a JSON object with a "prompt" string')
        prompts.append(prompt)
    if not prompts:
        raise ConfigError(f"--prompts {path}: no prompts")
    return prompts


def import_reward(spec: str) -> Callable:
    """The function named 'module:function', found from the current folder too (importing the module runs its
    code); ConfigError (one line) for a name of another form, a module that does not import, or no function."""
    return import_attribute(spec, what="--reward")


def make_task(config: LMRunConfig, model: LanguageModel, prompts, reward) -> TextTask:
    """Prompts (texts, or lists of token ids for a model without tokenizer.json) and the reward, as a TextTask."""
    folder = Path(config.model)
    if prompts is None and not config.prompts:
        raise ConfigError("lm: give the prompts: --prompts FILE.jsonl (or prompts= in Python)")
    data = read_prompt_set(config.prompts, prompts, folder)  # (rows: JSONL, Parquet, datasets; conversations)
    prompts = data.texts if data is not None else given_prompts(prompts)
    reward = reward_components(config, reward)
    pad = model.hf_config.get("pad_token_id")
    if (folder / "tokenizer.json").is_file() and prompts and isinstance(prompts[0], str):
        tok = load_tokenizer(folder, pad_id=pad_id(model))
        ids, mask = tok.encode(prompts, None, add_special_tokens=not (data and data.chat))
        ids, mask = ids[:, -config.max_prompt_tokens :], mask[:, -config.max_prompt_tokens :]
        if not mask.any(-1).all():
            raise ConfigError(f"prompt {int(np.argmin(mask.any(-1)))} has no tokens: every prompt needs at least one")
        columns = data.columns_of if data is not None and data.columns else None
        return TextTask(ids, mask, tok.decode, reward, tok.pad_id, model.eos_ids, columns)
    if prompts and isinstance(prompts[0], str):
        raise ConfigError(f"{folder} has no tokenizer.json: give the prompts as lists of token ids")
    if pad is None:
        raise ConfigError(f"{folder}/config.json names no pad_token_id; set one for id prompts")
    ids, mask = ids_task(prompts, int(pad), config.max_prompt_tokens)
    show = lambda x, m: [row[keep].tolist() for row, keep in zip(np.asarray(x), np.asarray(m, bool))]  # noqa: E731
    return TextTask(ids, mask, show, reward, int(pad), model.eos_ids)


def lm_mesh(config: LMRunConfig):
    """The mesh ("data") over ``config.devices`` local devices, None for one; a one-line error when JAX sees
    fewer (checked before the model loads)."""
    return device_mesh(config.devices, "data") if config.devices > 1 else None


def make_driver(config: LMRunConfig, model: LanguageModel, task: TextTask, mesh=None) -> LMDriver:
    """The LM driver; with ``critic_from_reward_model`` its critic starts as the reward model, which must
    have the policy's architecture and dtype."""
    if not config.critic_from_reward_model:
        return driver_class(config)(config, model, task, mesh=mesh, **held_out(config, model, task))
    models = [f for f in task.reward.functions if isinstance(f, RewardModel)]
    rm = models[0] if models else load_reward_model(config.reward_model)
    same = (
        rm.model.config == model.config
        and jax.tree.structure(rm.model.params) == jax.tree.structure(model.params)  # type: ignore[operator]
        and params_dtype(rm.model.params) == params_dtype(model.params)
    )
    if not same:
        raise ConfigError(
            f"--critic-from-reward-model: {config.reward_model} is not shaped as {config.model} "
            "(the critic is the policy's architecture); drop the flag"
        )
    critic = {"trunk": rm.model.params, "head": rm.head}
    return driver_class(config)(config, model, task, critic=critic, mesh=mesh, **held_out(config, model, task))


def train_lm(
    config: LMRunConfig | None = None, *, prompts=None, reward=None, callbacks=(), **settings
) -> LMTrainResult:
    """PPO on the model ``config.model`` (a Hugging Face folder); ``ppox.lm.train``.

    Ctrl-C (SIGINT) or SIGTERM saves a checkpoint; ``resume_lm`` (``ppox.lm.resume``) continues the run.

    Args:
        config: the run's settings. Default: ``LMRunConfig(**settings)``.
        prompts: texts, or lists of token ids for a model folder without tokenizer.json. Default: the
            config's JSONL file.
        reward: ``reward(prompts, completions) -> list[float]``, one score per completion; or several, as a
            list of such functions or a dict name -> function (``reward_weights=`` weighs them; each is logged
            as rewards/<name>). Default: the config's 'module:function's. A --reward-model in the config is
            added to them.
        callbacks: ``ppox.Callback`` objects that see each update (``episode_return``: the mean score) and may
            stop the run, which then is finished (``stopped_by``; ``ppox.run.callbacks``).
        **settings: LMRunConfig fields that make the config (without ``config``) or change it.

    Returns:
        An ``LMTrainResult``: the config, the trained policy (a ``LanguageModel``), ``metrics[name]`` as
        NumPy arrays [1, updates], the wall time in seconds, the run folder (the policy saved in
        RUN/model as a Hugging Face folder; None when saving is off) and ``interrupted``.

    Raises:
        ConfigError: bad settings, no prompts, no reward, a prompt without tokens, an update that needs more
            memory than the machine has, or a reward that fails (``RewardError``).
        UserCodeError: the reward or a callback raised (its exception is the ``__cause__``), once the last
            completed update is checkpointed.
    """
    config = LMRunConfig(**settings) if config is None else config.replace(**settings)
    prompts = None if prompts is None else given_prompts(prompts)  # (before the model loads)
    mesh = lm_mesh(config)
    check_run_name(config)
    check_run_memory(config, read_config(Path(config.model))[0], prompt_tokens=1)  # (before the model loads)
    model = load(Path(config.model), config.dtype)
    driver = make_driver(config, model, make_task(config, model, prompts, reward), mesh)
    hooks = started_callbacks(callbacks, config)
    run_path = make_run_path(config) if config.save else None
    try:
        return run(driver, run_path, Start(), callbacks=hooks)
    except BaseException:
        discard_if_empty(run_path)
        raise


def check_run_name(config: LMRunConfig) -> None:
    """ConfigError (before any work) when --run-name names a folder that holds a run: say how to resume it."""
    path = Path(config.run_dir) / config.run_name if config.save and config.run_name is not None else None
    if path is not None and path.is_dir() and any(path.iterdir()):
        raise ConfigError(
            f"--run-name {config.run_name}: {path} already holds a run; choose another name, or "
            f"continue that run with: ppox lm train --resume {path}"
        )


def resume_command(config: LMRunConfig, run_path: Path | None) -> str:
    """The command that continues this run, with its --reward 'module:function' (a resume must repeat it). (A run
    given its prompts or reward in Python continues in Python: ``ppox.lm.resume(RUN, prompts=..., reward=...)``.)"""
    if run_path is None:
        return "(nothing was saved)"
    reward = [arg for spec in config.reward for arg in ("--reward", spec)]
    return shlex.join(["ppox", "lm", "train", "--resume", str(run_path), *reward])


def resume_lm(
    run_path,
    *,
    prompts=None,
    reward=None,
    trust_run_config: bool = False,
    reward_timeout: float | None = None,
) -> LMTrainResult:
    """Continue an LM run from its newest checkpoint; a 'module:function' reward recorded in the run is
    imported only with ``trust_run_config`` (else pass ``reward``). ``reward_timeout`` replaces the run's.
    A run whose final checkpoint exists but whose RUN/model and summary.json were never written (killed
    between them) gets both from that checkpoint, with no reward needed."""
    checkpoint = read_newest_checkpoint(run_path)
    if checkpoint.meta.get("driver") != "lm":
        raise CheckpointError(f"{run_path}: not an LM run (resume it with ppox train --resume)")
    config = LMRunConfig.from_dict(checkpoint.meta["config"])
    if reward_timeout is not None:
        config = config.replace(reward_timeout=reward_timeout)
    stopped_by = checkpoint.meta.get("stopped_by")  # (a stopping rule ended it: finished, as at its planned end)
    if checkpoint.update >= config.num_updates or stopped_by:
        if completed(Path(run_path), checkpoint.update) or not config.save:
            why = f": stopped early by {stopped_by}" if stopped_by else ""
            raise CheckpointError(f"{run_path}: the run already finished ({checkpoint.update} updates{why})")
        return finish(config, checkpoint, Path(run_path))
    if reward is None and config.reward and not trust_run_config:
        specs = " ".join(config.reward)
        raise ConfigError(
            f"{run_path} names the reward {specs!r}: importing it runs its code; repeat it "
            + named(f"(--reward {specs}) or pass --trust-run-config", "(reward=...) or pass trust_run_config=True")
        )
    mesh = lm_mesh(config)
    check_run_memory(config, read_config(Path(config.model))[0], prompt_tokens=1)
    model = load(Path(config.model), config.dtype)
    driver = make_driver(config, model, make_task(config, model, prompts, reward), mesh)
    start = Start.from_checkpoint(checkpoint, driver.metric_names)
    state = driver.restore(driver.init(), checkpoint)
    return run(driver, Path(run_path) if config.save else None, start, state)


def finish(config: LMRunConfig, checkpoint, run_path: Path) -> LMTrainResult:
    """RUN/model and summary.json of a run that reached its final checkpoint, from that checkpoint."""
    model = load(Path(config.model), config.dtype)
    state = restore_state(checkpoint, initial_state(config, model))
    start = Start.from_checkpoint(checkpoint, LM_METRICS)
    lock = RunLock(run_path)
    outcome = Outcome(state, start.metrics, False, start.wall_time, checkpoint.meta.get("stopped_by"))
    try:
        return finished(config, model, outcome, run_path)
    finally:
        lock.release()


def completed(run_path: Path, updates: int) -> bool:
    """Whether RUN/summary.json says the run ended after all its updates (it is written after RUN/model)."""
    try:
        summary = json.loads((run_path / "summary.json").read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(summary, dict) and summary.get("updates") == updates and summary.get("interrupted") is False


def run(
    driver: LMDriver, run_path: Path | None, start: Start, state: Any = None, callbacks: Callbacks | None = None
) -> LMTrainResult:
    """The run loop with a run log; then RUN/model and summary.json. A reward that fails or a write that
    fails (a full disk) stops the run with the hint to resume it from the checkpoints it has."""
    state = driver.init() if state is None else state
    log = RunLog(driver.config, run_path, resume_from=start.update or None, names=driver.metric_names)
    try:
        try:
            outcome = run_loop(driver, state, log, run_path, start, callbacks)
        except BaseException:
            with contextlib.suppress(OSError):  # (the error on its way says more than a write error would)
                log.close()
            raise
        log.close()
        return finished(driver.config, driver.model, outcome, run_path)
    except UserCodeError as err:
        err.resume = resume_command(driver.config, run_path) if err.saved else None
        raise
    except (RunWriteError, RewardError) as err:
        if run_path is None or not list_checkpoints(run_path):
            raise
        hint = "once the problem is fixed" if isinstance(err, RunWriteError) else "with a reward that works"
        command = resume_command(driver.config, run_path)
        raise type(err)(f"{err}; the checkpoints written before are kept: {hint}, continue with: {command}") from None


def finished(config: LMRunConfig, model: LanguageModel, outcome: Outcome, run_path: Path | None) -> LMTrainResult:
    """The LMTrainResult of a run's outcome; RUN/model (--lora-rank: RUN/adapter) and then summary.json written."""
    policy = jax.device_get(outcome.state.params["policy"])
    trained = trained_model(config, model, policy)
    result = LMTrainResult(
        config, trained, outcome.metrics, outcome.wall_time, run_path, outcome.interrupted, outcome.stopped_by
    )
    done = f"after {outcome.metrics['episode_return'].shape[1]} of {config.updates} updates"
    if outcome.interrupted:
        print(f"ppox: stopped {done}; to continue: {resume_command(config, run_path)}", file=sys.stderr, flush=True)
    if outcome.stopped_by:
        where = "nothing was saved" if run_path is None else f"its checkpoint and model are in {run_path}"
        print(f"ppox: stopped early {done}: {outcome.stopped_by}; the run is finished ({where})", file=sys.stderr)
    if run_path is not None:
        save_policy(run_path, config, model, trained, policy)
        atomic_write_text(run_path / "summary.json", json.dumps(lm_summary(result), indent=2))
    return result


def lm_summary(result: LMTrainResult) -> dict:
    """summary.json of an LM run: the first and last tenth's mean score and KL, and the pace."""
    m, tail = result.metrics, max(1, result.metrics["episode_return"].shape[1] // 10)
    return {
        "model": result.config.model,
        "updates": int(m["episode_return"].shape[1]),
        "score_first": float(m["episode_return"][0, :tail].mean()),
        "score_last": float(m["episode_return"][0, -tail:].mean()),
        "kl_ref_last": float(m["kl_ref"][0, -tail:].mean()),
        "wall_time_s": round(result.wall_time, 3),
        "interrupted": result.interrupted,
        "stopped_by": result.stopped_by,
        "run_path": None if result.run_path is None else str(result.run_path),
    }
