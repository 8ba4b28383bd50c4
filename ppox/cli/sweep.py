"""``ppox sweep``: many configurations x seeds (comma lists, or ranges sampled with --random), one report."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from ppox.cli.flags import Option, count, fail, options_usage, split_flags, text
from ppox.cli.running import enable_compilation_cache
from ppox.utils import signals

SUMMARY = "many configurations x seeds, one report: ppox sweep --learning-rate 1e-4,3e-4 --ent-coef 0,0.01 --seeds 4"

OPTIONS = {  # besides the Config fields: --FIELD VALUE, --FIELD A,B,C or --FIELD LOW:HIGH
    "grid": Option("the full product of the comma lists (the default)"),
    "random": Option("N random configurations instead", "N"),
    "seeds": Option("seeds per configuration (default 4): --seed, --seed + 1, ...", "N"),
    "out": Option("the sweep folder (default sweeps/ENV__TIME); a rerun with the same flags resumes it", "DIR"),
    "resume": Option("continue an interrupted sweep with its own settings", "DIR"),
    "members": Option(
        "fused driver: vmap (vectorised), map (one after another in one program, bit-identical to ppox train of "
        "each), auto (map on a CPU, vmap on an accelerator; the default)",
        "MODE",
    ),
    "batch": Option(
        "fused driver: members (configuration x seed) per program call (default: vmap as many as fit 1 GiB; map "
        "the seeds of one configuration, saved as soon as they finish)",
        "N",
    ),
    "jobs": Option("host driver: ppox train processes at a time (default 1)", "N"),
    "ray": Option(
        "host driver: the members as Ray tasks instead ('local' starts Ray here, 'auto' or an address joins a "
        'cluster; pip install "ppox[ray]")',
        "ADDRESS",
    ),
    "threshold": Option("the return for the steps-to-threshold column (default: a per-env value)", "R"),
    "sample-seed": Option("seed of the --random draws (default 0)", "S"),
    "no-progress": Option("no progress bar"),
    "trust-run-config": Option(
        "with --resume: use an entry point env or Ray address that DIR/sweep.json names without repeating it "
        "(--env ID, --ray ADDRESS): importing an entry point runs its code"
    ),
}
RESUMED_WITH = {"resume", "members", "batch", "jobs", "no-progress", "threshold", "ray", "trust-run-config"}

USAGE = f"""usage: ppox sweep [--env ID] [--FIELD VALUE | --FIELD A,B,C | --FIELD LOW:HIGH ...] [OPTIONS]

Every Config field (see ppox train --help) takes one value (fixed), a comma list (swept) or a range LOW:HIGH
(sampled with --random: log-uniform when 0 < LOW, else uniform). Sizes are written 64x64, an option off none.

options:
{options_usage(OPTIONS)}

example: ppox sweep --env CartPole-v1 --learning-rate 1e-4,3e-4,1e-3 --ent-coef 0,0.01 --seeds 4
"""


def sweep_plan(args: list[str]) -> tuple[Any, Path, dict]:
    """(Plan, folder, options) of ppox sweep's args; ConfigError before any work."""
    from datetime import datetime

    from ppox.envs.registry import driver_for
    from ppox.errors import ConfigError
    from ppox.experiments.sweep_folder import Plan, check_envs
    from ppox.experiments.sweep_space import combinations, parse_space

    fields, opts = split_flags(args, OPTIONS)
    members = text(opts, "members", "auto")
    if members not in ("auto", "vmap", "map"):
        raise ConfigError(f"--members must be auto, vmap or map, got {members!r}")
    how: dict[str, Any] = {
        "members": members,
        "batch": count(opts, "batch", None),
        "jobs": count(opts, "jobs", 1),
        "ray": text(opts, "ray"),
    }
    if "resume" in opts:
        return resume_plan(fields, opts, how)
    if "trust-run-config" in opts:
        raise ConfigError("--trust-run-config goes with --resume DIR (the flags given here are trusted already)")
    space = parse_space(fields)
    if space.base.devices != 1 or space.base.distributed:
        raise ConfigError("a sweep runs on one device; drop --devices / --distributed")
    if how["ray"] is not None and driver_for(space.base.env, space.base.driver) == "fused":
        raise ConfigError(
            f"--ray runs host-driver members as Ray tasks; {space.base.env} runs fused, in one "
            "program here: drop --ray, or add --driver host"
        )
    combos = combinations(
        space, grid="grid" in opts, samples=count(opts, "random", None), seed=count(opts, "sample-seed", 0, least=0)
    )
    plan = Plan(space, tuple(combos), count(opts, "seeds", 4), **how)
    check_envs([space.base])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return plan, Path(text(opts, "out") or f"sweeps/{space.base.env.replace('/', '_')}__{stamp}"), opts


def resume_plan(fields: dict[str, str], opts: dict, how: dict) -> tuple[Any, Path, dict]:
    """(Plan, folder, options) of ppox sweep --resume DIR: the plan in DIR/sweep.json, checked; an entry point
    env or a Ray address it names is used only when --env / --ray repeat it, or with --trust-run-config."""
    from ppox.errors import ConfigError
    from ppox.experiments.sweep_folder import check_envs, load_plan

    if set(fields) - {"env"} or set(opts) - RESUMED_WITH:
        raise ConfigError(
            "--resume continues a sweep with its own settings; drop "
            + " ".join(
                ["--" + k.replace("_", "-") for k in fields if k != "env"]
                + ["--" + k for k in opts if k not in RESUMED_WITH]
            )
        )
    folder = Path(text(opts, "resume", ""))
    plan = load_plan(folder, fields.get("env"), "trust-run-config" in opts, **how)
    check_envs(plan.config(i) for i in range(len(plan.combos)))
    return plan, folder, opts


def run(args: list[str]) -> int:
    """ppox sweep: plan (every check before any work), run the members, write and print the report."""
    from ppox.errors import ConfigError

    if "-h" in args or "--help" in args:
        print(USAGE)
        return 0
    try:
        plan, folder, opts = sweep_plan(args)
    except ConfigError as err:
        return fail("sweep", str(err))
    try:
        threshold = float(opts["threshold"]) if "threshold" in opts else None
    except ValueError:
        threshold = math.nan
    if threshold is not None and not math.isfinite(threshold):
        return fail("sweep", f"--threshold must be a number, got {str(opts['threshold'])[:40]!r}")
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
        return fail("sweep", str(err))
    finally:
        cancel()
    print((report / "table.md").read_text())
    print(f"report: {report}/ (table.md, results.json, final_vs_*.png, best_worst.png, best_config.json)")
    if not finished:
        print(f"ppox sweep: stopped; to continue: ppox sweep --resume {folder}", file=sys.stderr)
    return 0
