"""``ppox plot RUN [RUN ...]``: learning curves and diagnostics of run folders, overlaid, as PNG and SVG."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tyro

from ppox.cli.flags import fail, parse_flags

SUMMARY = "curves and diagnostics of run folders: ppox plot RUN [RUN ...] (PNG and SVG)"


@dataclasses.dataclass(frozen=True)
class Plot:
    """Learning curves and diagnostics of run folders, overlaid, as PNG and SVG."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run folders (each with a metrics.csv)."""
    out: str | None = None
    """Output path without suffix (default: RUN/plots/metrics for one run, ppox-plots/compare for several)."""


def run(args: list[str]) -> int:
    """ppox plot: draw the runs' curves and print the files written."""
    from ppox.experiments.plots import plot_runs

    opts = parse_flags(Plot, args, "ppox plot")
    if not opts.runs:
        return fail("plot", "name at least one run folder: ppox plot runs/ENV__SEED__TIME [...]")
    runs = [Path(r) for r in opts.runs]
    out = (
        Path(opts.out)
        if opts.out
        else (runs[0] / "plots" / "metrics" if len(runs) == 1 else Path("ppox-plots") / "compare")
    )
    try:
        paths = plot_runs(runs, out)
    except (OSError, ValueError) as err:
        return fail("plot", str(err))
    print("wrote " + ", ".join(map(str, paths)))
    return 0
