"""The settings of one PPO run on a language model (RLHF): one frozen dataclass, validated when made. It also
answers what the run loop asks of a config (``num_updates``, ``batch_size``, ``seeds``, ...), so that
``ppox.run.loop`` drives the LM driver as it drives the others: an update is one batch of completions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Literal

from ppox.errors import ConfigError, closest
from ppox.language.advantages import KL_ESTIMATORS, LM_ADVANTAGES, KLEstimatorName, LMAdvantage, LMAdvantageName
from ppox.language.config import LMConfig, check_memory, parameter_count, shown
from ppox.language.losses import KL_PLACES, LM_LOSSES, REWARD_SCALES, LMLoss, LMLossName
from ppox.language.run_checks import OptimizerDType, training_problems

DType = Literal["float32", "bfloat16"]
TrackerName = Literal["wandb", "mlflow"]  # as Config.track: ppox.storage.trackers.TRACKERS
KLPlace = Literal["reward", "loss"]  # KL_PLACES
RewardScale = Literal["group", "batch", "none"]  # REWARD_SCALES


@dataclasses.dataclass(frozen=True)
class LMRunConfig:
    """PPO on a language model. An update samples ``samples_per_prompt`` completions for each of
    ``prompts_per_update`` prompts, scores them, and takes ``epochs`` x ``minibatches`` gradient steps."""

    model: str  # Hugging Face folder of the policy (also the reference and the critic's trunk)
    prompts: str = ""  # JSONL, Parquet or datasets folder of {"prompt"} or {"messages"} rows (ppox.lm.data)
    eval_prompts: str = ""  # held-out prompts (same formats), scored greedily every --eval-every updates
    eval_every: int = 0  # updates between scorings of --eval-prompts (eval/reward; 0: none)
    reward: tuple[str, ...] = ()  # 'module:function' each, reward(prompts, completions) -> list[float]
    reward_model: str | None = None  # folder saved by `ppox lm reward-model` (a reward beside the functions)
    reward_weights: tuple[float, ...] = ()  # one per reward (each --reward, then the model): score = weighted sum
    reward_timeout: float | None = None  # seconds a reward call may take; past it the run stops (None: no limit)
    critic_from_reward_model: bool = False  # start the critic as the reward model (trunk and head)
    advantage: LMAdvantageName = "gae"  # gae (critic), rloo or grpo (k samples per prompt, no critic): LM_ADVANTAGES
    updates: int = 100
    prompts_per_update: int = 16
    samples_per_prompt: int = 1  # k; at least the --advantage's min_samples (2 for rloo and grpo)
    max_prompt_tokens: int = 64
    prompt_bucket: int = 64  # an update's prompts are cut to a power of two >= this (one program each); 0: never
    max_new_tokens: int = 32
    temperature: float = 0.7  # sampling, and every log-probability of the policy and the reference
    top_k: int = 0
    top_p: float = 1.0
    learning_rate: float = 1e-5
    adam_eps: float = 1e-5
    max_grad_norm: float | None = 1.0
    epochs: int = 4
    minibatches: int = 1
    grad_accum_steps: int = 1  # minibatches whose mean gradient makes one Adam step (accumulation); divides them
    clip_coef: float = 0.2  # eps_low: the ratio is clipped to [1 - clip_coef, 1 + clip_coef_high]
    clip_coef_high: float | None = None  # eps_high (clip-higher, DAPO: 0.28); None: clip_coef
    loss: LMLossName = "token"  # token (DAPO), sequence (GRPO), dr_grpo, gspo: ppox.language.losses.LM_LOSSES
    kl_in: KLPlace = "reward"  # the KL to the reference: -beta k1_t in the reward, or +beta k3_t in the loss (TRL)
    scale_rewards: RewardScale = "group"  # --advantage grpo divides by the group's std, the batch's, or none
    mask_truncated: bool = False  # completions that hit --max-new-tokens without an end token get no policy loss
    vf_clip_coef: float | None = 0.2
    vf_coef: float = 0.1
    ent_coef: float = 0.0
    gamma: float = 1.0
    gae_lambda: float = 0.95
    kl_coef: float = 0.05  # beta of the per-token KL penalty (the start value when adaptive)
    kl_target: float | None = None  # adaptive beta (Ziegler et al. 2019) towards this KL per completion
    kl_horizon: int = 10_000  # the controller's horizon, in completions
    kl_estimator: KLEstimatorName = "k1"  # per-token KL: k1 (log ratio) or k3 (never negative): KL_ESTIMATORS
    missing_eos_penalty: float = 0.0  # subtracted from the score of a completion that never ended
    whiten_advantages: bool = True
    whiten_rewards: bool = False  # scale the per-token rewards to unit variance over the batch (mean kept)
    dtype: DType = "float32"  # of the parameters and activations
    optimizer_dtype: OptimizerDType = "float32"  # with bfloat16: a float32 master copy and Adam moments (mixed
    # precision, ppox.language.precision), or "params": all in the parameters' dtype (less memory)
    lora_rank: int = 0  # r > 0: train LoRA adapters only (ppox.language.lora); the reference: the base, adapters off
    lora_alpha: float = 8.0  # the adapters' scale is alpha / r (PEFT's default alpha: 8)
    lora_dropout: float = 0.0  # dropout on each adapter's input, in the loss's forward passes only
    lora_targets: str = ""  # comma-separated layers, as PEFT names them; "": c_attn (GPT-2), q_proj,v_proj (Llama...)
    devices: int = 1  # split each batch of completions across this many local devices (parameters FSDP-sharded)
    seed: int = 0
    run_dir: str = "runs"
    run_name: str | None = None
    save: bool = True
    tensorboard: bool = True
    track: tuple[TrackerName, ...] = ()  # experiment trackers besides TensorBoard (TRACKERS)
    progress: bool = False
    samples_every: int = 1  # updates between sample completions in RUN/samples.jsonl, TensorBoard, trackers (0: none)
    checkpoint_every: int = 50  # updates; 0: only at the end
    keep_checkpoints: int = 3

    def __post_init__(self):
        if isinstance(self.reward, str) or self.reward is None:  # (one 'module:function', as before several)
            object.__setattr__(self, "reward", () if self.reward is None else (self.reward,))
        object.__setattr__(self, "reward", tuple(self.reward))
        object.__setattr__(self, "reward_weights", tuple(self.reward_weights))
        for bad, message in [*self._value_problems(), *self._problems()]:
            if bad:
                raise ConfigError(f"lm: {message}")

    def _value_problems(self):
        """The seed, the float settings and the reward's timeout (checked first)."""
        return [
            (not 0 <= self.seed < 2**31, f"--seed {shown(self.seed)}: a whole number in [0, 2^31)"),
            (
                not isinstance(self.track, tuple) or not set(self.track) <= set(typing.get_args(TrackerName)),
                f"--track {self.track!r}: a tuple, each one of {', '.join(typing.get_args(TrackerName))}",
            ),
            (
                self.reward_timeout is not None and not 0 < self.reward_timeout < math.inf,
                f"--reward-timeout {self.reward_timeout}: a finite number of seconds > 0",
            ),
            (
                not all(math.isfinite(x) for x in self.numbers()),
                f"{', '.join(self.numbers(names=True))}: must be finite (no nan or inf)",
            ),
        ]

    def _problems(self):
        k, batch = self.samples_per_prompt, self.prompts_per_update * self.samples_per_prompt
        n, m = max(self.devices, 1), max(self.minibatches, 1)  # (nonzero: the list below is built whole)
        hint = closest(self.advantage, LM_ADVANTAGES)
        variant = LM_ADVANTAGES.get(self.advantage, LM_ADVANTAGES["gae"])  # (an unknown one is the first problem)
        return [
            (
                self.advantage not in LM_ADVANTAGES,
                f"--advantage {self.advantage}: one of {', '.join(LM_ADVANTAGES)}"
                + (f" (did you mean {hint[0]}?)" if hint else ""),
            ),
            *self._reward_problems(),
            (
                self.critic_from_reward_model and (self.reward_model is None or not variant.uses_critic),
                "--critic-from-reward-model needs --reward-model and an --advantage with a critic (gae)",
            ),
            (
                k < variant.min_samples,
                f"--advantage {self.advantage} compares the k completions of a "
                f"prompt: set --samples-per-prompt {variant.min_samples} or more",
            ),
            (
                min(self.updates, self.prompts_per_update, k, self.epochs, self.minibatches) < 1,
                "updates, prompts_per_update, samples_per_prompt, epochs and minibatches must be >= 1",
            ),
            (
                batch % self.minibatches,
                f"{batch} completions per update do not split into {self.minibatches} minibatches",
            ),
            (self.devices < 1, f"--devices {self.devices}: must be >= 1"),
            *training_problems(self),
            (
                self.prompts_per_update % n,
                f"--prompts-per-update {self.prompts_per_update} must divide by --devices {self.devices}",
            ),
            (
                batch % m == 0 and batch // m % n,
                f"a minibatch of {batch // m} completions does not split across "
                f"--devices {self.devices}: change --minibatches",
            ),
            (self.max_new_tokens < 1 or self.max_prompt_tokens < 1, "max_new_tokens and max_prompt_tokens >= 1"),
            (not self.temperature > 0, f"temperature {self.temperature}: must be > 0"),
            (not self.learning_rate > 0, f"learning_rate {self.learning_rate}: must be > 0"),
            (not 0 < self.clip_coef < 1, f"clip_coef {self.clip_coef}: in (0, 1)"),
            *self._loss_problems(),
            (not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1), "gamma and gae_lambda lie in [0, 1]"),
            (self.kl_coef < 0, f"kl_coef {self.kl_coef}: must be >= 0"),
            (self.kl_target is not None and not self.kl_target > 0, f"kl_target {self.kl_target}: must be > 0"),
            (self.kl_horizon < 1, f"kl_horizon {self.kl_horizon}: must be >= 1"),
            (
                self.kl_estimator not in KL_ESTIMATORS,
                f"kl_estimator {self.kl_estimator}: one of {', '.join(KL_ESTIMATORS)}",
            ),
            (self.dtype not in typing.get_args(DType), f"dtype {self.dtype}: {' or '.join(typing.get_args(DType))}"),
            (self.checkpoint_every < 0 or self.keep_checkpoints < 1, "checkpoint_every >= 0, keep_checkpoints >= 1"),
            (self.samples_every < 0, f"--samples-every {self.samples_every}: >= 0 (0: no sample completions)"),
        ]

    def _reward_problems(self):
        """The --reward specs and the --reward-weights (counted where every reward is in the config)."""
        count = len(self.reward) + (self.reward_model is not None)
        weights = self.reward_weights
        return [
            *[(":" not in spec, f"--reward {spec}: write it module:function") for spec in self.reward],
            (
                not all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights),
                f"--reward-weights {' '.join(map(str, weights))}: finite numbers",
            ),
            (
                bool(weights) and bool(self.reward) and len(weights) != count,
                f"--reward-weights: {len(weights)} weights for {count} rewards; give one per reward, in order "
                "(each --reward, then --reward-model)",
            ),
        ]

    def _loss_problems(self):
        """The --loss variant, clip-higher, --kl-in and --scale-rewards."""
        hint = closest(self.loss, LM_LOSSES)
        variant, gae = LM_LOSSES.get(self.loss), LM_ADVANTAGES["gae"]
        return [
            (
                variant is None,
                f"--loss {self.loss}: one of {', '.join(LM_LOSSES)}" + (f" (did you mean {hint[0]}?)" if hint else ""),
            ),
            (
                variant is not None and variant.sequence_level and LM_ADVANTAGES.get(self.advantage, gae).uses_critic,
                f"--loss {self.loss} gives each completion one ratio and one advantage: use --advantage grpo or rloo "
                f"(not {self.advantage}, whose advantages differ from token to token)",
            ),
            (
                self.clip_coef_high is not None and not self.clip_coef_high > 0,
                f"--clip-coef-high {self.clip_coef_high}: must be > 0 (or left out: --clip-coef)",
            ),
            (self.kl_in not in KL_PLACES, f"--kl-in {self.kl_in}: one of {', '.join(KL_PLACES)}"),
            (
                self.scale_rewards not in REWARD_SCALES,
                f"--scale-rewards {self.scale_rewards}: one of {', '.join(REWARD_SCALES)}",
            ),
            (
                self.scale_rewards != "group" and self.advantage != "grpo",
                f"--scale-rewards {self.scale_rewards} sets grpo's divisor: it needs --advantage grpo",
            ),
        ]

    def numbers(self, names: bool = False) -> list:
        """The float settings that are given (their values, or the flags of those that are not finite)."""
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if "float" in str(f.type) and "tuple" not in str(f.type)
        }
        given = {k: v for k, v in values.items() if v is not None}
        bad = ["--" + k.replace("_", "-") for k, v in given.items() if not math.isfinite(v)]
        return bad if names else list(given.values())

    # what the run loop, the run folder and the run log read of a config
    env = property(lambda self: "lm-" + (self.model.rstrip("/").split("/")[-1] or "model"))
    seeds = property(lambda self: 1)
    num_updates = property(lambda self: self.updates)
    batch_size = property(lambda self: self.prompts_per_update * self.samples_per_prompt)  # completions
    total_timesteps = property(lambda self: self.updates * self.batch_size)
    updates_per_checkpoint = property(lambda self: self.checkpoint_every)
    distributed = property(lambda self: False)
    eval_episodes = property(lambda self: 0)
    uses_critic = property(lambda self: self.variant.uses_critic)

    @property
    def variant(self) -> LMAdvantage:
        """The --advantage variant, from ``LM_ADVANTAGES``."""
        return LM_ADVANTAGES[self.advantage]

    @property
    def loss_variant(self) -> LMLoss:
        """The --loss variant, from ``LM_LOSSES``."""
        return LM_LOSSES[self.loss]

    @property
    def clip_high(self) -> float:
        """eps_high: --clip-coef-high, else --clip-coef."""
        return self.clip_coef if self.clip_coef_high is None else self.clip_coef_high

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.minibatches

    def replace(self, **changes) -> LMRunConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps({"kind": "lm", **dataclasses.asdict(self)}, indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> LMRunConfig:
        """The config a run folder or checkpoint recorded; ConfigError naming an unknown or missing field."""
        if not isinstance(data, dict):
            raise ConfigError("an LM run config must be a JSON object")
        fields = {f.name for f in dataclasses.fields(cls)}
        data = {
            k: tuple(v) if k in ("track", "reward", "reward_weights") and isinstance(v, list) else v
            for k, v in data.items()
            if k != "kind"
        }
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"unknown LM run settings {unknown}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ConfigError(f"LM run config: {err}") from None


def is_lm_config(data) -> bool:
    """Whether a recorded config dict is an LM run's."""
    return isinstance(data, dict) and data.get("kind") == "lm"


def kl_controller(kl_coef: float, kl: float, config: LMRunConfig) -> float:
    """Ziegler et al.'s adaptive coefficient: e = clip(KL / KL_target - 1, -0.2, 0.2),
    beta <- beta (1 + e n / horizon), n the completions of the update; fixed when there is no target."""
    if config.kl_target is None or not math.isfinite(kl):
        return kl_coef
    error = min(max(kl / config.kl_target - 1.0, -0.2), 0.2)
    return kl_coef * (1.0 + error * config.batch_size / config.kl_horizon)


def check_run_memory(config: LMRunConfig, model: LMConfig, prompt_tokens: int) -> None:
    """ConfigError (one line) when an update cannot fit the machine: at least the weights (policy, reference,
    gradients and Adam's two moments; as many again for a critic) and the larger of the sampler's key/value
    cache and the logits of a full pass over the batch (float32), split across ``devices``."""
    width = 2 if config.dtype == "bfloat16" else 4
    count = parameter_count(model)
    adam = 12 if config.dtype == "bfloat16" and config.optimizer_dtype == "float32" else 2 * width  # (+ master)
    weights = count * ((width if config.lora_rank else 3 * width + adam) + (2 * width + adam) * config.uses_critic)
    rows, tokens = config.batch_size, prompt_tokens + config.max_new_tokens
    cache = 2 * model.num_layers * rows * tokens * model.num_kv_heads * model.head_dim * width
    logits = rows * tokens * model.vocab_size * 4
    check_memory(
        weights + max(cache, logits) / config.devices,
        f"{rows:,} completions of up to {tokens:,} tokens per update, on {count:,} parameters,",
        "lower --prompts-per-update, --samples-per-prompt, --max-new-tokens or --max-prompt-tokens",
    )
