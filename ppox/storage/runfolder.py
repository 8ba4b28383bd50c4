"""The run folder: claimed by one run (a taken name refused, default names never colliding), owned by one
live writer (RUN/.lock), and removed again if the run stopped before it held anything of value.

A new run claims its folder atomically, before it writes anything: it holds (flock) a lock file of its own
and links it into place as RUN/.lock, which fails if a lock file is there already; so a lock file that
exists and is not held has no live owner. A process removes only what it made: the folder if it made it,
else its own files in it. A folder left by a run that stopped before its first checkpoint (a kill -9) is
taken over by the next run of its name."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import IO, ClassVar

from ppox.config.config import Config
from ppox.errors import ConfigError
from ppox.language.run_config import LMRunConfig
from ppox.storage.checkpoint import CHECKPOINT_DIR

AnyRunConfig = Config | LMRunConfig  # the settings of a run on environments, or of a language-model run
LOCK_FILE = ".lock"
DEAD_START_FILES = {"config.json", "metrics.csv", ".write-test"}  # and tb/: what a run writes before a checkpoint
# The temporary files of ppox's atomic writes (utils/files.py: mkstemp(prefix=".NAME.", suffix=".tmp")).
TEMPORARY = re.compile(
    r"\.(config\.json|metrics\.csv|summary\.json|policy\.safetensors|\.lock|best\.json|best\.safetensors"
    r"|update_\d{8}\.safetensors)\.[a-z0-9_]{8}\.tmp"
)
MODEL_TEMPORARY = re.compile(r"\.[\w.-]+\.(json|safetensors)\.[a-z0-9_]{8}\.tmp")  # of RUN/model (a language model)
_CLAIMED: dict[str, bool] = {}  # folders this process claimed for a new run -> whether it made the folder


def make_run_path(config: AnyRunConfig) -> Path:
    """The new run's folder, created and claimed (RUN/.lock held): runs/ENV__SEED__YYYYmmdd-HHMMSS (with -2,
    -3, ... if that is taken) or runs/--run-name, which must not hold a run already. A clear error if it
    cannot be made, or is taken."""
    if config.run_name is not None:
        path = Path(config.run_dir) / config.run_name
        _claim(path, _make_folder(path), config)
        return path
    env = re.sub(r"[^\w.-]+", "-", config.env)  # ALE/Pong-v5, package.module:Class: one folder name
    stem = f"{env}__{config.seed}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = Path(config.run_dir) / (stem if i == 1 else f"{stem}-{i}")
        if _make_folder(path):
            _claim(path, True, config)
            return path
    raise ConfigError(f"{config.run_dir}: could not find a free run folder name for {stem}")


def _make_folder(path: Path) -> bool:
    """mkdir: True if this call made the folder, False if it was there; ConfigError if it cannot be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir()
        return True
    except FileExistsError:
        if path.is_dir():
            return False
        raise ConfigError(f"cannot write the run folder {path}: it is a file; choose another --run-dir") from None
    except OSError as err:
        raise ConfigError(f"cannot write the run folder {path}: {err.strerror}; choose another --run-dir") from None


def _claim(path: Path, made: bool, config: AnyRunConfig) -> None:
    """Hold ``path``'s lock for a new run, or ConfigError (nothing made, nothing removed) if it is taken."""
    name = f"--run-name {config.run_name}: " if config.run_name is not None else ""
    try:  # (a lock file there already: its owner must be gone)
        lock = RunLock.new(path) or RunLock(path, busy="it already holds a run; choose another name")
    except OSError as err:
        raise ConfigError(f"cannot write the run folder {path}: {err.strerror}; choose another --run-dir") from None
    except ConfigError as err:
        raise ConfigError(f"{name}{err}") from None
    leftovers = dead_start(path)
    if leftovers is None:
        if lock.made_file:
            (path / LOCK_FILE).unlink(missing_ok=True)
        lock.release()
        raise ConfigError(
            f"{name}{path} already holds a run; choose another name, or continue that run with: "
            f"{resume_command(config, path)}"
        )
    if [e for e in leftovers if not TEMPORARY.fullmatch(e.name)]:
        print(f"ppox: {path} held a run that stopped before its first checkpoint: starting afresh", file=sys.stderr)
    _remove(leftovers)
    _CLAIMED[run_key(path)] = made


def resume_command(config: AnyRunConfig, path: Path) -> str:
    return f"ppox {'lm train' if isinstance(config, LMRunConfig) else 'train'} --resume {path}"


def holds_run(path: Path) -> bool:
    """Whether ``path`` holds a run that a new run of its name may not take: anything but nothing, or what a
    run that stopped before its first checkpoint left (``dead_start``). For an early check; the claim decides."""
    return path.is_dir() and dead_start(path) is None


def dead_start(path: Path) -> list[os.DirEntry] | None:
    """What a run that stopped before its first checkpoint left in ``path`` (RUN/.lock aside), or None if
    the folder holds anything else: a checkpoint, a policy, a file or a link that ppox does not write there."""
    entries = [e for e in os.scandir(path) if e.name != LOCK_FILE]
    for entry in entries:
        if entry.is_symlink():
            return None
        if entry.is_file() and (entry.name in DEAD_START_FILES or TEMPORARY.fullmatch(entry.name)):
            continue
        if entry.is_dir() and entry.name == CHECKPOINT_DIR:
            if all(TEMPORARY.fullmatch(e.name) and not e.is_symlink() for e in os.scandir(entry.path)):
                continue
        elif entry.is_dir() and entry.name == "tb":
            continue
        return None
    return entries


def _remove(entries) -> None:
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)


def run_key(path: Path) -> str:
    return os.path.abspath(path)


def remove_temporary_files(path: Path) -> None:
    """Remove the temporary files that killed writes of ppox left in the run folder, its checkpoints and its
    language model (RUN/model): only ppox's own, by name, never through a link. Call with the run's lock held."""
    path = Path(path)
    for folder, names in ((path, TEMPORARY), (path / CHECKPOINT_DIR, TEMPORARY), (path / "model", MODEL_TEMPORARY)):
        if folder.is_dir() and not folder.is_symlink():
            _remove([e for e in os.scandir(folder) if names.fullmatch(e.name) and e.is_file(follow_symlinks=False)])


def take_run(path: Path) -> RunLock:
    """Hold the run's lock (``RunLock.hold``), then remove the temporary files that killed writes left."""
    lock = RunLock.hold(path)
    try:
        remove_temporary_files(path)
    except BaseException:
        lock.release()
        raise
    return lock


def discard_if_empty(path: Path | None) -> None:
    """Remove what a new run made (the folder if it made it, else its files in it) if the run stopped before
    it held anything of value (no checkpoint, no metrics row): a failed or interrupted start leaves nothing
    behind. A folder this process did not claim, or that another process holds by now, is left alone."""
    made = _CLAIMED.pop(run_key(path), None) if path is not None else None
    if path is None or made is None or not path.is_dir():
        return
    try:
        lock = RunLock.hold(path)
    except (ConfigError, OSError):
        return
    try:
        if any((path / CHECKPOINT_DIR).glob("*.safetensors")):
            return
        metrics = path / "metrics.csv"
        if metrics.exists() and len(metrics.read_bytes().splitlines()) > 1:
            return
        if made:
            shutil.rmtree(path, ignore_errors=True)
        else:
            _remove(list(os.scandir(path)))
    finally:
        lock.release()


def _open_lock_file(path: Path) -> IO[str]:
    """The lock file, made if missing; never through a link (which would truncate the file it points to)."""
    try:
        return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644), "a+")
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ConfigError(f"{path} is a link; ppox writes no lock through a link: remove it") from None
        raise


class RunLock:
    """RUN/.lock, held (flock) while a process writes the run: a second writer is refused at once."""

    held: ClassVar[dict[str, RunLock]] = {}  # the run folders whose lock this process holds

    def __init__(self, path: Path, file: IO[str] | None = None, busy: str = "wait for it to finish or stop it first"):
        """Hold ``path``'s lock file (made if missing), or ConfigError naming the live process that holds it
        (and then ``busy``: what to do); ``file``: a lock file already held (``RunLock.new``)."""
        self.path, self.made_file = Path(path), file is not None
        if file is None:
            file = _open_lock_file(self.path / LOCK_FILE)
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                owner = file.read().strip() or "?"
                file.close()
                raise ConfigError(f"{path} is being written by another ppox process (pid {owner}); {busy}") from None
        self.file = file
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        RunLock.held[run_key(self.path)] = self

    @classmethod
    def new(cls, path: Path) -> RunLock | None:
        """RUN/.lock made by this process and held, or None if a lock file is there already."""
        fd, tmp = tempfile.mkstemp(dir=path, prefix=f".{LOCK_FILE}.", suffix=".tmp")
        file = os.fdopen(fd, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (nobody else knows the file yet)
            try:
                os.link(tmp, Path(path) / LOCK_FILE)  # atomic: fails if there is one
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: made exclusively, then held
                file.close()
                file = os.fdopen(os.open(Path(path) / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), "a+")
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (FileExistsError, BlockingIOError):
            file.close()
            return None
        except BaseException:
            file.close()
            raise
        finally:
            Path(tmp).unlink(missing_ok=True)
        return cls(path, file)

    @classmethod
    def hold(cls, path: Path) -> RunLock:
        """The lock of ``path`` that this process holds already, else a new hold of it."""
        return cls.held.get(run_key(path)) or cls(path)

    def release(self) -> None:
        if RunLock.held.get(run_key(self.path)) is self:
            del RunLock.held[run_key(self.path)]
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
