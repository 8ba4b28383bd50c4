"""``ppox envs``: list the environments ppox can train on, by family, with their presets."""

from __future__ import annotations

from ppox.cli.flags import fail

SUMMARY = "list the environments ppox can train on"


def run(args: list[str]) -> int:
    """ppox envs: the JAX-native ids, the memory tasks and masked games, Atari, gymnax and Gymnasium ids."""
    from ppox.config.presets import PRESETS
    from ppox.envs.registry import JAX_ENV_IDS, TASK_IDS, gymnasium_ids, gymnax_ids

    if args:
        return fail("envs", f"takes no arguments, got {' '.join(args)}")
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
