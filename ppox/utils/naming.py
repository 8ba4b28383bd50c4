"""How a message names an input: the flag on the command line (``--trust-run-config``), the argument in
Python (``trust_run_config=True``). ``ppox.cli.main`` runs each command inside ``on_command_line()``; code
that builds a message asks ``named(flag, argument)``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterator

_commands_running = [0]  # ppox commands running in this process (a list: one mutable count, seen by every thread)
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


@contextlib.contextmanager
def on_command_line() -> Iterator[None]:
    """Inside, messages name flags; outside (a call from Python), arguments."""
    _commands_running[0] += 1
    try:
        yield
    finally:
        _commands_running[0] -= 1


def command_line() -> bool:
    """Whether a ppox command is running (``ppox.cli.main``), rather than a call from Python."""
    return _commands_running[0] > 0


def named(flag: str, argument: str) -> str:
    """``flag`` when a ppox command is running, else ``argument``: ``named("--trust-run-config",
    "trust_run_config=True")``."""
    return flag if command_line() else argument


def with_fields(message: str, fields: Collection[str]) -> str:
    """``message``, and from Python the fields its flags set: "--num-envs must be ... (Config field num_envs)".
    A flag is its field with '-' for '_' (``--no-X`` sets X); names that are no field are left alone."""
    if command_line() or "(Config field" in message:  # (a message that went through here once)
        return message
    names: list[str] = []
    for flag in FLAG.findall(message):
        name = flag.replace("-", "_")
        name = name[3:] if name not in fields and name.startswith("no_") else name
        if name in fields and name not in names:
            names.append(name)
    if not names:
        return message
    return f"{message} (Config field{'s' if len(names) > 1 else ''} {', '.join(names)})"
