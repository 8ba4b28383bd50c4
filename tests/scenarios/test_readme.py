"""The README's commands and Python example run (with small budgets), so that they stay true.

Placeholders (RUN folders, mypackage.envs:MyEnv, my_plugin:MyEnv-v0) become real ones; every `ppox train`
gets a few thousand steps instead of its full budget; `pip install` lines must name extras that exist.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib

import pytest

import ppox
from ppox.storage.checkpoint import list_checkpoints
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def block(after: str, language: str) -> str:
    start = README.index(after)
    return re.search(rf"```{language}\n(.*?)```", README[start:], re.S).group(1)


def quickstart_commands() -> list[str]:
    lines = []
    for line in block("## Quickstart", "bash").splitlines():
        command = line.split("  #")[0].strip()
        if command and not command.startswith("#"):
            lines.append(command)
    return lines


def run(command: list[str], cwd, env_vars=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PPOX_CACHE_DIR": "", **(env_vars or {})}
    return subprocess.run([sys.executable, "-m", "ppox.cli", *command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def interrupted_run(tmp_path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PPOX_CACHE_DIR": ""}
    proc = subprocess.Popen([sys.executable, "-m", "ppox.cli", "train", "--total-timesteps", "400000",
                             "--checkpoint-every", "4096", "--no-progress", "--run-dir", "runs", "--run-name", "cut"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list_checkpoints(tmp_path / "runs" / "cut"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    return "runs/cut"


def adapt(words: list[str], run_folder: str, second_run: str) -> list[str]:
    """The README's command with its placeholders filled in and a small budget."""
    words = [run_folder if w.startswith("runs/CartPole-v1__0__") else
             run_folder if w == "runs/RUN_A" else second_run if w == "runs/RUN_B" else
             "tests.toy_envs:Countdown" if w == "mypackage.envs:MyEnv" else
             "tests.fake_plugin:FakePlugin-v0" if w == "my_plugin:MyEnv-v0" else w for w in words]
    if words[0] == "train" and "--resume" not in words and "--help" not in words:
        steps = "4096" if "HalfCheetah-v5" in words else "16384"
        words += ["--total-timesteps", steps, "--no-progress", "--run-dir", "runs"]
    if words[0] == "ladder":
        words += ["--seeds", "2", "--total-timesteps", "2048", "--no-progress", "--out", "ladder"]
    if words[0] in ("sweep", "tune"):
        words += ["--total-timesteps", "2048", "--seeds", "2", "--no-progress"]
        words += ["--trials", "2", "--check-seeds", "0"] if words[0] == "tune" else []
    if words[0] == "eval":
        words += ["--episodes", "3"]
    return words


PPOX_COMMANDS = [c for c in quickstart_commands() if not c.startswith("pip")]


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory):
    """The folder the commands run in, with a finished run and an interrupted one for those that name a run."""
    cwd = tmp_path_factory.mktemp("readme")
    first = ppox.train(ppox.Config(total_timesteps=2048, run_dir=str(cwd / "runs"), run_name="first", progress=False))
    return cwd, str(first.run_path), interrupted_run(cwd)


def test_readme_quickstart_names_real_extras_and_every_command_is_tested():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    commands = quickstart_commands()
    for command in (c for c in commands if c.startswith("pip")):
        assert re.search(r"\[(\w+)\]", command).group(1) in extras, command
    assert all(shlex.split(c)[0] in ("pip", "ppox") or "=" in shlex.split(c)[0] for c in commands)
    assert len(PPOX_COMMANDS) >= 18


@pytest.mark.long
@pytest.mark.parametrize("command", PPOX_COMMANDS, ids=[c.split("  ")[0] for c in PPOX_COMMANDS])
def test_readme_quickstart_command_runs(command, readme_folder):
    """Each `ppox` line of the Quickstart, in its own test so that the suite's workers share them out."""
    cwd, finished, interrupted = readme_folder
    words = shlex.split(command)
    env_vars = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    words = [w for w in words if not ("=" in w and not w.startswith("-"))]
    assert words[0] == "ppox", command
    folder = interrupted if "--resume" in words else finished
    result = run(adapt(words[1:], folder, interrupted), cwd, env_vars)
    assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"


@pytest.mark.long
def test_readme_python_example_runs(monkeypatch, tmp_path):
    """The Python block, verbatim, with every run cut to a few thousand steps."""
    original = ppox.Config.__post_init__

    def small(self):
        object.__setattr__(self, "total_timesteps", min(self.total_timesteps, 4096))
        object.__setattr__(self, "run_dir", str(tmp_path / "runs"))
        object.__setattr__(self, "progress", False)
        original(self)

    monkeypatch.setattr(ppox.Config, "__post_init__", small)
    exec(compile(block("From Python:", "python"), "README.md", "exec"), {})
