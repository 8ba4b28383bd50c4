"""Validation of a Config: every field's type and range, the combinations that cannot work, the memory a run
needs (``ppox.config.memory``). Each problem is a ConfigError whose message names the flag and what to change."""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing

from ppox.config.memory import check_memory_need
from ppox.envs.families import family_for, is_unresolved_entry_point
from ppox.envs.ids import TASK_IDS
from ppox.envs.registry import check_env_id, driver_for, is_atari_id, is_jax_env, uses_envpool
from ppox.errors import ConfigError
from ppox.utils.naming import with_fields


def validate(c) -> None:
    """Every field checked, in the order the messages are most useful; the first problem is raised (from
    Python, its message also names the Config fields of the flags it names: ``with_fields``)."""
    try:
        _validate_bounds(c)
        _validate_types(c)
        _validate_sizes(c)
        _validate_algorithm(c)
        _validate_run(c)
        _validate_placement(c)
        _validate_agents(c)
        _validate_self_play(c)
        check_memory_need(c)
    except ConfigError as err:
        err.args = (with_fields(str(err), {f.name for f in dataclasses.fields(c)}),)
        raise


def need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


BITS = {"max_episode_steps": 31, "total_timesteps": 128}  # int32 in JAX; num_updates < 2^31 says more; others 63


def _validate_bounds(c) -> None:
    """Integers below 2^63 (a C long), or as ``BITS`` says: checked first (a file may hold any number)."""
    for field in dataclasses.fields(c):
        values, bits = getattr(c, field.name), BITS.get(field.name, 63)
        for v in values if isinstance(values, tuple) else (values,):
            if isinstance(v, int) and abs(v) >= 2**bits:
                shown = repr(v) if v.bit_length() < 200 else f"a number of {int(v.bit_length() * 0.30103)}+ digits"
                raise ConfigError(f"--{field.name.replace('_', '-')} must be below 2^{bits}, got {shown}")


def _validate_types(c) -> None:
    """Each field holds a value of its annotated type (a config read from a file may hold anything); a Literal
    field one of its choices, read from the Literal (a registry's names, e.g. --advantage)."""
    hints = typing.get_type_hints(type(c))
    for field in dataclasses.fields(c):
        value, hint = getattr(c, field.name), hints[field.name]
        need(_is(value, hint), f"--{field.name.replace('_', '-')} must be {_describe(hint)}, got {reprlib.repr(value)}")


def _is(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, arg) for arg in args)
    if origin is typing.Literal:
        return isinstance(value, str) and value in args
    if origin is tuple:
        return isinstance(value, tuple) and all(_is(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is typing.Literal:
        return ", ".join(args[:-1]) + " or " + args[-1]
    if origin is tuple:
        return "a list of integers" if args[0] is int else f"a list of ({_describe(args[0])})"
    return {type(None): "None", float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(
        hint, hint.__name__
    )


def _validate_sizes(c) -> None:
    for name in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches", "seeds"):
        value = getattr(c, name)  # (an integer: the types are checked first)
        need(value > 0, f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if c.batch_size % c.num_minibatches:  # (the suggestion is only worked out when it is needed)
        need(
            False,
            f"num_envs * num_steps = {c.batch_size} does not divide into --num-minibatches "
            f"{c.num_minibatches}; choose a number of minibatches that divides {c.batch_size} "
            f"(e.g. {_divisor_near(c.batch_size, c.num_minibatches)})",
        )
    need(
        c.num_updates < 2**31,
        f"--total-timesteps {c.total_timesteps} is more than ppox counts: at most "
        f"{(2**31 - 1) * c.batch_size:.4g} steps with num_envs * num_steps = {c.batch_size}",
    )
    need(
        c.max_episode_steps is None or c.max_episode_steps >= 1,
        f"--max-episode-steps must be a positive integer or None, got {c.max_episode_steps!r}",
    )
    need(
        c.total_timesteps >= c.batch_size,
        f"--total-timesteps {c.total_timesteps} is less than one rollout (num_envs * num_steps = {c.batch_size}); "
        f"raise --total-timesteps or lower --num-envs/--num-steps",
    )


def _validate_algorithm(c) -> None:
    for name in ("learning_rate", "adam_eps"):
        value = getattr(c, name)
        need(_finite(value) and value > 0, f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
    need(_finite(c.gamma) and 0.0 <= c.gamma <= 1.0, f"--gamma must lie in [0, 1], got {c.gamma!r}")
    need(c.nstep_n >= 1, f"--nstep-n must be a positive integer, got {c.nstep_n!r}")
    need(
        c.baseline or c.advantage == "mc",
        f"--no-baseline is REINFORCE on the Monte Carlo return; it needs --advantage mc, not {c.advantage!r}",
    )
    need(_finite(c.gae_lambda) and 0.0 <= c.gae_lambda <= 1.0, f"--gae-lambda must lie in [0, 1], got {c.gae_lambda!r}")
    for name in ("clip_coef", "vf_clip_coef", "max_grad_norm", "target_kl"):
        value = getattr(c, name)
        need(
            value is None or (_finite(value) and value > 0),
            f"--{name.replace('_', '-')} must be a positive number or None (off), got {value!r}",
        )
    for name in ("ent_coef", "vf_coef"):
        value = getattr(c, name)
        need(_finite(value) and value >= 0, f"--{name.replace('_', '-')} must be a number >= 0, got {value!r}")
    need(_finite(c.log_std_init), f"--log-std-init must be a finite number, got {c.log_std_init!r}")
    need(_finite(c.reward_scale) and c.reward_scale > 0, f"--reward-scale must be above 0, got {c.reward_scale!r}")
    need(c.action_repeat >= 1, f"--action-repeat must be a positive integer (1: none), got {c.action_repeat!r}")
    need(
        len(c.hidden_sizes) >= 1 and all(isinstance(h, int) and h > 0 for h in c.hidden_sizes),
        f"--hidden-sizes must be one or more positive integers, got {c.hidden_sizes!r}",
    )
    _validate_memory(c)


def _validate_agents(c) -> None:
    """--critic and --agent-id: multi-agent envs (JaxMARL, PettingZoo) only; the centralised critic needs its own
    trunk."""
    need(c.critic in ("local", "world_state"), f"--critic must be local or world_state, got {c.critic!r}")
    need(isinstance(c.agent_id, bool), f"--agent-id must be true or false, got {c.agent_id!r}")
    family = family_for(c.env, "fused")
    many = getattr(family_for(c.env, "host"), "name", None) == "pettingzoo"  # (rows of agents, maybe a world state)
    if (c.critic != "local" or c.agent_id) and not many:
        need(
            family is not None and family.name == "jaxmarl",
            f"--critic {c.critic} / --agent-id are for multi-agent envs (JaxMARL ids, `ppox envs`, and PettingZoo's); "
            f"{c.env!r} has one agent: drop them",
        )
    need(
        c.critic == "local" or not c.shared_trunk,
        "--critic world_state gives the critic its own input: drop --shared-trunk",
    )
    need(
        family is None or family.name != "jaxmarl" or c.action_repeat == 1,
        f"--action-repeat {c.action_repeat}: not for multi-agent envs (JaxMARL); drop it",
    )


def _validate_self_play(c) -> None:
    """--opponent and the pool: two-player pgx games (TASK_IDS ending in -pgx), a feed-forward policy."""
    need(c.pool_size >= 1, f"--pool-size must be a positive integer, got {c.pool_size!r}")
    need(c.pool_every >= 1, f"--pool-every must be a positive integer (updates), got {c.pool_every!r}")
    need(0.0 <= c.pool_share <= 1.0, f"--pool-share must be in [0, 1], got {c.pool_share!r}")
    if c.opponent == "random":
        return
    games = [i for i in TASK_IDS if i.endswith("-pgx")]
    need(c.env in games, f"--opponent {c.opponent} is self-play for two-player games ({', '.join(games)}); not {c.env}")
    need(c.memory == "none", f"--opponent {c.opponent}: the opponents act without memory; drop --memory {c.memory}")
    need(c.driver != "host", f"--opponent {c.opponent}: self-play runs on the fused driver; drop --driver host")


def _validate_memory(c) -> None:
    need(c.memory_size > 0, f"--memory-size must be a positive integer, got {c.memory_size!r}")
    need(
        isinstance(c.post_memory_sizes, tuple)
        and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in c.post_memory_sizes),
        f"--post-memory-sizes must be zero or more positive integers, got {c.post_memory_sizes!r}",
    )
    need(
        not c.post_memory_sizes or c.memory != "none",
        f"--post-memory-sizes {' '.join(map(str, c.post_memory_sizes))} adds layers after the recurrent cell: use "
        "it with --memory gru or lstm (without memory, put the sizes in --hidden-sizes)",
    )
    need(
        c.grad_clip == "joint" or not c.shared_trunk,
        "--grad-clip per_network clips the actor's and the critic's gradients apart: drop --shared-trunk "
        "(a shared trunk belongs to both), or use --grad-clip joint",
    )
    if c.memory != "none" and c.num_envs % c.num_minibatches:
        need(
            False,
            f"--memory {c.memory} trains on whole per-env sequences, so --num-envs {c.num_envs} must divide "
            f"by --num-minibatches {c.num_minibatches}; use --num-minibatches "
            f"{_divisor_near(c.num_envs, c.num_minibatches)} or more envs",
        )
    need(
        isinstance(c.hide_obs, tuple)
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in c.hide_obs)
        and len(set(c.hide_obs)) == len(c.hide_obs),
        f"--hide-obs must be distinct observation indices >= 0, got {c.hide_obs!r}",
    )


def _validate_run(c) -> None:
    need(
        c.vec not in ("ale", "envpool") or is_atari_id(c.env),
        f"--vec {c.vec} steps Atari games (ALE/Name-v5, "
        f"NameNoFrameskip-v4); {c.env} is not one: use --vec sync or async",
    )
    need(0 <= c.seed < 2**31, f"--seed must be an integer in [0, 2^31), got {c.seed!r}")
    need(
        c.run_name is None or (c.run_name.strip() != "" and "/" not in c.run_name and c.run_name not in (".", "..")),
        f"--run-name must be a plain folder name (no '/'), got {c.run_name!r}",
    )
    need(bool(c.run_dir), "--run-dir must not be empty")
    need(c.init_from is None or c.init_from.strip() != "", "--init-from must name a run folder, got ''")
    need(
        c.stop_at_return is None or _finite(c.stop_at_return),
        f"--stop-at-return must be a finite return, got {c.stop_at_return!r}",
    )
    need(
        c.checkpoint_every >= 0,
        f"--checkpoint-every must be a number of env steps >= 0 (0: only at the end), got {c.checkpoint_every!r}",
    )
    need(
        c.eval_episodes >= 0,
        f"--eval-episodes must be a number of episodes >= 0 (0: no evaluation), got {c.eval_episodes!r}",
    )
    need(c.keep_checkpoints >= 1, f"--keep-checkpoints must be a positive integer, got {c.keep_checkpoints!r}")


def _validate_placement(c) -> None:
    """Where the run steps its envs and trains: the driver, devices, processes, Ray workers."""
    need(c.devices >= 1, f"--devices must be a positive integer, got {c.devices!r}")
    need(
        c.num_envs % c.devices == 0,
        f"--num-envs {c.num_envs} must divide by --devices {c.devices} (each device steps an equal share)",
    )
    check_env_id(c.env, strict=False)  # (a name close to no id may label an env object; train checks it)
    # (an entry point not yet imported may make a JAX env: the driver is checked again where the run starts)
    maybe = is_unresolved_entry_point(c.env) and c.ray is None and c.driver != "host"
    fused = driver_for(c.env, c.driver, c.ray) == "fused" or maybe
    if c.driver == "fused":
        need(
            is_jax_env(c.env) or maybe or (is_atari_id(c.env) and c.vec == "envpool"),
            f"--driver fused needs a JAX-native env, or an Atari id with --vec envpool (EnvPool's XLA steps); "
            f"{c.env!r} is not one (use --driver host)",
        )
    if uses_envpool(c):
        need(
            c.seeds == 1 and c.devices == 1 and not c.distributed,
            "--vec envpool --driver fused steps one EnvPool pool, which cannot be vmapped or split: use --seeds 1 "
            "(one process per seed) and one device, or the host driver",
        )
    need(
        fused or c.prng_impl == "threefry2x32",
        f"--prng-impl {c.prng_impl} chooses the fused driver's random-number generator; {c.env!r} runs on the "
        "host driver, which keeps JAX's default: drop --prng-impl (or use a JAX-native env)",
    )
    need(fused or c.action_repeat == 1, f"--action-repeat needs the fused driver (a JAX env); drop it for {c.env!r}")
    if c.seeds > 1:
        need(
            fused,
            f"--seeds {c.seeds}: several seeds in one run need the fused driver (a JAX-native env); "
            f"on the host driver run one process per seed (--seed S)",
        )
    need(c.workers >= 1, f"--workers must be a positive integer, got {c.workers!r}")
    if c.ray is not None:
        need(c.driver != "fused", "--ray runs the host driver's rollouts on Ray; drop --driver fused")
        need(
            c.num_envs % c.workers == 0,
            f"--num-envs {c.num_envs} must divide by --workers {c.workers} (each worker steps an equal share)",
        )
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
