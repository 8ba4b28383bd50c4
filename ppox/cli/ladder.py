"""``ppox ladder``: build PPO up from REINFORCE one repair at a time on an env; write a report folder."""

from __future__ import annotations

import dataclasses
import json
import sys

from ppox.cli.flags import fail, parse_flags
from ppox.cli.running import enable_compilation_cache

SUMMARY = "PPO built up from REINFORCE, one repair per rung: ppox ladder --env ID --seeds N"


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


def run(args: list[str]) -> int:
    """ppox ladder: check the preset, run the rungs, print the table and where the report is."""
    from ppox.config.config import Config, ConfigError
    from ppox.experiments.ladder import run_ladder

    opts = parse_flags(Ladder, args, "ppox ladder")
    if opts.seeds < 1:
        return fail("ladder", f"--seeds must be a positive integer, got {opts.seeds}")
    try:  # (the seeds are vmapped on the fused driver and run one by one on the host driver)
        Config.preset(
            opts.env, **({"total_timesteps": opts.total_timesteps} if opts.total_timesteps is not None else {})
        )
    except ConfigError as err:
        return fail("ladder", str(err))
    enable_compilation_cache()
    try:
        out = run_ladder(opts.env, opts.seeds, opts.out, opts.total_timesteps, opts.threshold, opts.progress)
    except (OSError, ConfigError) as err:
        return fail("ladder", str(err))
    print((out / "table.md").read_text())
    if json.loads((out / "results.json").read_text())["interrupted"]:
        print("ppox ladder: stopped by a signal; the report holds the rungs that finished", file=sys.stderr)
    print(f"report: {out}/ (curves.png, kl_and_clip_fraction.png, table.md, results.json)")
    return 0
