"""The command line: ``ppox train [FLAGS]``, ``ppox eval``, ``ppox envs``, ``ppox ladder``, ``ppox plot``, ...

``ppox train`` is the Config dataclass turned into flags by tyro; the defaults shown are the
preset of the chosen ``--env``. Bad input is a one-line error and exit code 2.

Each command imports the ppox modules it needs when it runs (JAX, gymnax, matplotlib and friends take
seconds to import), so that ``ppox --help`` and a mistyped command answer at once: the one place in ppox
where imports sit inside functions for another reason than an optional dependency.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import functools
import io
import itertools
import json
import math
import os
import re
import sys
from pathlib import Path

from ppox.utils import signals

if __name__ == "__main__" or Path(sys.argv[0]).name == "ppox":
    signals.install()  # the program itself listens before its first heavy import (tyro: a third of a second)

import tyro  # noqa: E402

USAGE = """usage: ppox COMMAND [ARGS]

commands:
  train   train PPO (ppox train --help lists every flag; defaults are the --env preset)
  eval    run a saved policy: ppox eval RUN [--episodes N] [--deterministic] [--video]
  envs    list the environments ppox can train on
  ladder  PPO built up from REINFORCE, one repair per rung: ppox ladder --env ID --seeds N
  plot    curves and diagnostics of run folders: ppox plot RUN [RUN ...] (PNG and SVG)
  explain draw the clipped objective: ppox explain clip [--eps 0.2]
  sweep   many configurations x seeds, one report: ppox sweep --learning-rate 1e-4,3e-4 --ent-coef 0,0.01 --seeds 4
  tune    search hyperparameters with Optuna: ppox tune --env Pendulum-v1 --learning-rate 1e-4:1e-2 --trials 32
  lm      language models: ppox lm train | sample | reward-model (ppox lm train --help)

example: ppox train --env Acrobot-v1 --total-timesteps 500000 --seeds 4
"""


@dataclasses.dataclass(frozen=True)
class Eval:
    """Run a saved policy for some episodes and print the mean and std of the return."""

    run: tyro.conf.Positional[str]
    """A run folder (or its policy.safetensors)."""
    episodes: int = 10
    """Episodes to run."""
    deterministic: bool = True
    """Act with the distribution's mode (the default, as Policy.act does); --no-deterministic samples."""
    video: bool = False
    """Record every episode as mp4 into RUN/videos (Gymnasium environments; needs ppox[video])."""
    seed_index: int = 0
    """Which seed of a multi-seed run."""
    seed: int = 0
    """Seed of the evaluation episodes."""
    env: str | None = None
    """Confirm the run's env when it is an entry point ('module:Class'): importing it runs its code."""
    trust_run_config: bool = False
    """Import the env the policy file names without repeating it."""
    max_episode_steps: int | None = None
    """Cut an episode after this many steps (default: the run's --max-episode-steps, else 10,000), so that an
    env without a time limit cannot hang the evaluation."""


def _fail(command: str, message: str) -> int:
    print(f"ppox {command}: error: {message}", file=sys.stderr)
    return 2


class FlagError(Exception):
    """Flags that do not parse; the message is one line."""


SCIENTIFIC_INTEGER = re.compile(r"^\+?\d+(\.\d+)?[eE]\+?\d+$")


def parse_flags(cls, args: list[str], prog: str, **kwargs):
    """tyro.cli, with its errors as one line (FlagError) instead of a box; ``--help`` prints as tyro does.
    Whole numbers may be written like 1e6 (tyro's int parser takes digits only)."""
    args = [_integer_text(a) if SCIENTIFIC_INTEGER.match(a) else a for a in args]
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=args, prog=prog, **kwargs)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        raise FlagError(_first_message(captured.getvalue(), prog)) from None


def _integer_text(text: str) -> str:
    value = decimal.Decimal(text)
    return str(int(value)) if value == value.to_integral_value() and value < 10**30 else text


def _first_message(box: str, prog: str) -> str:
    """The first message block of tyro's error box (after its title, up to its first rule), as one line."""

    def is_rule(line: str) -> bool:
        return bool(line) and set(line) <= set("-─")

    lines = [line.strip().strip("│").strip() for line in box.splitlines()]
    lines = [line for line in lines if line]
    if lines and lines[0].startswith("╭"):  # the title in the box's top border
        lines = lines[1:]
    elif len(lines) > 1 and is_rule(lines[1]):  # the title on a line of its own, then a rule
        lines = lines[2:]
    body = list(itertools.takewhile(lambda line: not is_rule(line), lines))
    return f"{' '.join(body) or 'the flags do not parse'} (see {prog} --help)"


def _env_from_args(args: list[str], flag: str = "--env", default: str | None = "CartPole-v1") -> str | None:
    """The value of --env (or ``flag``) in ``args`` (tyro parses it again; this only picks the preset)."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk so that a repeated run skips XLA compilation.

    The folder is $PPOX_CACHE_DIR (default ~/.cache/ppox/xla); an empty PPOX_CACHE_DIR turns it off.
    """
    folder = os.environ.get("PPOX_CACHE_DIR", str(Path.home() / ".cache" / "ppox" / "xla"))
    if not folder:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def train_command(args: list[str]) -> int:
    from ppox.config.config import Config, ConfigError

    if "--distributed" in args:  # before anything touches JAX's backend (importing gymnax does)
        from ppox.drivers.distributed import init_distributed

        try:
            init_distributed()
        except ConfigError as err:
            return _fail("train", str(err))
    if "--resume" in args or any(a.startswith("--resume=") for a in args):
        return resume_command(args)
    if sum(a == "--env" or a.startswith("--env=") for a in args) > 1:
        return _fail("train", "--env is given more than once; give it once (it picks the preset too)")
    try:
        file, args = config_file_option(args)
        network = _env_from_args(args, "--network", None)  # (MinAtar has a preset per network)
        default = (
            Config.preset(_env_from_args(args), **({"network": network} if network else {}))
            if file is None
            else file_config(file, args)
        )
        args = [a for a in args if a != "--trust-run-config"]
        config = parse_flags(
            Config,
            args,
            "ppox train",
            default=default,
            description="Train PPO. Defaults shown are the preset of --env, or the values of "
            "--config FILE (a JSON config; the flags given override it).",
        )
    except ConfigError as err:
        return _fail("train", str(err))
    from ppox.run.training import train

    return _train_and_report(train, config)


def config_file_option(args: list[str]) -> tuple[str | None, list[str]]:
    """(the FILE of ``--config FILE`` or ``--config=FILE``, the other args)."""
    file, rest, i = None, [], 0
    while i < len(args):
        if args[i] == "--config":
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise FlagError("--config needs a JSON file: ppox train --config runs/RUN/config.json")
            file, i = args[i + 1], i + 2
            continue
        if args[i].startswith("--config="):
            file = args[i].split("=", 1)[1]
        else:
            rest.append(args[i])
        i += 1
    return file, rest


def _flag_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def file_config(file: str, args: list[str]):
    """The Config of a JSON file (or a run folder's config.json), the defaults that the flags in ``args``
    override; its --run-name is not kept (that folder holds its run already). An entry point env or a Ray
    address the file names is used only when the flags repeat it or --trust-run-config is given."""
    from ppox.config.config import Config
    from ppox.config.trust import confirm_file_config

    config = Config.load(file).replace(run_name=None)
    env, ray = _flag_value(args, "--env"), _flag_value(args, "--ray")
    checked = config.replace(**({"env": env} if env else {}), **({"ray": ray} if ray else {}))
    confirm_file_config(checked, file, env, ray, trust="--trust-run-config" in args)
    return config


def _train_and_report(start, *args) -> int:
    """Run ``start(*args)`` (train or resume) and print the summary; errors as one line."""
    from ppox.errors import CheckpointError, ConfigError, RunWriteError

    enable_compilation_cache()
    try:
        result = start(*args)
    except (FloatingPointError, RunWriteError) as err:  # diverged, or a full disk: not bad input, a clear stop
        print(f"ppox train: stopped: {err}", file=sys.stderr)
        return 1
    except (OSError, ConfigError, CheckpointError) as err:
        return _fail("train", str(err))
    return _report(result)


RESUME_OPTIONS = ("--resume", "--env", "--ray")  # each takes a value; also --trust-run-config, --distributed


def _resume_options(args: list[str]) -> tuple[dict, list[str]]:
    """(the options of ``ppox train --resume RUN [--env ID] [--ray ADDR] [--trust-run-config]``, the rest)."""
    opts, rest, i = {"trust_run_config": False}, [], 0
    while i < len(args):
        name, _, value = args[i].partition("=")
        if name in RESUME_OPTIONS and value:
            opts[name[2:]] = value
        elif name in RESUME_OPTIONS and i + 1 < len(args) and not args[i + 1].startswith("--"):
            opts[name[2:]], i = args[i + 1], i + 1
        elif args[i] == "--trust-run-config":
            opts["trust_run_config"] = True
        elif args[i] not in ("--distributed", "--resume"):  # (--distributed: the run's own setting)
            rest.append(args[i])
        i += 1
    return opts, rest


def resume_command(args: list[str]) -> int:
    """ppox train --resume RUN: continue a run from its newest checkpoint, with the run's own config.
    --env and --ray confirm an entry point or Ray address the run's files name; --trust-run-config trusts them."""
    from ppox.run.training import resume

    opts, rest = _resume_options(args)
    if "resume" not in opts:
        return _fail("train", "--resume needs a run folder: ppox train --resume runs/ENV__SEED__TIME")
    if rest:
        return _fail("train", f"--resume continues a run with its own settings; drop {' '.join(rest)}")
    return _train_and_report(
        functools.partial(resume, env=opts.get("env"), ray=opts.get("ray"), trust_run_config=opts["trust_run_config"]),
        opts["resume"],
    )


def _report(result) -> int:
    from ppox.run.training import summary

    config = result.config
    s = summary(result)
    finals = ", ".join("no episode finished" if x is None else f"{x:.1f}" for x in s["final_return_per_seed"])
    where = f" -> {s['run_path']}" if s["run_path"] else ""
    print(
        f"{config.env}: {s['total_timesteps']:,} steps x {config.seeds} seed(s) in {s['wall_time_s']:.1f} s "
        f"({s['steps_per_second']:,.0f} steps/s); mean episodic return over the last 10%: {finals}{where}"
    )
    return 0


def eval_command(args: list[str]) -> int:
    from ppox.errors import CheckpointError, ConfigError

    opts = parse_flags(Eval, args, "ppox eval")
    if opts.seed < 0 or opts.seed_index < 0:
        return _fail("eval", f"--seed and --seed-index must be integers >= 0, got {opts.seed} and {opts.seed_index}")
    if opts.max_episode_steps is not None and opts.max_episode_steps < 1:
        return _fail("eval", f"--max-episode-steps must be a positive integer, got {opts.max_episode_steps}")
    from ppox.acting.evaluation import evaluate
    from ppox.acting.policy import load

    try:
        policy = load(opts.run, seed_index=opts.seed_index)
        folder = Path(opts.run) if Path(opts.run).is_dir() else Path(opts.run).parent
        returns = evaluate(
            policy,
            episodes=opts.episodes,
            deterministic=opts.deterministic,
            seed=opts.seed,
            video_folder=folder / "videos" if opts.video else None,
            env=opts.env,
            trust_env=opts.trust_run_config,
            max_episode_steps=opts.max_episode_steps,
        )
    except (CheckpointError, ConfigError) as err:
        return _fail("eval", str(err))
    mode = "deterministic" if opts.deterministic else "stochastic"
    print(
        f"{policy.config.env}: return {returns.mean():.2f} +- {returns.std():.2f} over {opts.episodes} "
        f"episodes ({mode} policy)" + (f"; videos in {folder / 'videos'}" if opts.video else "")
    )
    return 0


def envs_command(args: list[str]) -> int:
    from ppox.config.presets import PRESETS
    from ppox.envs.registry import JAX_ENV_IDS, TASK_IDS, gymnasium_ids, gymnax_ids

    if args:
        return _fail("envs", f"takes no arguments, got {' '.join(args)}")
    print("JAX-native (fused driver), with presets:")
    for env_id in JAX_ENV_IDS:
        print(f"  {env_id}{'' if env_id in PRESETS else '  (no preset)'}")
    print("memory tasks (partially observed; their presets use --memory gru) and masked games (pgx extra):")
    for env_id in ("MemoryChain-bsuite",) + TASK_IDS:
        print(f"  {env_id}{'' if env_id in PRESETS else '  (no preset)'}")
    print(
        'Atari (host driver, pip install "ppox[atari]"; any ALE/Name-v5 or NameNoFrameskip-v4), with presets: '
        + ", ".join(e for e in PRESETS if e.startswith("ALE/"))
    )
    others = [e for e in gymnax_ids() if e not in JAX_ENV_IDS + TASK_IDS + ("MemoryChain-bsuite",)]
    print("other gymnax ids (default hyperparameters): " + ", ".join(others))
    print("Gymnasium ids (host driver; also any 'package.module:Class'): " + ", ".join(gymnasium_ids()))
    return 0


@dataclasses.dataclass(frozen=True)
class Plot:
    """Learning curves and diagnostics of run folders, overlaid, as PNG and SVG."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run folders (each with a metrics.csv)."""
    out: str | None = None
    """Output path without suffix (default: RUN/plots/metrics for one run, ppox-plots/compare for several)."""


@dataclasses.dataclass(frozen=True)
class ExplainClip:
    """Draw PPO's clipped objective against the probability ratio, for A > 0 and A < 0."""

    eps: float = 0.2
    """The clip range: ratios outside [1-eps, 1+eps] stop contributing gradient in the direction of A."""
    out: str = "ppox-explain/clip"
    """Output path without suffix; .png and .svg are written."""


@dataclasses.dataclass(frozen=True)
class Ladder:
    """Build PPO up from REINFORCE one repair at a time on an env; write a report folder."""

    env: str = "CartPole-v1"
    """Environment id (its preset gives the hyperparameters every rung starts from)."""
    seeds: int = 8
    """Seeds per rung (vmapped in one run on the fused driver)."""
    total_timesteps: int | None = None
    """Env steps per seed and rung (default: the preset's)."""
    threshold: float | None = None
    """Return for the steps-to-threshold column (default: a per-env value, e.g. 475 for CartPole-v1)."""
    out: str | None = None
    """Report folder (default: ladders/ENV__TIMESTAMP)."""
    progress: bool = True
    """Show which rung is running."""


def ladder_command(args: list[str]) -> int:
    from ppox.config.config import Config, ConfigError
    from ppox.experiments.ladder import run_ladder

    opts = parse_flags(Ladder, args, "ppox ladder")
    if opts.seeds < 1:
        return _fail("ladder", f"--seeds must be a positive integer, got {opts.seeds}")
    try:  # (the seeds are vmapped on the fused driver and run one by one on the host driver)
        Config.preset(
            opts.env, **({"total_timesteps": opts.total_timesteps} if opts.total_timesteps is not None else {})
        )
    except ConfigError as err:
        return _fail("ladder", str(err))
    enable_compilation_cache()
    try:
        out = run_ladder(opts.env, opts.seeds, opts.out, opts.total_timesteps, opts.threshold, opts.progress)
    except (OSError, ConfigError) as err:
        return _fail("ladder", str(err))
    print((out / "table.md").read_text())
    if json.loads((out / "results.json").read_text())["interrupted"]:
        print("ppox ladder: stopped by a signal; the report holds the rungs that finished", file=sys.stderr)
    print(f"report: {out}/ (curves.png, kl_and_clip_fraction.png, table.md, results.json)")
    return 0


def plot_command(args: list[str]) -> int:
    from ppox.experiments.plots import plot_runs

    opts = parse_flags(Plot, args, "ppox plot")
    if not opts.runs:
        return _fail("plot", "name at least one run folder: ppox plot runs/ENV__SEED__TIME [...]")
    runs = [Path(r) for r in opts.runs]
    out = (
        Path(opts.out)
        if opts.out
        else (runs[0] / "plots" / "metrics" if len(runs) == 1 else Path("ppox-plots") / "compare")
    )
    try:
        paths = plot_runs(runs, out)
    except (OSError, ValueError) as err:
        return _fail("plot", str(err))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def explain_command(args: list[str]) -> int:
    from ppox.experiments.plots import explain_clip

    if not args or args[0] != "clip":
        return _fail("explain", "what to explain: ppox explain clip [--eps 0.2]")
    opts = parse_flags(ExplainClip, args[1:], "ppox explain clip")
    if not (math.isfinite(opts.eps) and 0 < opts.eps < 1):
        return _fail("explain", f"--eps must lie in (0, 1), got {opts.eps}")
    try:
        paths = explain_clip(opts.eps, Path(opts.out))
    except OSError as err:
        return _fail("explain", f"cannot write {opts.out}: {err.strerror or err}; choose another --out")
    print(
        f"L(r) = min(r A, clip(r, {1 - opts.eps:g}, {1 + opts.eps:g}) A). For A > 0 the objective stops rising once "
        f"r > {1 + opts.eps:g}; for A < 0 it stops falling once r < {1 - opts.eps:g}: there the sample's gradient is "
        "zero, so one batch cannot push the policy far from the one that collected it.\nwrote "
        + ", ".join(map(str, paths))
    )
    return 0


SWEEP_USAGE = """usage: ppox sweep [--env ID] [--FIELD VALUE | --FIELD A,B,C | --FIELD LOW:HIGH ...] [OPTIONS]

Every Config field (see ppox train --help) takes one value (fixed), a comma list (swept) or a range LOW:HIGH
(sampled with --random: log-uniform when 0 < LOW, else uniform). Sizes are written 64x64, an option off none.

options:
  --grid              the full product of the comma lists (the default)
  --random N          N random configurations instead
  --seeds N           seeds per configuration (default 4): --seed, --seed + 1, ...
  --out DIR           the sweep folder (default sweeps/ENV__TIME); a rerun with the same flags resumes it
  --resume DIR        continue an interrupted sweep with its own settings
  --members MODE      fused driver: vmap (vectorised), map (one after another in one program, bit-identical to
                      ppox train of each), auto (map on a CPU, vmap on an accelerator; the default)
  --batch N           fused driver: members (configuration x seed) per program call (default: vmap as many as
                      fit 1 GiB; map the seeds of one configuration, saved as soon as they finish)
  --jobs N            host driver: ppox train processes at a time (default 1)
  --ray ADDRESS       host driver: the members as Ray tasks instead ('local' starts Ray here, 'auto' or an
                      address joins a cluster; pip install "ppox[ray]")
  --threshold R       the return for the steps-to-threshold column (default: a per-env value)
  --sample-seed S     seed of the --random draws (default 0)
  --no-progress       no progress bar

example: ppox sweep --env CartPole-v1 --learning-rate 1e-4,3e-4,1e-3 --ent-coef 0,0.01 --seeds 4
"""
SWEEP_OPTIONS = {
    "grid": False,
    "random": True,
    "seeds": True,
    "out": True,
    "resume": True,
    "members": True,
    "batch": True,
    "jobs": True,
    "threshold": True,
    "sample-seed": True,
    "no-progress": False,
    "ray": True,
}


def _count(opts: dict, name: str, default: int | None, least: int = 1) -> int | None:
    """--name N as an integer >= least (ConfigError otherwise)."""
    from ppox.errors import ConfigError

    if name not in opts:
        return default
    try:
        value = int(float(opts[name]))
        if value < least or value != float(opts[name]):
            raise ValueError
    except ValueError:
        raise ConfigError(f"--{name} must be an integer >= {least}, got {opts[name]!r}") from None
    return value


def sweep_plan(args: list[str], own: dict[str, bool]):
    """(Plan, folder, options) of ppox sweep's (or tune's) args; ConfigError before any work."""
    from datetime import datetime

    from ppox.envs.registry import driver_for
    from ppox.errors import ConfigError
    from ppox.experiments.sweep import SPEC_FILE, Plan
    from ppox.experiments.sweep_space import combinations, parse_space, split_flags

    fields, opts = split_flags(args, own)
    members = opts.get("members", "auto")
    if members not in ("auto", "vmap", "map"):
        raise ConfigError(f"--members must be auto, vmap or map, got {members!r}")
    how = {
        "members": members,
        "batch": _count(opts, "batch", None),
        "jobs": _count(opts, "jobs", 1),
        "ray": opts.get("ray"),
    }
    if "resume" in opts:
        if fields or set(opts) - {"resume", "members", "batch", "jobs", "no-progress", "threshold", "ray"}:
            raise ConfigError(
                "--resume continues a sweep with its own settings; drop "
                + " ".join(["--" + k for k in fields] + ["--" + k for k in opts if k != "resume"])
            )
        folder = Path(opts["resume"])
        try:
            return Plan.from_json(json.loads((folder / SPEC_FILE).read_text()), **how), folder, opts
        except (OSError, ValueError) as err:
            raise ConfigError(f"--resume {folder}: no readable {SPEC_FILE} ({err}); give a sweep folder") from None
    space = parse_space(fields)
    if space.base.devices != 1 or space.base.distributed:
        raise ConfigError("a sweep runs on one device; drop --devices / --distributed")
    if how["ray"] is not None and driver_for(space.base.env, space.base.driver) == "fused":
        raise ConfigError(
            f"--ray runs host-driver members as Ray tasks; {space.base.env} runs fused, in one "
            "program here: drop --ray, or add --driver host"
        )
    combos = combinations(
        space, grid="grid" in opts, samples=_count(opts, "random", None), seed=_count(opts, "sample-seed", 0, least=0)
    )
    plan = Plan(space, tuple(combos), _count(opts, "seeds", 4), **how)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return plan, Path(opts.get("out") or f"sweeps/{space.base.env.replace('/', '_')}__{stamp}"), opts


def sweep_command(args: list[str]) -> int:
    from ppox.errors import ConfigError

    if "-h" in args or "--help" in args:
        print(SWEEP_USAGE)
        return 0
    try:
        plan, folder, opts = sweep_plan(args, SWEEP_OPTIONS)
        threshold = float(opts["threshold"]) if "threshold" in opts else None
    except ValueError:
        return _fail("sweep", f"--threshold must be a number, got {opts['threshold']!r}")
    except ConfigError as err:
        return _fail("sweep", str(err))
    from ppox.experiments.sweep import run_sweep
    from ppox.experiments.sweep_report import write_report

    enable_compilation_cache()
    print(f"ppox sweep: {len(plan.combos)} configurations x {plan.seeds} seeds -> {folder}", flush=True)
    cancel = signals.on_hard_exit(
        lambda: print(
            f"ppox sweep: the configurations that finished are saved; to continue: ppox sweep --resume {folder}",
            file=sys.stderr,
            flush=True,
        )
    )
    try:
        finished = run_sweep(plan, folder, progress="no-progress" not in opts)
        report = write_report(folder, threshold)
    except (OSError, ConfigError) as err:
        return _fail("sweep", str(err))
    finally:
        cancel()
    print((report / "table.md").read_text())
    print(f"report: {report}/ (table.md, results.json, final_vs_*.png, best_worst.png, best_config.json)")
    if not finished:
        print(f"ppox sweep: stopped; to continue: ppox sweep --resume {folder}", file=sys.stderr)
    return 0


TUNE_USAGE = """usage: ppox tune [--env ID] [--FIELD VALUE | --FIELD LOW:HIGH | --FIELD A,B,C ...] [OPTIONS]

Search hyperparameters with Optuna (pip install "ppox[tune]"): TPE sampler, median pruner on the returns
during each run, the study in OUT/study.db (run the same command again to continue a stopped study).
Ranges LOW:HIGH are log-uniform when 0 < LOW, else uniform; comma lists are categorical; other flags fixed.

options:
  --trials N          trials to complete or prune, counting earlier runs of the study (default 32)
  --timeout S         start no trial after S seconds
  --seeds N           seeds per trial (default 2); the objective is their mean final return
  --batch-trials K    fused driver: K trials x seeds as one program (default 1)
  --members MODE      fused driver: vmap, map or auto, as in ppox sweep (default auto: map on a CPU)
  --check-seeds N     at the end, train the best config and the preset on N fresh seeds (default 4; 0: skip)
  --out DIR           the tune folder (default tunes/ENV__TIME)
  --sampler-seed S    TPE's seed (default 0)
  --no-progress       no progress bar

example: ppox tune --env Pendulum-v1 --learning-rate 1e-4:3e-3 --gae-lambda 0.8:0.99 --trials 32 --out tunes/pend
"""
TUNE_OPTIONS = {
    "trials": True,
    "timeout": True,
    "seeds": True,
    "batch-trials": True,
    "check-seeds": True,
    "out": True,
    "sampler-seed": True,
    "no-progress": False,
    "members": True,
}


def tune_command(args: list[str]) -> int:
    from datetime import datetime

    from ppox.errors import ConfigError
    from ppox.experiments.sweep_space import parse_space, split_flags

    if "-h" in args or "--help" in args:
        print(TUNE_USAGE)
        return 0
    try:
        fields, opts = split_flags(args, TUNE_OPTIONS)
        space = parse_space(fields)
        if not space.axes:
            raise ConfigError(
                "nothing to search: give a range (--learning-rate 1e-4:1e-2) or a list (--clip-coef 0.1,0.2,0.3)"
            )
        timeout = float(opts["timeout"]) if "timeout" in opts else None
        if timeout is not None and not timeout > 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {opts['timeout']}")
        from ppox.experiments.tune import TunePlan, optuna_module

        optuna_module()
        if opts.get("members", "auto") not in ("auto", "vmap", "map"):
            raise ConfigError(f"--members must be auto, vmap or map, got {opts['members']!r}")
        plan = TunePlan(
            space,
            _count(opts, "trials", 32),
            timeout,
            _count(opts, "seeds", 2),
            _count(opts, "batch-trials", 1),
            _count(opts, "sampler-seed", 0, 0),
            _count(opts, "check-seeds", 4, 0),
            opts.get("members", "auto"),
        )
    except ValueError:
        return _fail("tune", f"--timeout must be a number of seconds, got {opts.get('timeout')!r}")
    except ConfigError as err:
        return _fail("tune", str(err))
    from ppox.experiments.tune import run_study

    folder = Path(
        opts.get("out") or f"tunes/{space.base.env.replace('/', '_')}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    enable_compilation_cache()
    try:
        summary = run_study(plan, folder, progress="no-progress" not in opts)
    except (OSError, ConfigError) as err:
        return _fail("tune", str(err))
    print(json.dumps(summary, indent=1))
    if summary.get("best") is not None:
        print(f"best config: {folder / 'best_config.json'} (ppox train --config {folder / 'best_config.json'})")
    return 0


@dataclasses.dataclass(frozen=True)
class LMSample:
    """Print one completion per prompt as JSON lines {"prompt": ..., "completion": ...}."""

    model: str
    """A Hugging Face model folder with tokenizer.json (a run's RUN/model too)."""
    prompts: str
    """JSONL file, one {"prompt": "..."} per line."""
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    """Take the most likely token at each step."""
    batch_size: int = 8
    seed: int = 0


LM_USAGE = """usage: ppox lm COMMAND [ARGS]

commands:
  train         PPO on a language model: ppox lm train --model DIR --prompts FILE.jsonl --reward module:function
                [--advantage gae|rloo|grpo] ...; ppox lm train --resume RUN [--reward module:function]
  sample        completions: ppox lm sample --model DIR --prompts FILE.jsonl
  reward-model  train a reward model on preference pairs: ppox lm reward-model --model DIR --pairs FILE.jsonl
"""


def lm_command(args: list[str]) -> int:
    commands = {"train": lm_train_command, "sample": lm_sample_command, "reward-model": lm_reward_model_command}
    if not args or args[0] in ("-h", "--help", "help"):
        print(LM_USAGE)
        return 0 if args else 2
    if args[0] not in commands:
        return _fail("lm", f"unknown command {args[0]!r}\n{LM_USAGE}")
    return commands[args[0]](args[1:])


def lm_train_command(args: list[str]) -> int:
    from ppox.language.run_config import LMRunConfig
    from ppox.lm.training import resume_lm, train_lm

    if "--resume" in args or any(a.startswith("--resume=") for a in args):
        opts, rest = _lm_resume_options(args)
        if "resume" not in opts or rest:
            return _fail(
                "lm train",
                "--resume RUN continues a run with its own settings (only --reward "
                "module:function or --trust-run-config may go with it)",
            )
        reward = _lm_reward(opts.get("reward"))
        start = functools.partial(resume_lm, opts["resume"], reward=reward, trust_run_config=opts["trust"])
    else:
        from ppox.errors import ConfigError

        try:
            config = parse_flags(LMRunConfig, args, "ppox lm train", description="PPO on a language model (RLHF).")
        except ConfigError as err:
            return _fail("lm train", str(err))
        start = functools.partial(train_lm, config)
    return _lm_run_and_report(start)


def _lm_resume_options(args: list[str]) -> tuple[dict, list[str]]:
    opts, rest, i = {"trust": False}, [], 0
    while i < len(args):
        name, _, value = args[i].partition("=")
        if name in ("--resume", "--reward") and (value or i + 1 < len(args)):
            opts[name[2:]] = value or args[i + 1]
            i += 0 if value else 1
        elif args[i] == "--trust-run-config":
            opts["trust"] = True
        else:
            rest.append(args[i])
        i += 1
    return opts, rest


def _lm_reward(spec: str | None):
    from ppox.lm.training import import_reward

    return None if spec is None else import_reward(spec)


def _lm_run_and_report(start) -> int:
    from ppox.errors import CheckpointError, ConfigError, RunWriteError
    from ppox.lm.training import lm_summary

    enable_compilation_cache()
    try:
        result = start()
    except (FloatingPointError, RunWriteError) as err:
        print(f"ppox lm train: stopped: {err}", file=sys.stderr)
        return 1
    except (OSError, ConfigError, CheckpointError) as err:
        return _fail("lm train", str(err))
    s = lm_summary(result)
    where = f" -> {s['run_path']}" if s["run_path"] else ""
    print(
        f"{result.config.env}: {s['updates']} updates in {s['wall_time_s']:.1f} s; mean score first 10% "
        f"{s['score_first']:.3f}, last 10% {s['score_last']:.3f}; KL to the reference {s['kl_ref_last']:.3f}"
        f"{where}"
    )
    return 0


def lm_sample_command(args: list[str]) -> int:
    from ppox.errors import CheckpointError, ConfigError

    opts = parse_flags(LMSample, args, "ppox lm sample")
    import ppox.lm
    from ppox.lm.training import read_prompts

    try:
        prompts = read_prompts(opts.prompts)
        completions = ppox.lm.sample(
            opts.model,
            prompts,
            max_new_tokens=opts.max_new_tokens,
            temperature=opts.temperature,
            top_k=opts.top_k,
            top_p=opts.top_p,
            greedy=opts.greedy,
            batch_size=opts.batch_size,
            seed=opts.seed,
        )
    except (OSError, ConfigError, CheckpointError) as err:
        return _fail("lm sample", str(err))
    for prompt, completion in zip(prompts, completions):
        print(json.dumps({"prompt": prompt, "completion": completion}))
    return 0


@dataclasses.dataclass(frozen=True)
class LMRewardModel:
    """Train a reward model (Bradley-Terry) on preference pairs and save it as a model folder."""

    model: str
    """The Hugging Face folder whose trunk the reward model starts from (with tokenizer.json)."""
    pairs: str
    """JSONL file, one {"prompt": ..., "chosen": ..., "rejected": ...} per line."""
    out: str
    """The folder to write (model files + reward_head.safetensors)."""
    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 1e-5
    held_out: float = 0.1
    """Fraction of the pairs kept out of training to measure accuracy."""
    normalize: bool = True
    """Shift the head's bias so that the training pairs' completions score 0 on average."""
    seed: int = 0


def lm_reward_model_command(args: list[str]) -> int:
    from ppox.errors import CheckpointError, ConfigError

    opts = parse_flags(LMRewardModel, args, "ppox lm reward-model")
    from ppox.language.reward_model import read_pairs, train_reward_model

    try:
        _, report = train_reward_model(
            opts.model,
            read_pairs(opts.pairs),
            opts.out,
            epochs=opts.epochs,
            batch=opts.batch_size,
            learning_rate=opts.learning_rate,
            held_out=opts.held_out,
            seed=opts.seed,
            normalize=opts.normalize,
        )
    except (OSError, ConfigError, CheckpointError, json.JSONDecodeError) as err:
        return _fail("lm reward-model", str(err))
    print(
        f"reward model -> {opts.out}: {report['pairs_train']} pairs, {report['steps']} steps; held-out accuracy "
        f"{report['held_out_accuracy']:.3f} on {report['pairs_held_out']} pairs (loss {report['held_out_loss']:.3f})"
    )
    return 0


COMMANDS = {
    "train": train_command,
    "eval": eval_command,
    "envs": envs_command,
    "plot": plot_command,
    "explain": explain_command,
    "ladder": ladder_command,
    "sweep": sweep_command,
    "tune": tune_command,
    "lm": lm_command,
}


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the program itself (not a call from Python, whose process keeps its own handlers)
        signals.install()  # (already done on import where the program is ppox or python -m ppox.cli)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        from ppox.errors import closest

        hint = closest(command, COMMANDS)
        return _fail(command, f"unknown command{'; did you mean ' + hint[0] + '?' if hint else ''}\n{USAGE}")
    try:
        return COMMANDS[command](rest)
    except FlagError as err:
        return _fail(command, str(err))
    except KeyboardInterrupt:
        print(f"ppox {command}: interrupted; what was saved before stays", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
