"""What a file may name: nothing read from a policy or checkpoint runs code or reaches a host by itself.

An entry point ('module:Class', imported to make the env) or a Ray address in a config read from a file
is used only when the user confirms it: by repeating it (``--env``, ``--ray``; ``env=``, ``ray=`` in Python)
or by trusting the file (``--trust-run-config``; ``trust_run_config=True``, ``trust_env=True`` for
``ppox.evaluate``). Registered env ids are safe: their code is what the installed packages register.
"""

from __future__ import annotations

from ppox.config.config import Config
from ppox.envs.registry import is_entry_point
from ppox.errors import ConfigError
from ppox.utils.naming import named


def confirm_file_config(
    config: Config,
    source,
    env=None,
    ray: str | None = None,
    trust: bool = False,
    uses_ray: bool = True,
    trust_argument: str = "trust_run_config",
) -> None:
    """ConfigError unless the user confirmed what, in a config read from ``source``, would import code
    (an entry point env) or reach another host (a Ray address): by repeating it, or by trusting the file.
    The message names flags under a ppox command, else the Python arguments (``trust_argument``: the
    caller's name for ``trust``)."""
    if trust:
        return
    trusting = named("--trust-run-config", f"{trust_argument}=True")
    if is_entry_point(config.env) and env is None:
        raise ConfigError(
            f"{source} names the env {config.env!r}, an entry point: importing it runs its code. "
            f"If you trust it, repeat it: {named(f'--env {config.env}', f'env={config.env!r}')} (or pass {trusting})"
        )
    if isinstance(env, str) and env != config.env:
        given = named(f"--env {env}", f"env={env!r}")
        raise ConfigError(f"{given} is not the env of {source} ({config.env}); repeat that one to confirm it")
    if uses_ray and config.ray not in (None, "local") and ray != config.ray:
        raise ConfigError(
            f"{source} asks for the Ray cluster at {config.ray!r}. If you trust it, repeat it: "
            f"{named(f'--ray {config.ray}', f'ray={config.ray!r}')} (or pass {trusting})"
        )
