"""SIGINT and SIGTERM, answered within seconds at any moment.

From Python (``ppox.train`` in a script), a run loop listens only while it runs (``StopOnSignal``): the
first signal stops it at the end of the chunk in flight, with a checkpoint; a second raises
KeyboardInterrupt. The command line (``install``) listens from its first line. Its main-thread handler
only raises a flag (an exception raised at an arbitrary bytecode can land in a garbage-collection
callback and be swallowed); a watcher thread reads the signals from a wakeup pipe and acts, so that even
a main thread stuck in a long compiled call (compilation, a jitted update, an env step) is answered:

- while there is work at stake (a run loop past its first chunk), the first signal asks the work to stop at
  the next chunk boundary (about two seconds) and save itself;
- work that can save itself from any thread (a ladder's report of the rungs that finished, while the rung in
  flight, which would be dropped anyway, is still compiling or running) is saved by the watcher at once,
  and the process exits with the status that the saver returns;
- otherwise (imports, env creation, the first compilation, evaluation) there is nothing to save: the
  process exits at once (status 128 + signal number) after the registered clean-ups (e.g. removing a
  run folder that holds nothing yet);
- a second signal always exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable


class _State:
    def __init__(self):
        self.installed = False  # the command line's handlers are in place
        self.requested = False  # a signal arrived
        self.count = 0
        self.at_stake = 0  # how many holders of work worth saving there are (nested: a ladder, its run)
        self.savers: list[Callable[[], int]] = []  # of the holders that can save from the watcher thread
        self.cleanups: list[Callable[[], None]] = []  # run before a hard exit


STATE = _State()


def install() -> None:
    """Listen to SIGINT and SIGTERM for the rest of the process (the command line calls this first)."""
    if STATE.installed or threading.current_thread() is not threading.main_thread():
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handle)
    threading.Thread(target=_watch, args=(read_end,), name="ppox-signals", daemon=True).start()
    STATE.installed = True


def on_hard_exit(cleanup: Callable[[], None]) -> Callable[[], None]:
    """Run ``cleanup`` if the process has to exit without unwinding; returns a function that cancels it."""
    STATE.cleanups.append(cleanup)
    return lambda: STATE.cleanups.remove(cleanup) if cleanup in STATE.cleanups else None


@contextlib.contextmanager
def work_at_stake(save: Callable[[], int] | None = None):
    """While active, a first signal asks the work to stop and save itself instead of exiting at once.

    With ``save`` (callable from any thread, returns an exit status), the watcher calls it at once and exits
    with its status, unless work without a saver (a run that checkpoints) is also at stake."""
    STATE.at_stake += 1
    if save is not None:
        STATE.savers.append(save)
    try:
        yield
    finally:
        STATE.at_stake -= 1
        if save is not None:
            STATE.savers.remove(save)


def _handle(signum, frame) -> None:
    """The main thread's handler: a flag that the run loop reads (the watcher does the rest)."""
    STATE.requested = True


def _watch(fd: int) -> None:
    while True:
        for signum in os.read(fd, 64):
            STATE.count += 1
            STATE.requested = True
            name = signal.Signals(signum).name
            if STATE.count > 1:
                _say(f"ppox: {name} again: stopping at once")
                _hard_exit(signum)
            elif STATE.savers and STATE.at_stake == len(STATE.savers):
                _save_and_exit(STATE.savers[-1])
            elif STATE.at_stake:
                _say(
                    f"ppox: {name} received: finishing the work in flight and saving it (send it again to stop at once)"
                )
            else:
                _say(f"ppox: {name} received: stopping (nothing to save yet)")
                _hard_exit(signum)


def _save_and_exit(save: Callable[[], int]) -> None:
    try:
        status = save()
    except Exception as err:  # noqa: BLE001  (say it, and exit as a signal would)
        _say(f"ppox: saving after the signal failed: {err}")
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _hard_exit(signum: int) -> None:
    for cleanup in list(STATE.cleanups):
        try:
            cleanup()
        except Exception:  # noqa: BLE001  (exiting anyway)
            pass
    sys.stderr.flush()
    os._exit(128 + signum)


def _say(line: str) -> None:
    print(f"\n{line}", file=sys.stderr, flush=True)


class StopOnSignal:
    """While a run loop is active: ``requested`` says a signal asked it to stop at the next safe point.

    Under the command line's handlers it reads their state (and ``work_at_stake`` tells them that a signal
    should now wait for a checkpoint). From Python it installs its own handlers while active (main thread
    only): the first signal asks the loop to stop, a second raises KeyboardInterrupt."""

    def __init__(self):
        self._requested = False
        self._previous = {}
        self._holding = False

    @property
    def requested(self) -> bool:
        return STATE.requested if STATE.installed else self._requested

    def work_at_stake(self) -> None:
        """The loop has done updates worth a checkpoint: from now on a first signal waits for it."""
        if not self._holding:
            STATE.at_stake += 1
            self._holding = True

    def _handle(self, signum, frame):
        if self._requested:
            raise KeyboardInterrupt
        self._requested = True
        _say(
            f"ppox: {signal.Signals(signum).name} received: finishing the work in flight and saving a checkpoint "
            "(send it again to stop at once)"
        )

    def __enter__(self):
        if not STATE.installed and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        if self._holding:
            STATE.at_stake -= 1
            self._holding = False
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
