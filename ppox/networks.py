"""Actor and critic networks (flax.linen), with PPO's customary orthogonal initialisation.

Hidden layers: orthogonal(sqrt(2)); policy head: orthogonal(0.01), so the first policy is
close to uniform; value head: orthogonal(1.0); biases zero.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ppox.core.distributions import Categorical, DiagGaussian, MultiCategorical

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}


def orthogonal(scale: float):
    """Orthogonal initialiser (Saxe et al. 2014): W = scale * Q, Q^T Q = I (Q Q^T = I if W is wide).

    Q comes from the QR decomposition of a standard normal matrix, its columns' signs fixed by
    diag(R) so that Q is uniformly distributed. The draw and the QR run in NumPy through a host
    callback, seeded by the JAX key: deterministic per key, jit- and vmap-compatible, and free to
    compile (XLA's own QR costs about 0.35 s of compilation per layer shape on a 2-core CPU).
    """

    def init(key, shape, dtype=jnp.float32):
        fan_out = shape[-1]
        fan_in = math.prod(shape) // fan_out
        key_data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key

        def host(bits):
            rng = np.random.default_rng(np.asarray(bits, np.uint32).ravel().tolist())
            tall = (max(fan_in, fan_out), min(fan_in, fan_out))
            q, r = np.linalg.qr(rng.standard_normal(tall))
            q = q * np.sign(np.diag(r))
            matrix = q if fan_in >= fan_out else q.T
            return (scale * matrix).reshape(shape).astype(dtype)

        return jax.pure_callback(host, jax.ShapeDtypeStruct(shape, dtype), key_data, vmap_method="sequential")

    return init


def _dense(features: int, scale: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Hidden layers of the given sizes, each Dense then the activation."""

    hidden_sizes: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        for size in self.hidden_sizes:
            x = ACTIVATIONS[self.activation](_dense(size, math.sqrt(2.0))(x))
        return x


class CNN(nn.Module):
    """Convolutions over [batch, H, W, C] images, flattened: the Nature-DQN stack (32 8x8/4, 64 4x4/2,
    64 3x3/1) for images of 36 pixels or more, one 16-channel 3x3 layer for small ones (MinAtar's 10x10)."""

    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        layers = [(32, 8, 4), (64, 4, 2), (64, 3, 1)] if min(x.shape[-3:-1]) >= 36 else [(16, 3, 1)]
        for features, size, stride in layers:
            x = nn.Conv(features, (size, size), (stride, stride), padding="VALID",
                        kernel_init=orthogonal(math.sqrt(2.0)), bias_init=nn.initializers.zeros)(x)
            x = ACTIVATIONS[self.activation](x)
        return x.reshape(x.shape[0], -1)


class ActorCritic(nn.Module):
    """obs -> (action distribution, V(obs)).

    ``action_kind`` is "discrete" (n = action_dims[0]), "continuous" (a Gaussian over
    action_dims[0] dimensions with a state-independent log std) or "multi_discrete"
    (action_dims = sizes per dimension). ``shared_trunk`` makes actor and critic share the
    hidden layers; by default they are separate networks. ``obs_ndim`` is the number of
    trailing observation axes; with ``cnn`` they are an HxWxC image that goes through
    convolutions first, otherwise they are flattened into the MLP input.
    """

    action_kind: str
    action_dims: tuple[int, ...]
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared_trunk: bool = False
    log_std_init: float = 0.0
    cnn: bool = False

    @nn.compact
    def __call__(self, obs):
        lead = obs.shape[: obs.ndim - self.obs_ndim]
        if self.cnn:  # convolutions take one batch axis: fold the leading axes, unfold the features after
            images = obs.reshape((-1,) + obs.shape[obs.ndim - 3:])
            actor_x = CNN(name="actor_cnn")(images).reshape(lead + (-1,))
            critic_x = actor_x if self.shared_trunk else CNN(name="critic_cnn")(images).reshape(lead + (-1,))
        else:
            actor_x = critic_x = obs.reshape(lead + (-1,))
        actor_features = MLP(self.hidden_sizes, self.activation, name="actor_trunk")(actor_x)
        critic_features = (
            actor_features if self.shared_trunk
            else MLP(self.hidden_sizes, self.activation, name="critic_trunk")(critic_x)
        )
        value = _dense(1, 1.0)(critic_features)[..., 0]
        if self.action_kind == "continuous":
            mean = _dense(self.action_dims[0], 0.01)(actor_features)
            log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dims[0],))
            return DiagGaussian(mean, log_std), value
        logits = _dense(int(sum(self.action_dims)), 0.01)(actor_features)
        if self.action_kind == "discrete":
            return Categorical(logits), value
        return MultiCategorical(logits, tuple(self.action_dims)), value
