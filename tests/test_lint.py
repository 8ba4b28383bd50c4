"""Lint, format and types of ppox/: ruff check, ruff format --check and mypy, configured in pyproject.toml."""

import subprocess
import sys

import pytest

from tests.helpers import ROOT

CHECKS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "ppox"],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "ppox"],
    "mypy": [sys.executable, "-m", "mypy", "--cache-dir", "/dev/null", "ppox"],
}


@pytest.mark.parametrize("name", CHECKS)
def test_ppox_passes(name):
    done = subprocess.run(CHECKS[name], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
