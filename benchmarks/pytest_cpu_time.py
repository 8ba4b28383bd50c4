"""A pytest plugin: each test's CPU seconds (the process and the subprocesses it waited for) and wall seconds.

On a shared machine wall times move with the load; CPU seconds much less. Each worker appends JSON lines to
$CPU_TIME_OUT/<worker>.jsonl:

    CPU_TIME_OUT=out PYTHONPATH=benchmarks python -m pytest -q -p pytest_cpu_time
    python benchmarks/suite_time.py out

Not counted: processes a test does not wait for (Ray's workers).
"""

import json
import os
import resource
import time

import pytest


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = cpu_seconds(), time.monotonic()
    yield
    out = os.environ.get("CPU_TIME_OUT")
    if out:
        row = {
            "id": item.nodeid,
            "cpu": round(cpu_seconds() - cpu, 2),
            "wall": round(time.monotonic() - wall, 2),
            "long": item.get_closest_marker("long") is not None,
        }
        with open(os.path.join(out, os.environ.get("PYTEST_XDIST_WORKER", "main") + ".jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
