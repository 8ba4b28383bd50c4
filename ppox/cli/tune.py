"""``ppox tune``: search hyperparameters with Optuna (TPE, a median pruner), the study in a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ppox.cli.flags import Option, count, fail, options_usage, split_flags, text
from ppox.cli.running import enable_compilation_cache

SUMMARY = "search hyperparameters with Optuna: ppox tune --env Pendulum-v1 --learning-rate 1e-4:1e-2 --trials 32"

OPTIONS = {  # besides the Config fields: --FIELD VALUE, --FIELD LOW:HIGH or --FIELD A,B,C
    "trials": Option("trials to complete or prune, counting earlier runs of the study (default 32)", "N"),
    "timeout": Option("start no trial after S seconds", "S"),
    "seeds": Option("seeds per trial (default 2); the objective is their mean final return", "N"),
    "batch-trials": Option("fused driver: K trials x seeds as one program (default 1)", "K"),
    "members": Option("fused driver: vmap, map or auto, as in ppox sweep (default auto: map on a CPU)", "MODE"),
    "check-seeds": Option(
        "at the end, train the best config and the preset on N fresh seeds (default 4; 0: skip)", "N"
    ),
    "out": Option("the tune folder (default tunes/ENV__TIME)", "DIR"),
    "sampler-seed": Option("TPE's seed (default 0)", "S"),
    "no-progress": Option("no progress bar"),
}

USAGE = f"""usage: ppox tune [--env ID] [--FIELD VALUE | --FIELD LOW:HIGH | --FIELD A,B,C ...] [OPTIONS]

Search hyperparameters with Optuna (pip install "ppox[tune]"): TPE sampler, median pruner on the returns
during each run, the study in OUT/study.db (run the same command again to continue a stopped study).
Ranges LOW:HIGH are log-uniform when 0 < LOW, else uniform; comma lists are categorical; other flags fixed.

options:
{options_usage(OPTIONS)}

example: ppox tune --env Pendulum-v1 --learning-rate 1e-4:3e-3 --gae-lambda 0.8:0.99 --trials 32 --out tunes/pend
"""


def tune_plan(args: list[str]) -> tuple[Any, Path, dict]:
    """(TunePlan, folder, options) of ppox tune's args; ConfigError before any work."""
    from datetime import datetime

    from ppox.errors import ConfigError
    from ppox.experiments.sweep_space import parse_space

    fields, opts = split_flags(args, OPTIONS)
    space = parse_space(fields)
    if not space.axes:
        raise ConfigError(
            "nothing to search: give a range (--learning-rate 1e-4:1e-2) or a list (--clip-coef 0.1,0.2,0.3)"
        )
    timeout = _timeout(opts)
    from ppox.experiments.sweep_folder import check_envs
    from ppox.experiments.tune import TunePlan, optuna_module

    optuna_module()
    members = text(opts, "members", "auto")
    if members not in ("auto", "vmap", "map"):
        raise ConfigError(f"--members must be auto, vmap or map, got {members!r}")
    plan = TunePlan(
        space,
        count(opts, "trials", 32),
        timeout,
        count(opts, "seeds", 2),
        count(opts, "batch-trials", 1),
        count(opts, "sampler-seed", 0, 0),
        count(opts, "check-seeds", 4, 0),
        members,
    )
    check_envs([space.base])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return plan, Path(text(opts, "out") or f"tunes/{space.base.env.replace('/', '_')}__{stamp}"), opts


def _timeout(opts: dict) -> float | None:
    """--timeout S as a positive number of seconds (ConfigError otherwise); None when it is not given."""
    from ppox.errors import ConfigError

    if "timeout" not in opts:
        return None
    try:
        timeout = float(opts["timeout"])
    except ValueError:
        raise ConfigError(f"--timeout must be a number of seconds, got {opts['timeout']!r}") from None
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {opts['timeout']}")
    return timeout


def run(args: list[str]) -> int:
    """ppox tune: plan (every check before any work), run the study, print its summary and the best config."""
    from ppox.errors import ConfigError

    if "-h" in args or "--help" in args:
        print(USAGE)
        return 0
    try:
        plan, folder, opts = tune_plan(args)
    except ConfigError as err:
        return fail("tune", str(err))
    from ppox.experiments.tune import run_study

    enable_compilation_cache()
    try:
        summary = run_study(plan, folder, progress="no-progress" not in opts)
    except (OSError, ConfigError) as err:
        return fail("tune", str(err))
    print(json.dumps(summary, indent=1))
    if summary.get("best") is not None:
        print(f"best config: {folder / 'best_config.json'} (ppox train --config {folder / 'best_config.json'})")
    return 0
