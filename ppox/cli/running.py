"""What the commands that train share: the compilation cache on disk, and a run's end as one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ppox.cli.flags import fail


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk so that a repeated run skips XLA compilation.

    The folder is $PPOX_CACHE_DIR (default ~/.cache/ppox/xla); an empty PPOX_CACHE_DIR turns it off.
    """
    folder = os.environ.get("PPOX_CACHE_DIR", str(Path.home() / ".cache" / "ppox" / "xla"))
    if not folder:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run_reported(command: str, start: Callable[[], Any], report: Callable[[Any], None]) -> int:
    """Run ``start()`` (a training) with the compilation cache and ``report`` its result. A run that diverged or
    filled the disk stops with status 1, bad input or files with 2; each is one line. An error in the user's
    code (the env, the reward, a callback) stops with status 1: it names that code and shows its frames."""
    from ppox.errors import CheckpointError, ConfigError, RunWriteError, UserCodeError

    enable_compilation_cache()
    try:
        result = start()
    except UserCodeError as err:
        print(user_code_report(command, err), file=sys.stderr)
        return 1
    except (FloatingPointError, RunWriteError) as err:  # diverged, or a full disk: not bad input, a clear stop
        print(f"ppox {command}: stopped: {err}", file=sys.stderr)
        return 1
    except (OSError, ConfigError, CheckpointError) as err:
        return fail(command, str(err))
    report(result)
    return 0


def user_code_report(command: str, err: Any) -> str:
    """What ``ppox COMMAND`` says of an error in the user's code (a ``UserCodeError``): which code raised what,
    the traceback of the user's own frames, and where the run stands (the checkpoint, the command to resume)."""
    done = (
        f"{err.saved} updates were completed and are checkpointed; once it is fixed, continue with: {err.resume}"
        if err.saved
        else "no update had completed: nothing was saved"
    )
    return (
        f"ppox {command}: stopped: {err.where} raised an error (in your code, not ppox's):\n"
        f"Traceback (your frames, most recent call last):\n{err.user_frames()}ppox {command}: {done}"
    )
