import gc
import os

import pytest

# The CLI keeps compiled programs in ~/.cache/ppox by default; tests measure cold behaviour and leave no files.
os.environ["PPOX_CACHE_DIR"] = ""


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most 4 (each holds JAX and its compiled programs: 1-3 GB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", min(cores, 4)))


def pytest_collection_modifyitems(items):
    """The slow tests first, so that pytest-xdist shares them out between its workers from the start."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module: a worker's memory stays that of one module."""
    yield
    import jax

    jax.clear_caches()
    gc.collect()
