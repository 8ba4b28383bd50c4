"""The language-model driver: PPO on completions of prompts (RLHF), run by ``ppox.run.loop`` like the others.

One update: draw ``prompts_per_update`` prompts, sample ``samples_per_prompt`` completions of each with the
policy (ending at an end-of-sequence token or ``max_new_tokens``), score them with the reward (a Python
function or a reward model), subtract ``missing_eos_penalty`` where a completion never ended, then
``ppox.language.ppo.prepare`` and ``ppo_epochs``; the adaptive KL coefficient moves after the update. An
"episode" in the loop's metrics is a completion: ``episode_return`` is the mean score, ``episode_length``
the mean response length in tokens.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh

from ppox.drivers.distributed import fsdp_shardings, rows_sharding
from ppox.errors import ConfigError, UserCodeError
from ppox.language.hf import LanguageModel
from ppox.language.lora import init_adapters
from ppox.language.ppo import init_value_head, make_optimizer, policy_params, ppo_epochs, prepare
from ppox.language.reward_model import RewardModel
from ppox.language.rewards import RewardError, Rewards, call_reward, checked_scores, weighted_total
from ppox.language.run_checks import lora_spec
from ppox.language.run_config import LMRunConfig, check_run_memory, kl_controller
from ppox.language.sampling import Sampling, make_sampler, trim_prompts
from ppox.storage.checkpoint import Checkpoint, restore_state
from ppox.storage.trackers import SAMPLES, UPDATE_CLOCKS, completion_samples

LM_METRICS = (
    "episode_return",
    "episode_length",
    "episode_count",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "kl_ref",
    "kl_coef",
    "non_score_reward",
    "eos_fraction",
    "tokens_per_second",
)


def with_columns(reward: Callable, task: TextTask, rows: np.ndarray) -> Callable:
    """``reward`` with the extra columns of the prompts ``rows`` (one value per completion) as keyword
    arguments, as TRL passes a data set's columns; as it is when there are none, and for ppox's reward models
    (which read the text only)."""
    if task.columns is None or isinstance(reward, RewardModel):
        return reward
    columns = task.columns(rows)
    return functools.partial(reward, **columns) if columns else reward


def reward_name(config: LMRunConfig, reward: Any, index: int = 0) -> str:
    """The reward as the user named it: its --reward 'module:function' (the ``index``-th), else the function's
    module and name."""
    if index < len(config.reward):
        return config.reward[index]
    return f"{getattr(reward, '__module__', None) or '?'}:{getattr(reward, '__qualname__', type(reward).__qualname__)}"


class TextTask(NamedTuple):
    """What the LM driver trains on: left-padded prompts, how completions are shown to the reward, and it.

    Each of ``reward``'s functions, ``f(prompts, completions) -> list[float]``, receives what ``show`` makes of
    the ids: strings when there is a tokenizer, else lists of token ids; the score is their weighted sum."""

    ids: np.ndarray  # [prompts, P] int32
    mask: np.ndarray  # [prompts, P] bool
    show: Callable[[np.ndarray, np.ndarray], list]  # (ids [B, T], mask) -> B texts (or id lists)
    reward: Rewards
    pad_id: int
    eos_ids: tuple[int, ...]
    columns: Callable[[np.ndarray], dict] | None = None  # prompt rows -> the extra columns the reward gets


def ids_task(ids_rows: list, pad_id: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token-id prompts, left-padded to the longest (at most ``length``, keeping the last tokens)."""
    width = min(max(len(r) for r in ids_rows), length)
    ids, mask = np.full((len(ids_rows), width), pad_id, np.int32), np.zeros((len(ids_rows), width), bool)
    for i, row in enumerate(ids_rows):
        row = list(row)[-width:]
        if not row:
            raise ConfigError(f"prompt {i} is empty: every prompt needs at least one token")
        ids[i, width - len(row) :], mask[i, width - len(row) :] = row, True
    return ids, mask


class LMState(struct.PyTreeNode):
    params: dict  # {"policy": ..., "critic": {"trunk", "head"} or None}
    opt_state: Any
    key: jax.Array
    kl_coef: jax.Array  # float32 scalar: beta, moved by the adaptive controller
    update: jax.Array  # int32: updates done


def initial_state(config: LMRunConfig, model: LanguageModel, critic: dict | None = None) -> LMState:
    """The state before the first update: the policy (a copy of the model), the critic (``critic``, or a
    copy with a new head) where the variant has one, Adam's state over both, the key and beta."""
    key, head_key = jax.random.split(jax.random.PRNGKey(config.seed))
    spec = lora_spec(config)  # (LoRA: the adapters are the policy's trained parameters; the base stays frozen)
    lora_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
    if spec is not None:
        policy = init_adapters(model.config, model.params, spec, lora_key)
    else:
        policy = jax.tree.map(jnp.array, model.params)
    value = init_value_head(model.config, policy, head_key) if config.uses_critic else None
    if value is not None and critic is not None:
        value = jax.tree.map(jnp.array, critic)
    params = {"policy": policy, "critic": value}
    return LMState(params, make_optimizer(config).init(params), key, jnp.float32(config.kl_coef), jnp.int32(0))


class LMSpec(NamedTuple):
    """What a checkpoint records of the 'environment': the model and the prompts."""

    model: str
    prompts: int

    def to_dict(self) -> dict:
        return {"kind": "lm", "model": self.model, "prompts": self.prompts}


class LMDriver:
    name = "lm"
    metric_names: tuple[str, ...] = LM_METRICS
    dispatch_ahead = False
    compiled_chunks = False
    eval_env = None

    def __init__(
        self,
        config: LMRunConfig,
        model: LanguageModel,
        task: TextTask,
        critic: dict | None = None,
        mesh: Mesh | None = None,
    ):
        """``critic``: the critic's starting parameters {"trunk", "head"} (default: a copy of the policy
        with a new head). ``mesh``: devices to split each batch across (None: one device)."""
        if not task.eos_ids:
            raise ConfigError(
                f"{config.model}: the model names no end-of-sequence token (eos_token_id in "
                "config.json or generation_config.json); completions could never end"
            )
        check_run_memory(config, model.config, task.ids.shape[1])
        self.config, self.model, self.task, self.critic, self.mesh = config, model, task, critic, mesh
        self.rows = None if mesh is None else rows_sharding(mesh)
        self.ref_params = self.place(model.params)
        self.spec = LMSpec(config.model, len(task.ids))
        sampling = Sampling(
            config.max_new_tokens, task.eos_ids, task.pad_id, config.temperature, config.top_k, config.top_p
        )
        self.sample = make_sampler(model.config, sampling)
        self.samples: list[dict] = []  # a few completions of each update of the chunk --samples-every picks
        self.last_samples: list[dict] = []  # those of the last update
        self.metric_names = LM_METRICS + task.reward.metric_names  # (rewards/<name> of several rewards)
        self.components: dict[str, float] = {}  # the last update's mean score of each reward, by metric name

    def init(self) -> LMState:
        return self.place(initial_state(self.config, self.model, self.critic))

    def place(self, tree):
        """``tree`` on the mesh: every matrix split along its largest axis, the rest replicated (FSDP-style;
        ``distributed.fsdp_shardings``); unchanged on one device."""
        return tree if self.mesh is None else jax.device_put(tree, fsdp_shardings(tree, self.mesh))

    def split(self, batch):
        """Arrays of one row per completion, split by rows across the mesh (as they are on one device)."""
        return jnp.asarray(batch) if self.mesh is None else jax.device_put(batch, self.rows)

    def run(self, state: LMState, n: int):
        rows: list[dict] = []
        self.samples = []
        for _ in range(n):
            try:
                state, row = self.one_update(state)
            except (UserCodeError, RewardError) as err:  # the reward failed: the loop checkpoints the updates before
                err.completed = (state, self.pending(rows), len(rows))
                raise
            rows.append(row)
        return state, self.pending(rows)

    def pending(self, rows: list[dict]) -> dict:
        """The metrics of the updates in ``rows`` [1, n], when each ended (UPDATE_CLOCKS), and the sample
        completions of those of them that --samples-every picks, for the run folder and trackers (SAMPLES)."""
        metrics: dict = {k: np.array([[row[k] for row in rows]], np.float64) for k in self.metric_names}
        clocks = np.array([row["clock"] for row in rows], np.float64)
        return {**metrics, SAMPLES: self.samples, UPDATE_CLOCKS: clocks}

    def fetch(self, pending, n: int) -> dict[str, np.ndarray]:
        return pending

    def prompt_rows(self, update: int) -> np.ndarray:
        """The prompts of update ``update``, each repeated k times in a row: a fresh shuffle of all prompts
        per pass over them, seeded by (seed, pass), so a resumed run draws what the whole run would."""
        n, per = len(self.task.ids), self.config.prompts_per_update
        start = update * per
        passes = range(start // n, (start + per - 1) // n + 1)
        order = np.concatenate([np.random.default_rng([self.config.seed, p]).permutation(n) for p in passes])
        picked = order[start - passes[0] * n :][:per]
        return np.repeat(picked, self.config.samples_per_prompt)

    def scores(self, rows: np.ndarray, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The reward of each completion, checked: one finite number per completion, within --reward-timeout."""
        task, parts = self.task, []
        prompts, completions = task.show(task.ids[rows], task.mask[rows]), task.show(tokens, mask)
        for i, (part, function) in enumerate(zip(task.reward.names, task.reward.functions)):
            name = None if isinstance(function, RewardModel) else f"the reward {reward_name(self.config, function, i)}"
            fn = with_columns(function, task, rows)
            got = call_reward(fn, prompts, completions, self.config.reward_timeout, name)
            who = "the reward" if len(task.reward.names) == 1 else f"the reward {part}"
            parts.append(checked_scores(got, len(rows), who))
        self.components = {m: float(p.mean()) for m, p in zip(task.reward.metric_names, parts)}
        got = weighted_total(parts, task.reward.weights)
        k = self.config.samples_per_prompt
        self.last_samples = completion_samples(prompts, completions, got, k)
        if len(parts) > 1:  # each reward's score of the sample too
            for i, sample in enumerate(self.last_samples):
                sample["rewards"] = {name: float(p[i * k]) for name, p in zip(task.reward.names, parts)}
        return got

    def one_update(self, state: LMState) -> tuple[LMState, dict]:
        config, tick = self.config, time.perf_counter()
        key, sample_key, epoch_key = jax.random.split(state.key, 3)
        rows = self.prompt_rows(int(state.update))
        ids, ids_mask = trim_prompts(self.task.ids[rows], self.task.mask[rows], config.prompt_bucket)  # (few widths)
        prompt, prompt_mask = self.split(ids), self.split(ids_mask)
        out = self.sample(self.policy_params(state), prompt, prompt_mask, sample_key)
        tokens, mask = np.asarray(out.tokens), np.asarray(out.mask)
        ended = (np.isin(tokens, self.task.eos_ids) & mask).any(-1)
        scores = self.scores(rows, tokens, mask) - config.missing_eos_penalty * ~ended
        batch, stats = prepare(
            config,
            self.model.config,
            state.params,
            self.ref_params,
            prompt,
            prompt_mask,
            self.split(out.tokens),
            self.split(out.mask),
            self.split(scores.astype(np.float32)),
            state.kl_coef,
            self.split(ended),
        )
        params, opt_state, losses = ppo_epochs(
            config,
            self.model.config,
            state.params,
            state.opt_state,
            batch,
            epoch_key,
            rows=self.rows,
            kl_coef=state.kl_coef,
            base=self.ref_params if config.lora_rank else None,
        )
        kl_ref = float(stats["kl_ref"])
        row = {
            "episode_return": float(scores.mean()),
            "episode_length": float(mask.sum(-1).mean()),
            "episode_count": float(len(rows)),
            **{k: float(v) for k, v in losses.items()},
            "kl_ref": kl_ref,
            "kl_coef": float(state.kl_coef),
            "non_score_reward": float(stats["non_score_reward"]),
            "eos_fraction": float(ended.mean()),
            "tokens_per_second": float(mask.sum() / (time.perf_counter() - tick)),
            **self.components,
        }
        every = config.samples_every
        if every and (int(state.update) + 1) % every == 0:
            self.samples = self.samples + [{"update": int(state.update), **x} for x in self.last_samples]
        row["clock"] = time.perf_counter()
        kl_coef = jnp.float32(kl_controller(float(state.kl_coef), kl_ref, config))
        return self.place(LMState(params, opt_state, key, kl_coef, state.update + 1)), row

    def policy_params(self, state: LMState) -> dict:
        """The policy's parameters (with --lora-rank: the frozen base, held once, with the adapters over it)."""
        return policy_params(self.config, state.params, self.ref_params)

    def checkpoint_state(self, state: LMState) -> tuple[Any, dict]:
        return state, {}

    def restore(self, state: LMState, checkpoint: Checkpoint) -> LMState:
        return self.place(restore_state(checkpoint, state))

    def policies(self, state: LMState) -> tuple[Any, Any]:
        """(the policy's parameters with a leading seed axis of 1, None: no observation statistics)."""
        return jax.device_get(jax.tree.map(lambda x: x[None], state.params["policy"])), None

    def close(self) -> None:
        pass
