"""Issue 32, items 3, 5 and 10: a run folder is claimed atomically before anything is written, a process
removes only what it made, a dead start does not block its name, and killed writes leave no temporary file
behind the next start."""

import os
import subprocess
import sys

import pytest

import ppox
from ppox.errors import ConfigError
from ppox.storage.runfolder import LOCK_FILE, RunLock, discard_if_empty, holds_run, make_run_path, take_run
from tests.helpers import QUICK, ROOT


def config(tmp_path, name="same"):
    return ppox.Config(**QUICK, run_dir=str(tmp_path), run_name=name)


def test_a_second_claim_of_an_empty_new_folder_is_refused(tmp_path):
    """The first run has made its folder and written nothing yet: a second run of the name is refused (it used
    to pass the check on the empty folder, and later, losing the lock, remove the first run's files)."""
    first = make_run_path(config(tmp_path))
    try:
        assert os.listdir(first) == [LOCK_FILE]  # the lock is the first thing in the folder
        with pytest.raises(ConfigError, match="being written by another ppox process.*already holds a run"):
            make_run_path(config(tmp_path))
        assert os.listdir(first) == [LOCK_FILE]
    finally:
        discard_if_empty(first)
    assert not first.exists()  # (made by this claim: removed again)


def test_a_claim_held_by_another_process_is_refused(tmp_path):
    """A live process (not this one) holds RUN/.lock: refused, naming its pid; nothing is removed."""
    folder = tmp_path / "same"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ppox.storage.runfolder import RunLock; "
         f"RunLock.new({str(folder)!r}); print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            make_run_path(config(tmp_path))
        discard_if_empty(folder)  # (not claimed by this process: left alone)
        assert (folder / LOCK_FILE).exists()
    finally:
        holder.kill()
        holder.wait()
    path = make_run_path(config(tmp_path))  # its owner gone: free (it held nothing else)
    discard_if_empty(path)


def test_discard_removes_only_what_this_process_made(tmp_path):
    """Another run's folder, without checkpoints or metrics rows yet, is never removed by this process."""
    other = tmp_path / "other"
    other.mkdir()
    held = RunLock(other)
    (other / "config.json").write_text("{}")
    (other / "metrics.csv").write_text("update\n")
    try:
        discard_if_empty(other)
        assert sorted(os.listdir(other)) == [LOCK_FILE, "config.json", "metrics.csv"]
    finally:
        held.release()


def test_a_failed_start_in_a_users_empty_folder_removes_only_its_own_files(tmp_path):
    """A claim of an existing empty folder (made by the user): a failed start removes its own files only."""
    folder = tmp_path / "mine"
    folder.mkdir()
    path = make_run_path(config(tmp_path, "mine"))
    (path / "config.json").write_text("{}")
    discard_if_empty(path)
    assert folder.is_dir() and os.listdir(folder) == []


def dead_start(folder, *extra):
    """What a run killed before its first checkpoint leaves (its lock file no longer held)."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "tb" / "seed_0").mkdir(parents=True)
    (folder / "tb" / "seed_0" / "events.out").write_bytes(b"x")
    (folder / "config.json").write_text("{}")
    (folder / "metrics.csv").write_text("update\n0\n1\n")
    (folder / LOCK_FILE).write_text("12345")
    for name in extra:
        (folder / name).write_text("")


def test_a_dead_start_is_taken_over(tmp_path, capsys):
    dead_start(tmp_path / "same")
    assert not holds_run(tmp_path / "same")
    path = make_run_path(config(tmp_path))
    assert "stopped before its first checkpoint: starting afresh" in capsys.readouterr().err
    assert os.listdir(path) == [LOCK_FILE]
    discard_if_empty(path)
    assert path.is_dir() and os.listdir(path) == []  # (the folder was there before this run: it stays)


@pytest.mark.parametrize("extra", ["notes.txt", "policy.safetensors", "checkpoints/update_00000001.safetensors",
                                   "link"])
def test_anything_but_a_dead_start_is_refused(tmp_path, extra):
    folder = tmp_path / "same"
    dead_start(folder)
    if extra == "link":
        (folder / "outside").mkdir()
        (folder / "tb").rename(folder / "outside" / "tb")
        (folder / "tb").symlink_to(folder / "outside" / "tb")
    else:
        (folder / extra).write_text("")
    before = sorted(str(p) for p in folder.rglob("*"))
    assert holds_run(folder)
    with pytest.raises(ConfigError, match="already holds a run"):
        make_run_path(config(tmp_path))
    assert sorted(str(p) for p in folder.rglob("*")) == before  # nothing made, nothing removed


def test_temporary_files_of_killed_writes_are_removed_at_the_next_start(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "model").mkdir()
    ours = [run / ".metrics.csv.ab12cd_3.tmp", run / ".policy.safetensors.zz99yy00.tmp",
            run / "checkpoints" / ".update_00000004.safetensors.k2j3h4g5.tmp",
            run / "model" / ".model.safetensors.abcdefgh.tmp", run / "model" / ".config.json.abcdefgh.tmp"]
    theirs = [run / ".notes.txt.ab12cd34.tmp", run / "data.tmp", run / "checkpoints" / "update_00000002.safetensors",
              run / "model" / "model.safetensors", run / "model" / ".vocab.txt.abcdefgh.tmp"]
    for path in ours + theirs:
        path.write_bytes(b"x")
    target = tmp_path / "target"
    target.write_text("keep")
    (run / ".config.json.qwertyui.tmp").symlink_to(target)  # a link with ppox's name: never followed
    take_run(run).release()
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in theirs) and target.read_text() == "keep"
    assert (run / ".config.json.qwertyui.tmp").is_symlink()


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    """RUN/.lock as a symlink to a user's file: refused in one line; the file keeps its content (opening the
    lock "a+" and truncating it used to empty the file the link points to)."""
    from ppox.errors import ConfigError
    from ppox.storage.runfolder import LOCK_FILE, RunLock

    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).symlink_to(precious)
    with pytest.raises(ConfigError, match="is a link"):
        RunLock(run)
    assert precious.read_text() == "keep me"
