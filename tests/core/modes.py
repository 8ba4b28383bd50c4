"""What every core test shares: running a function jitted or eagerly, and hypothesis settings."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st


@functools.lru_cache(maxsize=None)
def _jitted(fn, static_argnames=()):
    return jax.jit(fn, static_argnames=static_argnames)


def transform(mode, fn, static_argnames=()):
    """The function as called in a test: compiled with jax.jit, or run eagerly."""
    return _jitted(fn, tuple(static_argnames)) if mode == "jit" else fn


MODES = pytest.mark.parametrize("mode", ["jit", "eager"])
SETTINGS = settings(max_examples=30, deadline=None, database=None)
SEEDS = st.integers(0, 2**32 - 1)


def f32(x):
    return np.asarray(x, dtype=np.float32)
