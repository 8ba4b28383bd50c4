"""``ppox explain clip``: draw PPO's clipped objective against the probability ratio, and say what it does."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ppox.cli.flags import fail, parse_flags

SUMMARY = "draw the clipped objective: ppox explain clip [--eps 0.2]"


@dataclasses.dataclass(frozen=True)
class ExplainClip:
    """Draw PPO's clipped objective against the probability ratio, for A > 0 and A < 0."""

    eps: float = 0.2
    """The clip range: ratios outside [1-eps, 1+eps] stop contributing gradient in the direction of A."""
    out: str = "ppox-explain/clip"
    """Output path without suffix; .png and .svg are written."""


def run(args: list[str]) -> int:
    """ppox explain clip: the figure and a paragraph on what clipping does."""
    from ppox.experiments.plots import explain_clip

    if not args or args[0] != "clip":
        return fail("explain", "what to explain: ppox explain clip [--eps 0.2]")
    opts = parse_flags(ExplainClip, args[1:], "ppox explain clip")
    if not (math.isfinite(opts.eps) and 0 < opts.eps < 1):
        return fail("explain", f"--eps must lie in (0, 1), got {opts.eps}")
    try:
        paths = explain_clip(opts.eps, Path(opts.out))
    except OSError as err:
        return fail("explain", f"cannot write {opts.out}: {err.strerror or err}; choose another --out")
    print(
        f"L(r) = min(r A, clip(r, {1 - opts.eps:g}, {1 + opts.eps:g}) A). For A > 0 the objective stops rising once "
        f"r > {1 + opts.eps:g}; for A < 0 it stops falling once r < {1 - opts.eps:g}: there the sample's gradient is "
        "zero, so one batch cannot push the policy far from the one that collected it.\nwrote "
        + ", ".join(map(str, paths))
    )
    return 0
