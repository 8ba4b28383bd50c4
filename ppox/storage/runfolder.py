"""The run folder: made for one run (a taken name refused, default names never colliding), owned by one
live writer (RUN/.lock), and removed again if the run stopped before it held anything of value."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

from ppox.config.config import Config
from ppox.errors import ConfigError
from ppox.language.run_config import LMRunConfig
from ppox.storage.checkpoint import CHECKPOINT_DIR

AnyRunConfig = Config | LMRunConfig  # the settings of a run on environments, or of a language-model run
LOCK_FILE = ".lock"


def make_run_path(config: AnyRunConfig) -> Path:
    """The new run's folder, created: runs/ENV__SEED__YYYYmmdd-HHMMSS (with -2, -3, ... if that is taken) or
    runs/--run-name, which must not hold a run already. A clear error if it cannot be made."""
    if config.run_name is not None:
        path = Path(config.run_dir) / config.run_name
        if path.is_dir() and any(path.iterdir()):
            raise ConfigError(
                f"--run-name {config.run_name}: {path} already holds a run; choose another name, or "
                f"continue that run with: ppox train --resume {path}"
            )
        _make_folder(path, exist_ok=True)
        return path
    env = re.sub(r"[^\w.-]+", "-", config.env)  # ALE/Pong-v5, package.module:Class: one folder name
    stem = f"{env}__{config.seed}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = Path(config.run_dir) / (stem if i == 1 else f"{stem}-{i}")
        if _make_folder(path, exist_ok=False):
            return path
    raise ConfigError(f"{config.run_dir}: could not find a free run folder name for {stem}")


def discard_if_empty(path: Path | None) -> None:
    """Remove a new run's folder if the run stopped before it held anything of value (no checkpoint, no
    metrics row): a failed or interrupted start leaves no empty folder behind."""
    if path is None or not path.is_dir() or any((path / CHECKPOINT_DIR).glob("*.safetensors")):
        return
    metrics = path / "metrics.csv"
    if metrics.exists() and len(metrics.read_bytes().splitlines()) > 1:
        return
    shutil.rmtree(path, ignore_errors=True)


def _make_folder(path: Path, exist_ok: bool) -> bool:
    """mkdir (False if it exists and ``exist_ok`` is False), checked writable; ConfigError if it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(exist_ok=exist_ok)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except FileExistsError:
        return False
    except OSError as err:
        raise ConfigError(f"cannot write the run folder {path}: {err.strerror}; choose another --run-dir") from None
    return True


class RunLock:
    """RUN/.lock, held (flock) while a process writes the run: a second writer is refused at once."""

    def __init__(self, path: Path):
        self.file = open(path / LOCK_FILE, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            owner = self.file.read().strip() or "?"
            self.file.close()
            raise ConfigError(
                f"{path} is being written by another ppox process (pid {owner}); wait for it to finish or stop it first"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
