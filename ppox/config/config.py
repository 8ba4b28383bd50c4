"""The one configuration of a ppox run: a frozen dataclass, validated when it is built. Every field has a docstring
(the CLI's help, through tyro); ``Config.preset`` starts from an env's tuned values; invalid values raise
``ConfigError`` with a message that says what to change."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Literal

from ppox.config.compile_keys import program_config, static_config, traced, traced_fields
from ppox.config.json_io import config_from_file, fields_from_json
from ppox.config.presets import NETWORK_PRESETS, PRESETS
from ppox.config.validation import validate
from ppox.core.advantages import AdvantageName
from ppox.errors import ConfigError

__all__ = ["Config", "ConfigError", "DEFAULT_ENV", "PRESETS", "TRACED_FIELDS", "program_config", "static_config"]

DEFAULT_ENV = "CartPole-v1"


@dataclasses.dataclass(frozen=True)
class Config:
    """Proximal Policy Optimization, as configured for one run (one or several seeds).

    Args:
        **fields: every field below, each documented where it is declared (``ppox train --help`` shows the
            same text); those declared with ``traced`` reach the fused program as a traced argument.

    Raises:
        ConfigError: a field's value has the wrong type or range, or fields cannot work together.
    """

    env: str = DEFAULT_ENV
    """Environment: a JAX-native gymnax id (CartPole-v1, Acrobot-v1, Pendulum-v1, Breakout-MinAtar, ...:
    fused driver), or any Gymnasium id or 'package.module:Class' entry point (host driver). See `ppox envs`."""

    total_timesteps: int = 500_000
    """Environment steps to train for, over all parallel envs (per seed)."""

    num_envs: int = 4
    """Parallel environments stepped together."""

    max_episode_steps: int | None = None
    """End episodes after this many steps (truncated: bootstrapped from V of the last observation). None: the env's."""

    bootstrap_truncated: bool = True
    """Bootstrap time-limited episodes from V of the final observation (SB3); --no-...: terminal (CleanRL, JaxMARL)."""

    num_steps: int = 128
    """Steps per environment per rollout; one update consumes num_envs * num_steps transitions."""

    update_epochs: int = 4
    """Passes over each collected batch (the surrogate's importance-sampled reuse)."""

    num_minibatches: int = 4
    """Minibatches per epoch; num_envs * num_steps must divide by it."""

    learning_rate: float = traced(2.5e-4)
    """Adam step size (the start value when annealed)."""

    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run."""

    adam_eps: float = 1e-5
    """Adam's epsilon (1e-5, as in the PPO reference implementations, not optax's 1e-8)."""

    gamma: float = traced(0.99)
    """Discount factor."""

    gae_lambda: float = traced(0.95)
    """GAE's bias-variance dial: 0 is the TD residual, 1 the Monte Carlo advantage."""

    advantage: AdvantageName = "gae"
    """Advantage estimator (ppox.core.advantages.ADVANTAGE_ESTIMATORS): gae (GAE with --gae-lambda), td (one-step
    TD residual), nstep (--nstep-n steps, then V), mc (Monte Carlo return G_t - V(s_t)); value target A + V(s_t)."""

    nstep_n: int = 5
    """n of --advantage nstep."""

    baseline: bool = True
    """Subtract a learned value baseline. --no-baseline is REINFORCE on the raw discounted return G_t (needs
    --advantage mc): the critic is not used and gets no gradient."""

    clip_coef: float | None = traced(0.2)
    """Surrogate clip range eps: the ratio is clipped to [1-eps, 1+eps]. None: no clip (plain r*A)."""

    vf_clip_coef: float | None = traced(0.2)
    """Value clip range: the new value stays within +-this of the old one in the loss. None: no value clipping."""

    ent_coef: float = traced(0.01)
    """Entropy bonus coefficient c2."""

    vf_coef: float = traced(0.5)
    """Value loss coefficient c1."""

    max_grad_norm: float | None = traced(0.5)
    """Clip the global gradient norm to this. None: no gradient clipping."""

    grad_clip: Literal["joint", "per_network"] = "joint"
    """What --max-grad-norm bounds. joint: the whole gradient's norm. per_network: actor's, critic's apart (JaxMARL)."""

    target_kl: float | None = traced(None, fixed=0.01)
    """Stop an update's remaining minibatches once a minibatch's approx KL exceeds this. None: never."""

    norm_adv: bool = True
    """Normalise advantages to zero mean and unit std within each minibatch."""

    norm_obs: bool = False
    """Normalise observations by their running mean and std, clipped to +-10."""

    norm_reward: bool = False
    """Scale rewards by the running std of the discounted return, clipped to +-10."""

    reward_scale: float = 1.0
    """Multiply the rewards learned from by this (Brax's reward_scaling; before --norm-reward; logged returns raw)."""

    action_repeat: int = 1
    """Fused driver: hold each action for this many env steps, rewards summed (Brax's; time limits count env steps)."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic."""

    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden-layer activation."""

    network: Literal["auto", "mlp", "cnn"] = "auto"
    """Torso: cnn (convolutions, then the hidden layers) for HxWxC image observations, mlp (flattened
    observations) otherwise; auto picks cnn exactly when the observations are images."""

    memory: Literal["none", "gru", "lstm"] = "none"
    """A recurrent cell after the torso for partially observed tasks (one each for actor and critic, one shared with
    --shared-trunk); reset where an episode starts; updates re-run whole per-env sequences (--num-envs divides by
    --num-minibatches)."""

    memory_size: int = 128
    """Units of the recurrent cell (--memory)."""

    post_memory_sizes: tuple[int, ...] = ()
    """Hidden layers after the recurrent cell, one MLP per head (JaxMARL's recurrent networks: 128). (): none."""

    hide_obs: tuple[int, ...] = ()
    """Hide these entries of the (flattened) observation from the agent, on either driver: any env becomes
    partially observed (CartPole-v1 --hide-obs 1 3 hides both velocities: the RL Zoo's CartPoleNoVel-v1)."""

    action_mask: Literal["auto", "off"] = "auto"
    """auto: where the env offers legal-action masks (action_masks(), info["action_mask"] or a Dict observation's
    "action_mask"), masked actions get probability 0 in acting, the update, evaluation and the policy. off: ignore."""

    shared_trunk: bool = False
    """Share the hidden layers between actor and critic (default: two separate networks)."""

    critic: Literal["local", "world_state"] = "local"
    """Multi-agent envs (docs/multi-agent.md): the critic's input. local: the agent's own observation (IPPO);
    world_state: the env's world state (MAPPO's centralised critic; the actor keeps its own observation)."""

    agent_id: bool = False
    """Multi-agent envs: a one-hot agent index after each agent's observation (the shared network tells them apart)."""

    opponent: Literal["random", "self", "latest", "uniform", "prioritised"] = "random"
    """Two-player pgx games (docs/self-play.md). random: a uniformly random legal opponent. self: the current policy.
    latest, uniform, prioritised: a pool of past selves (--pool-size, one more every --pool-every updates) supplies
    --pool-share of the games, the newest, any alike, or those the agent scores least against; the rest: self."""

    pool_size: int = 8
    """Self-play: past selves kept in the pool (the oldest replaced)."""

    pool_every: int = 10
    """Self-play: updates between snapshots of the policy added to the pool."""

    pool_share: float = 0.5
    """Self-play: the share of games played against the pool (the rest against the current policy)."""

    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""

    weight_init: Literal["orthogonal", "lecun"] = "orthogonal"
    """orthogonal: PPO's customary init (CleanRL, SB3, PureJaxRL): gain sqrt 2, policy head 0.01, value head 1,
    biases 0. lecun: flax's LeCun normal on every layer, biases in [0, 0.05) (gymnax-blines). Cells stay orthogonal."""

    seed: int = 0
    """Random seed of the first run; seed i of --seeds N uses seed + i."""

    seeds: int = 1
    """Independent seeds trained together in one compiled, vmapped run."""

    prng_impl: Literal["threefry2x32", "rbg", "unsafe_rbg"] = "threefry2x32"
    """Fused driver: JAX's random-number generator. threefry2x32: JAX's default, the same streams everywhere. rbg,
    unsafe_rbg: XLA's RngBitGenerator, fewer operations per draw; bit-identical per seed on one machine and JAX
    version only, and unsafe_rbg splits keys with weaker statistical guarantees (docs/results.md)."""

    driver: Literal["auto", "fused", "host"] = "auto"
    """fused: the whole run in one jitted function (JAX-native envs). host: a Python loop over a Gymnasium
    vector env (any env). auto: fused where the env is JAX-native, else host."""

    devices: int = 1
    """Fused driver: split the envs across this many local devices (data parallel, one set of parameters;
    --num-envs must divide by it). On a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N."""

    distributed: bool = False
    """Fused driver over several processes: jax.distributed.initialize() first (Slurm's job, or JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID); --devices counts every process's devices; process 0 writes the run."""

    ray: str | None = None
    """Host driver on Ray (pip install "ppox[ray]"): 'local' starts Ray here, 'auto' or an address joins a
    cluster (ray start --head). Rollouts run in --workers actors, the learner in this process."""

    workers: int = 1
    """Ray rollout workers; each owns --num-envs / --workers envs and a copy of the policy."""

    vec: Literal["sync", "async", "ale", "envpool"] = "sync"
    """Host driver: envs stepped in this process (sync) or a subprocess each (async); Atari also ale (ale-py's threaded
    AtariVectorEnv) or envpool ("ppox[envpool]"; with --driver fused, inside the compiled program, one seed a run)."""

    run_dir: str = "runs"
    """Folder under which each run's folder is made."""

    run_name: str | None = None
    """Name of this run's folder (default: ENV__SEED__TIMESTAMP)."""

    save: bool = True
    """Write the run folder (config, metrics, TensorBoard events, parameters)."""

    tensorboard: bool = True
    """Write TensorBoard event files into the run folder."""

    track: tuple[Literal["wandb", "mlflow"], ...] = ()
    """Trackers besides TensorBoard (ppox.storage.trackers.TRACKERS): wandb ("ppox[wandb]") and mlflow
    ("ppox[mlflow]"; a local file store ./mlruns unless MLFLOW_TRACKING_URI names another)."""

    stop_at_return: float | None = None
    """Stop the run (saving a checkpoint and the policy; it counts as finished) once the mean return reaches this:
    the evaluation return at a checkpoint with --eval-episodes, else an update's mean episodic return over seeds
    (SB3's StopTrainingOnRewardThreshold). None: run to --total-timesteps."""

    init_from: str | None = None
    """Fine-tune: start from this finished run's parameters and observation statistics, with a fresh optimiser, on the
    same env or another with the same spaces. None: a fresh initialisation."""

    checkpoint_every: int = 100_000
    """Env steps (per seed) between training checkpoints in RUN/checkpoints (0: only at the end and on
    an interrupt); rounded up to whole updates (fused driver: whole chunks of about 1/20 of the run)."""

    keep_checkpoints: int = 3
    """How many of the newest training checkpoints to keep."""

    eval_episodes: int = 0
    """Evaluation episodes (stochastic policy, fresh env) at every checkpoint; 0: none. Their mean return is
    logged to RUN/evaluations.csv, and the checkpoint with the best one is also kept as checkpoints/best.safetensors."""

    progress: bool = True
    """Show a progress bar while training."""

    def __post_init__(self):
        for name in ("run_dir", "init_from"):  # (a folder may be given as a Path: kept as the str JSON holds)
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        validate(self)

    # Derived sizes -------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    @property
    def updates_per_checkpoint(self) -> int:
        """Updates between checkpoints: --checkpoint-every rounded up to whole updates (0: none but the last)."""
        return math.ceil(self.checkpoint_every / self.batch_size) if self.checkpoint_every else 0

    # Construction ----------------------------------------------------------------------
    @classmethod
    def preset(cls, env: str = "CartPole-v1", **overrides) -> Config:
        """The tuned configuration for ``env`` (its --network variant where one exists), with ``overrides`` on top.

        Args:
            env: an environment id; one without a preset starts from the defaults.
            **overrides: field values that replace the preset's.

        Returns:
            The validated Config.
        """
        variant = NETWORK_PRESETS.get((env, overrides.get("network")), {})
        return cls(**{**PRESETS.get(env, {}), **variant, "env": env, **overrides})

    def replace(self, **changes) -> Config:
        """A copy with ``changes`` (field name -> value), validated again."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """Every field as a JSON object (what ``from_dict`` and ``load`` read back)."""
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        """The validated Config of JSON-like ``data`` (a config.json, a file's metadata): field name -> value, lists
        for tuples, missing fields their defaults. Raises ConfigError where ``data`` is not a dict, names an unknown
        field or holds an invalid value."""
        return cls(**fields_from_json(cls, data))

    @classmethod
    def load(cls, path) -> Config:
        """The validated Config of a JSON file at ``path`` (a run folder's config.json, a sweep's best_config.json,
        or one written by hand with only some fields: the rest take their defaults), or of a run folder. Raises
        ConfigError where the file cannot be read, is not JSON, or holds an invalid config."""
        return config_from_file(cls, path)


TRACED_FIELDS = traced_fields(Config)
"""The fields declared with ``traced``: the numbers a ``Hyper`` carries into the fused program."""
