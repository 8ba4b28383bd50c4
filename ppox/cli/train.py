"""``ppox train [FLAGS]``: the Config dataclass turned into flags by tyro; the defaults shown are the preset of
the chosen ``--env`` (or the values of ``--config FILE``). ``ppox train --resume RUN`` continues a run."""

from __future__ import annotations

import functools
from typing import Any

from ppox.cli.flags import Option, count, fail, given, parse_flags, scan, text, value_of
from ppox.cli.running import run_reported

SUMMARY = "train PPO (ppox train --help lists every flag; defaults are the --env preset)"

OPTIONS = {  # besides the Config fields, which tyro parses
    "config": Option(value="FILE", needs="a JSON file: ppox train --config runs/RUN/config.json"),
    "trust-run-config": Option(),
}
RESUME_OPTIONS = {  # (--distributed: the run's own setting)
    "resume": Option(value="RUN", needs="a run folder: ppox train --resume runs/ENV__SEED__TIME"),
    "env": Option(value="ID"),
    "ray": Option(value="ADDRESS"),
    "trust-run-config": Option(),
    "distributed": Option(),
    "total-timesteps": Option(value="N", needs="a new end in env steps: --total-timesteps 1e6"),
    "progress": Option(),
    "no-progress": Option(),
}


def run(args: list[str]) -> int:
    """ppox train: the Config of the flags, then the run and its summary."""
    from ppox.config.config import Config, ConfigError

    if "--distributed" in args:  # before anything touches JAX's backend (importing gymnax does)
        from ppox.drivers.distributed import init_distributed

        try:
            init_distributed()
        except ConfigError as err:
            return fail("train", str(err))
    if given(args, "resume"):
        return resume(args)
    if given(args, "env") > 1:
        return fail("train", "--env is given more than once; give it once (it picks the preset too)")
    own, args = scan(args, OPTIONS.get)
    try:
        network = value_of(args, "network")  # (MinAtar has a preset per network)
        default = (
            Config.preset(value_of(args, "env") or "CartPole-v1", **({"network": network} if network else {}))
            if "config" not in own
            else file_config(text(own, "config", ""), args, trust="trust-run-config" in own)
        )
        config = parse_flags(
            Config,
            args,
            "ppox train",
            default=default,
            description="Train PPO. Defaults shown are the preset of --env, or the values of "
            "--config FILE (a JSON config; the flags given override it).",
        )
    except ConfigError as err:
        return fail("train", str(err))
    from ppox.run.training import train

    return run_reported("train", functools.partial(train, config), report)


def file_config(file: str, args: list[str], trust: bool) -> Any:
    """The Config of a JSON file (or a run folder's config.json), the defaults that the flags in ``args``
    override; its --run-name is not kept (that folder holds its run already). An entry point env or a Ray
    address the file names is used only when the flags repeat it or ``trust`` (--trust-run-config)."""
    from ppox.config.config import Config
    from ppox.config.trust import confirm_file_config

    config = Config.load(file).replace(run_name=None)
    env, ray = value_of(args, "env"), value_of(args, "ray")
    checked = config.replace(**({"env": env} if env else {}), **({"ray": ray} if ray else {}))
    confirm_file_config(checked, file, env, ray, trust=trust)
    return config


def resume(args: list[str]) -> int:
    """ppox train --resume RUN: continue a run from its newest checkpoint, with the run's own config; to a new
    end with --total-timesteps N (a finished run too); --no-progress hides the progress bar. --env and --ray
    confirm an entry point or Ray address the run's files name; --trust-run-config trusts them."""
    from ppox.errors import ConfigError
    from ppox.run.training import resume

    opts, rest = scan(args, RESUME_OPTIONS.get)
    if rest:
        return fail("train", f"--resume continues a run with its own settings; drop {' '.join(rest)}")
    try:
        total = count(opts, "total-timesteps", None)
    except ConfigError as err:
        return fail("train", str(err))
    progress = next((arg == "--progress" for arg in reversed(args) if arg in ("--progress", "--no-progress")), None)
    start = functools.partial(
        resume,
        text(opts, "resume"),
        env=text(opts, "env"),
        ray=text(opts, "ray"),
        trust_run_config="trust-run-config" in opts,
        total_timesteps=total,
        progress=progress,
    )
    return run_reported("train", start, report)


def report(result: Any) -> None:
    """Print a run's summary line: steps, seeds, time, the final returns and the run folder."""
    from ppox.run.training import summary

    config = result.config
    s = summary(result)
    finals = ", ".join("no episode finished" if x is None else f"{x:.1f}" for x in s["final_return_per_seed"])
    where = f" -> {s['run_path']}" if s["run_path"] else ""
    print(
        f"{config.env}: {s['total_timesteps']:,} steps x {config.seeds} seed(s) in {s['wall_time_s']:.1f} s "
        f"({s['steps_per_second']:,.0f} steps/s); mean episodic return over the last 10%: {finals}{where}"
    )
