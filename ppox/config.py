"""The one configuration of a ppox run: a frozen dataclass, validated when it is built.

Every field has a docstring (it becomes the CLI's help through tyro); ``Config.preset``
starts from the tuned values for an environment. Invalid values raise ``ConfigError``
with a message that says what to change.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Literal

from ppox.envs.registry import check_env_id, driver_for, is_jax_env
from ppox.errors import ConfigError
from ppox.presets import PRESETS

__all__ = ["Config", "ConfigError", "PRESETS", "program_config"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Proximal Policy Optimization, as configured for one run (one or several seeds)."""

    env: str = "CartPole-v1"
    """Environment: a JAX-native gymnax id (CartPole-v1, Acrobot-v1, Pendulum-v1, Breakout-MinAtar, ...:
    fused driver), or any Gymnasium id or 'package.module:Class' entry point (host driver). See `ppox envs`."""

    total_timesteps: int = 500_000
    """Environment steps to train for, over all parallel envs (per seed)."""

    num_envs: int = 4
    """Parallel environments stepped together."""

    num_steps: int = 128
    """Steps per environment per rollout; one update consumes num_envs * num_steps transitions."""

    update_epochs: int = 4
    """Passes over each collected batch (the surrogate's importance-sampled reuse)."""

    num_minibatches: int = 4
    """Minibatches per epoch; num_envs * num_steps must divide by it."""

    learning_rate: float = 2.5e-4
    """Adam step size (the start value when annealed)."""

    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run."""

    adam_eps: float = 1e-5
    """Adam's epsilon (1e-5, as in the PPO reference implementations, not optax's 1e-8)."""

    gamma: float = 0.99
    """Discount factor."""

    gae_lambda: float = 0.95
    """GAE's bias-variance dial: 0 is the TD residual, 1 the Monte Carlo advantage."""

    advantage: Literal["gae", "td", "nstep", "mc"] = "gae"
    """Advantage estimator: gae (GAE with --gae-lambda), td (one-step TD residual), nstep (--nstep-n steps,
    then V), mc (Monte Carlo return G_t - V(s_t)). The value target is always advantage + V(s_t)."""

    nstep_n: int = 5
    """n of --advantage nstep."""

    baseline: bool = True
    """Subtract a learned value baseline. --no-baseline is REINFORCE on the raw discounted return G_t (needs
    --advantage mc): the critic is not used and gets no gradient."""

    clip_coef: float | None = 0.2
    """Surrogate clip range eps: the ratio is clipped to [1-eps, 1+eps]. None: no clip (plain r*A)."""

    vf_clip_coef: float | None = 0.2
    """Value clip range: the new value stays within +-this of the old one in the loss. None: no value clipping."""

    ent_coef: float = 0.01
    """Entropy bonus coefficient c2."""

    vf_coef: float = 0.5
    """Value loss coefficient c1."""

    max_grad_norm: float | None = 0.5
    """Clip the global gradient norm to this. None: no gradient clipping."""

    target_kl: float | None = None
    """Stop an update's remaining minibatches once a minibatch's approx KL exceeds this. None: never."""

    norm_adv: bool = True
    """Normalise advantages to zero mean and unit std within each minibatch."""

    norm_obs: bool = False
    """Normalise observations by their running mean and std, clipped to +-10."""

    norm_reward: bool = False
    """Scale rewards by the running std of the discounted return, clipped to +-10."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic."""

    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden-layer activation."""

    network: Literal["auto", "mlp", "cnn"] = "auto"
    """Torso: cnn (convolutions, then the hidden layers) for HxWxC image observations, mlp (flattened
    observations) otherwise; auto picks cnn exactly when the observations are images."""

    shared_trunk: bool = False
    """Share the hidden layers between actor and critic (default: two separate networks)."""

    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""

    seed: int = 0
    """Random seed of the first run; seed i of --seeds N uses seed + i."""

    seeds: int = 1
    """Independent seeds trained together in one compiled, vmapped run."""

    driver: Literal["auto", "fused", "host"] = "auto"
    """fused: the whole run in one jitted function (JAX-native envs). host: a Python loop over a Gymnasium
    vector env (any env). auto: fused where the env is JAX-native, else host."""

    devices: int = 1
    """Fused driver: split the envs across this many local devices (data parallel, one set of parameters;
    --num-envs must divide by it). On a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N."""

    distributed: bool = False
    """Fused driver over several processes (hosts): call jax.distributed.initialize() first. Under Slurm it
    reads the job; elsewhere set JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID in
    each process. --devices then counts every process's devices; process 0 writes the run folder."""

    ray: str | None = None
    """Host driver on Ray (pip install "ppox[ray]"): 'local' starts Ray here, 'auto' or an address joins a
    cluster (ray start --head). Rollouts run in --workers actors, the learner in this process."""

    workers: int = 1
    """Ray rollout workers; each owns --num-envs / --workers envs and a copy of the policy."""

    vec: Literal["sync", "async"] = "sync"
    """Host driver: step the envs in this process (sync) or one subprocess each (async)."""

    run_dir: str = "runs"
    """Folder under which each run's folder is made."""

    run_name: str | None = None
    """Name of this run's folder (default: ENV__SEED__TIMESTAMP)."""

    save: bool = True
    """Write the run folder (config, metrics, TensorBoard events, parameters)."""

    tensorboard: bool = True
    """Write TensorBoard event files into the run folder."""

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
        _validate(self)

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
    def preset(cls, env: str = "CartPole-v1", **overrides) -> "Config":
        """The tuned configuration for ``env``, with ``overrides`` applied on top."""
        return cls(**{**PRESETS.get(env, {}), "env": env, **overrides})

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(names)}")
        if "hidden_sizes" in data:
            data = {**data, "hidden_sizes": tuple(data["hidden_sizes"])}
        return cls(**data)


def program_config(config: Config) -> Config:
    """The config with the fields that do not change the compiled program set to fixed values: runs that
    differ only in those (seed, output, cadence) share one compilation. ``distributed`` stays: it changes
    how the program is laid out."""
    return config.replace(seed=0, run_dir="runs", run_name=None, save=False, tensorboard=False, progress=False,
                          checkpoint_every=0, keep_checkpoints=1, eval_episodes=0, ray=None, workers=1)


def _validate(c: Config) -> None:
    """Every field checked, in the order the messages are most useful; the first problem is raised."""
    _validate_sizes(c)
    _validate_algorithm(c)
    _validate_run(c)


def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _validate_sizes(c: Config) -> None:
    for name in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches", "seeds"):
        value = getattr(c, name)
        need(isinstance(value, int) and not isinstance(value, bool) and value > 0,
             f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if c.batch_size % c.num_minibatches:  # (the suggestion is only worked out when it is needed)
        need(False, f"num_envs * num_steps = {c.batch_size} does not divide into --num-minibatches "
                    f"{c.num_minibatches}; choose a number of minibatches that divides {c.batch_size} "
                    f"(e.g. {_divisor_near(c.batch_size, c.num_minibatches)})")
    need(c.total_timesteps >= c.batch_size,
         f"--total-timesteps {c.total_timesteps} is less than one rollout (num_envs * num_steps = {c.batch_size}); "
         f"raise --total-timesteps or lower --num-envs/--num-steps")


def _validate_algorithm(c: Config) -> None:
    for name in ("learning_rate", "adam_eps"):
        value = getattr(c, name)
        need(_finite(value) and value > 0, f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
    need(_finite(c.gamma) and 0.0 <= c.gamma <= 1.0, f"--gamma must lie in [0, 1], got {c.gamma!r}")
    need(c.advantage in ("gae", "td", "nstep", "mc"), f"--advantage must be gae, td, nstep or mc, got {c.advantage!r}")
    need(isinstance(c.nstep_n, int) and not isinstance(c.nstep_n, bool) and c.nstep_n >= 1,
         f"--nstep-n must be a positive integer, got {c.nstep_n!r}")
    need(c.baseline or c.advantage == "mc",
         f"--no-baseline is REINFORCE on the Monte Carlo return; it needs --advantage mc, not {c.advantage!r}")
    need(_finite(c.gae_lambda) and 0.0 <= c.gae_lambda <= 1.0, f"--gae-lambda must lie in [0, 1], got {c.gae_lambda!r}")
    for name in ("clip_coef", "vf_clip_coef", "max_grad_norm", "target_kl"):
        value = getattr(c, name)
        need(value is None or (_finite(value) and value > 0),
             f"--{name.replace('_', '-')} must be a positive number or None (off), got {value!r}")
    for name in ("ent_coef", "vf_coef"):
        value = getattr(c, name)
        need(_finite(value) and value >= 0, f"--{name.replace('_', '-')} must be a number >= 0, got {value!r}")
    need(_finite(c.log_std_init), f"--log-std-init must be a finite number, got {c.log_std_init!r}")
    need(len(c.hidden_sizes) >= 1 and all(isinstance(h, int) and h > 0 for h in c.hidden_sizes),
         f"--hidden-sizes must be one or more positive integers, got {c.hidden_sizes!r}")
    need(c.activation in ("tanh", "relu"), f"--activation must be tanh or relu, got {c.activation!r}")
    need(c.network in ("auto", "mlp", "cnn"), f"--network must be auto, mlp or cnn, got {c.network!r}")


def _validate_run(c: Config) -> None:
    need(c.driver in ("auto", "fused", "host"), f"--driver must be auto, fused or host, got {c.driver!r}")
    need(c.vec in ("sync", "async"), f"--vec must be sync or async, got {c.vec!r}")
    need(isinstance(c.seed, int) and 0 <= c.seed < 2**31, f"--seed must be an integer in [0, 2^31), got {c.seed!r}")
    need(c.run_name is None or (c.run_name.strip() != "" and "/" not in c.run_name and c.run_name not in (".", "..")),
         f"--run-name must be a plain folder name (no '/'), got {c.run_name!r}")
    need(bool(c.run_dir), "--run-dir must not be empty")
    need(isinstance(c.checkpoint_every, int) and not isinstance(c.checkpoint_every, bool) and c.checkpoint_every >= 0,
         f"--checkpoint-every must be a number of env steps >= 0 (0: only at the end), got {c.checkpoint_every!r}")
    need(isinstance(c.eval_episodes, int) and not isinstance(c.eval_episodes, bool) and c.eval_episodes >= 0,
         f"--eval-episodes must be a number of episodes >= 0 (0: no evaluation), got {c.eval_episodes!r}")
    need(isinstance(c.devices, int) and not isinstance(c.devices, bool) and c.devices >= 1,
         f"--devices must be a positive integer, got {c.devices!r}")
    need(c.num_envs % c.devices == 0 if isinstance(c.devices, int) and c.devices >= 1 else True,
         f"--num-envs {c.num_envs} must divide by --devices {c.devices} (each device steps an equal share)")
    need(isinstance(c.keep_checkpoints, int) and not isinstance(c.keep_checkpoints, bool) and c.keep_checkpoints >= 1,
         f"--keep-checkpoints must be a positive integer, got {c.keep_checkpoints!r}")
    check_env_id(c.env)
    fused = driver_for(c.env, c.driver, c.ray) == "fused"
    if c.driver == "fused":
        need(is_jax_env(c.env), f"--driver fused needs a JAX-native env; {c.env!r} is not one (use --driver host)")
    if c.seeds > 1:
        need(fused, f"--seeds {c.seeds}: several seeds in one run need the fused driver (a JAX-native env); "
             f"on the host driver run one process per seed (--seed S)")
    need(isinstance(c.workers, int) and not isinstance(c.workers, bool) and c.workers >= 1,
         f"--workers must be a positive integer, got {c.workers!r}")
    if c.ray is not None:
        need(c.driver != "fused", "--ray runs the host driver's rollouts on Ray; drop --driver fused")
        need(isinstance(c.workers, int) and c.num_envs % c.workers == 0,
             f"--num-envs {c.num_envs} must divide by --workers {c.workers} (each worker steps an equal share)")
    if c.distributed:
        need(fused, "--distributed runs the fused driver across processes; it needs a JAX-native env (and no --ray)")
    if c.devices > 1:
        need(fused, f"--devices {c.devices}: splitting envs across devices needs the fused driver (a JAX-native env)")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _divisor_near(n: int, target: int, tries: int = 100_000) -> int:
    """The divisor of n nearest to target (the smaller on a tie), looking at most ``tries`` steps away;
    1 if none is that near (any n, however large, is answered at once)."""
    for k in range(tries):
        for d in (target - k, target + k):
            if 1 <= d <= n and n % d == 0:
                return d
    return 1
