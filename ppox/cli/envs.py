"""``ppox envs``: list the environments ppox can train on, by family, with their presets."""

from __future__ import annotations

from ppox.cli.flags import fail

SUMMARY = "list the environments ppox can train on"


def run(args: list[str]) -> int:
    """ppox envs: each env family's sections (ppox.envs.families.listing); curated ids say where no preset is."""
    from ppox.config.presets import PRESETS
    from ppox.envs.families import listing

    if args:
        return fail("envs", f"takes no arguments, got {' '.join(args)}")
    for section in listing():
        extra = f' (pip install "ppox[{section.extra}]")' if section.extra else ""
        if not section.curated:
            print(f"{section.title}{extra}: " + ", ".join(section.ids))
            continue
        print(f"{section.title}{extra}:")
        for env_id in section.ids:
            print(f"  {env_id}{'' if env_id in PRESETS else '  (no preset)'}")
    return 0
