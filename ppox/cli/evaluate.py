"""``ppox eval RUN``: run a saved policy for some episodes and print the mean and std of the return."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tyro

from ppox.cli.flags import fail, parse_flags

SUMMARY = "run a saved policy: ppox eval RUN [--episodes N] [--deterministic] [--video] [--opponent random|RUN]"


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
    """Record every episode as mp4 into RUN/videos (Gymnasium environments, MinAtar's grids, PettingZoo envs that
    render rgb_array frames; needs ppox[video])."""
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
    opponent: str | None = None
    """Two-player pgx games: play --episodes games against 'random' (the uniformly random legal player) or another
    run's policy of the same game, who starts drawn at even odds, and print wins, draws, losses and the score."""


def run(args: list[str]) -> int:
    """ppox eval: load the policy, run the episodes, print one line."""
    from ppox.errors import CheckpointError, ConfigError

    opts = parse_flags(Eval, args, "ppox eval")
    if opts.seed < 0 or opts.seed_index < 0:
        return fail("eval", f"--seed and --seed-index must be integers >= 0, got {opts.seed} and {opts.seed_index}")
    if opts.max_episode_steps is not None and opts.max_episode_steps < 1:
        return fail("eval", f"--max-episode-steps must be a positive integer, got {opts.max_episode_steps}")
    from ppox.acting.agent_episodes import is_pettingzoo_env
    from ppox.acting.evaluation import evaluate
    from ppox.acting.policy import load

    try:
        policy = load(opts.run, seed_index=opts.seed_index)
        if opts.opponent is not None:
            return _match(policy, opts)
        folder = Path(opts.run) if Path(opts.run).is_dir() else Path(opts.run).parent
        if is_pettingzoo_env(policy.config.env) and opts.env is None:
            return _agents(policy, opts, folder)
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
        return fail("eval", str(err))
    mode = "deterministic" if opts.deterministic else "stochastic"
    print(
        f"{policy.config.env}: {'team ' if policy.spec.agents else ''}return {returns.mean():.2f} +- "
        f"{returns.std():.2f} over {opts.episodes} "
        f"episodes ({mode} policy)" + (f"; videos in {folder / 'videos'}" if opts.video else "")
    )
    return 0


def _agents(policy, opts: Eval, folder: Path) -> int:
    """ppox eval of a PettingZoo run: whole games, the policy acting for every agent; team and per-agent returns."""
    from ppox.acting.agent_episodes import evaluate_agents

    result = evaluate_agents(
        policy,
        episodes=opts.episodes,
        deterministic=opts.deterministic,
        seed=opts.seed,
        video_folder=folder / "videos" if opts.video else None,
        max_episode_steps=opts.max_episode_steps,
    )
    mode = "deterministic" if opts.deterministic else "stochastic"
    agents = ", ".join(f"{a} {r.mean():.2f}" for a, r in result.by_agent.items())
    print(
        f"{policy.config.env}: team return {result.team.mean():.2f} +- {result.team.std():.2f} over {opts.episodes} "
        f"episodes ({mode} policy); per agent: {agents}" + (f"; videos in {folder / 'videos'}" if opts.video else "")
    )
    return 0


def _match(policy, opts: Eval) -> int:
    """ppox eval --opponent: the policy's record over --episodes games (sampled moves unless --deterministic)."""
    from ppox.acting.matches import play_match
    from ppox.acting.policy import load

    opponent = opts.opponent if opts.opponent == "random" else load(opts.opponent, seed_index=opts.seed_index)
    record = play_match(policy, opponent, games=opts.episodes, seed=opts.seed, deterministic=opts.deterministic)
    print(f"{policy.config.env} against {opts.opponent}: {record}")
    return 0
