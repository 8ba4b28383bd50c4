"""The command line: ``ppox train [FLAGS]``, ``ppox eval``, ``ppox envs``, ``ppox ladder``, ``ppox plot``, ...

``COMMANDS`` maps each command to its module, which holds ``SUMMARY`` (its line in ``ppox --help``) and
``run(args) -> exit status``; a new command is a new module and one line here. Bad input is a one-line
error and exit code 2; the flags are parsed by ``ppox.cli.flags``.

Each command imports the ppox modules it needs when it runs (JAX, gymnax, matplotlib and friends take
seconds to import), so that ``ppox --help`` and a mistyped command answer at once: the one place in ppox
where imports sit inside functions for another reason than an optional dependency. This module imports
nothing heavy, so that the program listens to signals (``main``) before its first heavy import.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from ppox.cli.flags import FlagError, fail
from ppox.utils import signals
from ppox.utils.naming import on_command_line

COMMANDS = {  # name -> the module with SUMMARY and run(args)
    "train": "ppox.cli.train",
    "eval": "ppox.cli.evaluate",
    "envs": "ppox.cli.envs",
    "ladder": "ppox.cli.ladder",
    "plot": "ppox.cli.plot",
    "explain": "ppox.cli.explain",
    "sweep": "ppox.cli.sweep",
    "tune": "ppox.cli.tune",
    "lm": "ppox.cli.lm",
}


def usage() -> str:
    """The text of ``ppox --help``: each command with its module's summary."""
    lines = [f"  {name:<7} {importlib.import_module(module).SUMMARY}" for name, module in COMMANDS.items()]
    return (
        "usage: ppox COMMAND [ARGS]\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\nexample: ppox train --env Acrobot-v1 --total-timesteps 500000 --seeds 4\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``ppox COMMAND ARGS`` (``argv``, default the program's arguments); the exit status."""
    if argv is None:  # the program itself (not a call from Python, whose process keeps its own handlers)
        signals.install()  # before the first heavy import
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        from ppox.errors import closest

        hint = closest(command, COMMANDS)
        return fail(command, f"unknown command{'; did you mean ' + hint[0] + '?' if hint else ''}\n{usage()}")
    try:
        with on_command_line():  # (messages name flags, not Python arguments)
            return importlib.import_module(COMMANDS[command]).run(rest)
    except FlagError as err:
        return fail(command, str(err))
    except KeyboardInterrupt:
        print(f"ppox {command}: interrupted; what was saved before stays", file=sys.stderr, flush=True)
        return 130


def __getattr__(name: str) -> Any:
    """``ppox.cli.Eval``: the flags of ppox eval (imported on first use, as tyro is)."""
    if name == "Eval":
        return importlib.import_module("ppox.cli.evaluate").Eval
    raise AttributeError(f"module 'ppox.cli' has no attribute {name!r}")
