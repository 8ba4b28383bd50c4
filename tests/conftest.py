import gc
import os
import shutil
import tempfile

import pytest

# The CLI keeps compiled programs in ~/.cache/ppox by default; in tests it leaves no files there (the session's
# cache below reaches its subprocesses through JAX's own environment variables instead).
os.environ["PPOX_CACHE_DIR"] = ""


# The default tier compiles far more than it runs (most of its tests are a few updates of a new program): there
# LLVM optimises XLA's CPU code at -O0 instead of -O2, which cuts its CPU time by a quarter (benchmarks/results/
# suite_time_issue34.json). XLA's own passes (fusion, simplification) are unchanged; a multiply-add may round in
# its last bit apart from -O2's fused one, so a test compares two programs compiled alike, or within rounding. The
# long tier (learning runs: run time, not compile time) and every user keep -O2. XLA_FLAGS that already name a
# level are left as they are.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def _compile_fast(config) -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if (config.getoption("markexpr", "") or "").strip() == "not long" and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE}".strip()


def pytest_configure(config):
    """One XLA compilation cache per test session, shared by the xdist workers and the `ppox` subprocesses that
    tests start: a program one test compiled is loaded, not compiled again, by the next test that builds it.
    A temporary folder, removed at the end; PPOX_TEST_XLA_CACHE names another, and empty turns it off."""
    if not hasattr(config, "workerinput") and "PPOX_TEST_XLA_CACHE" not in os.environ:  # the controller
        config.ppox_xla_cache = os.environ["PPOX_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="ppox-test-xla-")
    _compile_fast(config)  # (before JAX starts: XLA reads XLA_FLAGS once; subprocesses inherit them)
    folder = os.environ["PPOX_TEST_XLA_CACHE"]
    if folder:  # read by JAX at import in every subprocess that inherits this environment
        os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    if folder and (hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None)):
        import jax

        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):
    if getattr(config, "ppox_xla_cache", None):
        shutil.rmtree(config.ppox_xla_cache, ignore_errors=True)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most 4 (each holds JAX and its compiled programs: 1-3 GB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", min(cores, 4)))


def pytest_collection_modifyitems(items):
    """The slow and long tests first, so that pytest-xdist shares them out between its workers from the start."""
    items.sort(key=lambda item: not any(item.get_closest_marker(name) for name in ("slow", "long")))


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module: a worker's memory stays that of one module."""
    yield
    import jax

    jax.clear_caches()
    gc.collect()
