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


# mypy reads the whole package without a cache (36 CPU s): the long tier, which CI runs too
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.long) if n == "mypy" else n for n in CHECKS])
def test_ppox_passes(name):
    done = subprocess.run(CHECKS[name], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
