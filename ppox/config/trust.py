"""What a file may name: nothing read from a policy or checkpoint runs code or reaches a host by itself.

An entry point ('module:Class', imported to make the env) or a Ray address in a config read from a file
is used only when the user confirms it: by repeating it (``--env``, ``--ray``) or by trusting the file
(``--trust-run-config``). Registered env ids are safe: their code is what the installed packages register.
"""

from __future__ import annotations

from ppox.config.config import Config
from ppox.envs.registry import is_entry_point
from ppox.errors import ConfigError


def confirm_file_config(
    config: Config, source, env=None, ray: str | None = None, trust: bool = False, uses_ray: bool = True
) -> None:
    """ConfigError unless the user confirmed what, in a config read from ``source``, would import code
    (an entry point env) or reach another host (a Ray address): by repeating it, or by trusting the file."""
    if trust:
        return
    if is_entry_point(config.env) and env is None:
        raise ConfigError(
            f"{source} names the env {config.env!r}, an entry point: importing it runs its code. "
            f"If you trust it, repeat it: --env {config.env} (or pass --trust-run-config)"
        )
    if isinstance(env, str) and env != config.env:
        raise ConfigError(f"--env {env} is not the env of {source} ({config.env}); repeat that one to confirm it")
    if uses_ray and config.ray not in (None, "local") and ray != config.ray:
        raise ConfigError(
            f"{source} asks for the Ray cluster at {config.ray!r}. If you trust it, repeat it: "
            f"--ray {config.ray} (or pass --trust-run-config)"
        )
