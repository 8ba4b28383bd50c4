"""The run's random keys under the PRNG implementation a config names (``Config.prng_impl``): a Runner carries a
key as its uint32 words (what checkpoints hold), and the program works with typed keys of that implementation."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def seed_key(seed: int, impl: str) -> jax.Array:
    """``seed``'s key as the uint32 words a Runner carries: ``jax.random.key(seed, impl=impl)``'s data
    (threefry2x32: the words of ``jax.random.PRNGKey(seed)``)."""
    return jax.random.key_data(jax.random.key(seed, impl=impl))


def key_words(impl: str) -> int:
    """How many uint32 words a key of the PRNG ``impl`` holds (threefry2x32: 2, rbg and unsafe_rbg: 4)."""
    return jax.eval_shape(lambda: seed_key(0, impl)).shape[-1]


def typed_key(key, impl: str) -> jax.Array:
    """``key`` as a key of the PRNG ``impl``: a typed key (``jax.random.key``) as it is, uint32 words wrapped.

    Raises:
        ValueError: the words are not a key of ``impl`` (a ``jax.random.PRNGKey`` given to a non-threefry run).
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.shape[-1:] != (key_words(impl),):
        raise ValueError(
            f"a key of shape {tuple(key.shape)} is not a key of prng_impl={impl!r} ({key_words(impl)} uint32 words): "
            f"pass jax.random.key(seed, impl={impl!r})"
        )
    return jax.random.wrap_key_data(key, impl=impl)
