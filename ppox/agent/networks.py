"""Actor and critic networks (flax.linen), with PPO's customary orthogonal initialisation by default.

weight_init="orthogonal": hidden and convolution layers orthogonal(sqrt(2)); policy head orthogonal(0.01), so the
first policy is close to uniform; value head orthogonal(1.0); biases zero.
weight_init="lecun": flax's default kernels, LeCun normal (a truncated normal of variance 1/fan_in) on every layer,
heads included, and biases uniform in [0, 0.05): the network of gymnax-blines' PPO.
Recurrent cells are orthogonal either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    compile (XLA's own QR would be compiled for every layer shape; docs/design-notes.md).
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


def kernel_init(init: str, scale: float):
    """A layer's kernel initialiser: orthogonal(scale), or LeCun normal (``scale`` unused) for weight_init="lecun"."""
    return orthogonal(scale) if init == "orthogonal" else nn.initializers.lecun_normal()


def bias_init(init: str):
    """Zeros, or uniform in [0, 0.05) for weight_init="lecun" (gymnax-blines)."""
    return nn.initializers.zeros if init == "orthogonal" else nn.initializers.uniform(0.05)


def _dense(features: int, scale: float, init: str = "orthogonal") -> nn.Dense:
    return nn.Dense(features, kernel_init=kernel_init(init, scale), bias_init=bias_init(init))


class MLP(nn.Module):
    """Hidden layers of the given sizes, each Dense then the activation."""

    hidden_sizes: Sequence[int]
    activation: str = "tanh"
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, x):
        for size in self.hidden_sizes:
            x = ACTIVATIONS[self.activation](_dense(size, math.sqrt(2.0), self.weight_init)(x))
        return x


class PatchConv(nn.Module):
    """A VALID, strided 2-D convolution as one matrix product over image patches (im2col):

        y[n, p, q, f] = b[f] + sum_{i, j, c} x[n, s p + i, s q + j, c] K[i, j, c, f]

    The same parameters as ``flax.linen.Conv`` (kernel [kh, kw, C, F], bias [F]) and the same output. XLA's
    CPU backend runs the gradient of its convolution op far slower inside a loop (``lax.scan``, as in every
    PPO update) than outside; a gather of patches and a dot product do not have that cost
    (docs/design-notes.md). uint8 images [N, H, W, C] are gathered as bytes and the patches scaled after,
    x / 255: the same numbers for a quarter of the memory traffic."""

    features: int
    kernel_size: int
    stride: int = 1
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, x):
        size, stride, channels = self.kernel_size, self.stride, x.shape[-1]
        shape = (size, size, channels, self.features)
        kernel = self.param("kernel", kernel_init(self.weight_init, math.sqrt(2.0)), shape)
        bias = self.param("bias", bias_init(self.weight_init), (self.features,))
        rows = (x.shape[-3] - size) // stride + 1
        cols = (x.shape[-2] - size) // stride + 1
        patches = jnp.concatenate(
            [
                x[..., i : i + stride * (rows - 1) + 1 : stride, j : j + stride * (cols - 1) + 1 : stride, :]
                for i in range(size)
                for j in range(size)
            ],
            axis=-1,
        )
        if patches.dtype == jnp.uint8:
            patches = patches.astype(jnp.float32) / 255.0
        return patches @ kernel.reshape(size * size * channels, self.features) + bias


def cnn_layers(image_shape) -> list[tuple[int, int, int]]:
    """(features, kernel size, stride) per layer: the Nature-DQN stack for images of 36 pixels or more,
    one 16-channel 3x3 layer for small ones (MinAtar's 10x10)."""
    return [(32, 8, 4), (64, 4, 2), (64, 3, 1)] if min(image_shape[-3:-1]) >= 36 else [(16, 3, 1)]


class CNN(nn.Module):
    """Convolutions over [batch, H, W, C] images (``cnn_layers``), each followed by the activation, flattened."""

    activation: str = "relu"
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, x):
        for index, (features, size, stride) in enumerate(cnn_layers(x.shape)):
            conv = PatchConv(features, size, stride, self.weight_init, name=f"Conv_{index}")
            x = ACTIVATIONS[self.activation](conv(x))
        return x.reshape(x.shape[0], -1)


def _torsos(module: nn.Module, obs, names: tuple[str, str]):
    """(actor features, critic features) of the CNN (images) and MLP torsos; the same array twice when shared.
    uint8 images are scaled to [0, 1] inside the network (by the CNN's first layer, ``PatchConv``)."""
    lead = obs.shape[: obs.ndim - module.obs_ndim]
    if module.cnn:  # convolutions take one batch axis: fold the leading axes, unfold the features after
        images = obs.reshape((-1,) + obs.shape[obs.ndim - 3 :])  # uint8 stays uint8: the first PatchConv scales
        actor_x = CNN(weight_init=module.weight_init, name=f"actor_cnn{names[0]}")(images).reshape(lead + (-1,))
        critic_x = (
            actor_x
            if module.shared_trunk
            else CNN(weight_init=module.weight_init, name=f"critic_cnn{names[1]}")(images).reshape(lead + (-1,))
        )
    else:
        obs = obs.astype(jnp.float32) / 255.0 if obs.dtype == jnp.uint8 else obs
        actor_x = critic_x = obs.reshape(lead + (-1,))
        if module.actor_obs:  # a centralised critic (MAPPO): the actor's features first, the critic's after
            actor_x, critic_x = actor_x[..., : module.actor_obs], actor_x[..., module.actor_obs :]
    actor = MLP(module.hidden_sizes, module.activation, module.weight_init, name=f"actor_trunk{names[0]}")(actor_x)
    critic = (
        actor
        if module.shared_trunk
        else MLP(module.hidden_sizes, module.activation, module.weight_init, name=f"critic_trunk{names[1]}")(critic_x)
    )
    return actor, critic


def _heads(module: nn.Module, actor_features, critic_features):
    """(action distribution, V): the value head (orthogonal 1.0) and the policy head (orthogonal 0.01), or
    both LeCun normal with weight_init="lecun"."""
    value = _dense(1, 1.0, module.weight_init)(critic_features)[..., 0]
    if module.action_kind == "continuous":
        mean = _dense(module.action_dims[0], 0.01, module.weight_init)(actor_features)
        log_std = module.param("log_std", nn.initializers.constant(module.log_std_init), (module.action_dims[0],))
        return DiagGaussian(mean, log_std), value
    logits = _dense(int(sum(module.action_dims)), 0.01, module.weight_init)(actor_features)
    if module.action_kind == "discrete":
        return Categorical(logits), value
    return MultiCategorical(logits, tuple(module.action_dims)), value


class ActorCritic(nn.Module):
    """obs -> (action distribution, V(obs)).

    ``action_kind`` is "discrete" (n = action_dims[0]), "continuous" (a Gaussian over
    action_dims[0] dimensions with a state-independent log std) or "multi_discrete"
    (action_dims = sizes per dimension). ``shared_trunk`` makes actor and critic share the
    hidden layers; by default they are separate networks. ``obs_ndim`` is the number of
    trailing observation axes; with ``cnn`` they are an HxWxC image that goes through
    convolutions first, otherwise they are flattened into the MLP input. ``weight_init``: see the
    module docstring.
    """

    action_kind: str
    action_dims: tuple[int, ...]
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared_trunk: bool = False
    log_std_init: float = 0.0
    cnn: bool = False
    weight_init: str = "orthogonal"
    actor_obs: int = 0  # > 0: the actor reads obs[..., :actor_obs], the critic the rest (flat observations)

    @nn.compact
    def __call__(self, obs):
        actor_features, critic_features = _torsos(self, obs, ("", ""))
        return _heads(self, actor_features, critic_features)


def gate_orthogonal(gates: int):
    """Orthogonal(1.0) per gate: a [fan_in, gates * H] kernel made of ``gates`` orthogonal [fan_in, H] blocks."""

    def init(key, shape, dtype=jnp.float32):
        size = shape[1] // gates
        blocks = [orthogonal(1.0)(k, (shape[0], size), dtype) for k in jax.random.split(key, gates)]
        return jnp.concatenate(blocks, axis=1)

    return init


class CellWeights(nn.Module):
    """A GRU or LSTM cell's weights; called on inputs x [T, B, F], it returns (x W_x + b for every step at
    once, W_h, b_h): the input half of every gate as one matrix product, outside the sequential loop."""

    kind: str  # "gru" or "lstm"
    size: int

    @nn.compact
    def __call__(self, x):
        gates = 3 if self.kind == "gru" else 4
        w_x = self.param("input_kernel", gate_orthogonal(gates), (x.shape[-1], gates * self.size))
        w_h = self.param("recurrent_kernel", gate_orthogonal(gates), (self.size, gates * self.size))
        b = self.param("bias", nn.initializers.zeros, (gates * self.size,))
        b_h = self.param("recurrent_bias", nn.initializers.zeros, (self.size,)) if self.kind == "gru" else None
        return x @ w_x + b, w_h, b_h


def cell_step(kind: str, w_h, b_h, carry, x_proj, xp=jnp):
    """One step from the input projection x_proj = x W_x + b (``xp``: jax.numpy, or numpy for the host actor).

    GRU: r = s(x_r + h W_hr), z = s(x_z + h W_hz), n = tanh(x_n + r (h W_hn + b_hn)), h' = (1 - z) n + z h.
    LSTM: i, f, o = s(x_* + h W_h*), g = tanh(x_g + h W_hg), c' = f c + i g, h' = o tanh(c'); carry (c, h).
    s(x) = (1 + tanh(x / 2)) / 2 is the logistic sigmoid (no overflow for large |x|).
    """
    sigmoid = lambda x: 0.5 * (1.0 + xp.tanh(0.5 * x))  # noqa: E731
    if kind == "gru":
        x_r, x_z, x_n = xp.split(x_proj, 3, axis=-1)
        h_r, h_z, h_n = xp.split(carry @ w_h, 3, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = xp.tanh(x_n + r * (h_n + b_h))
        return (1.0 - z) * n + z * carry
    c, h = carry
    i, f, g, o = xp.split(x_proj + h @ w_h, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * xp.tanh(g)
    return c, sigmoid(o) * xp.tanh(c)


def run_cells(kind: str, cells, carry, starts, unroll: int = 1):
    """The carries after every step [T, B, ...] of one or more cells stepped together in one loop; each
    cell's carry is zeroed before step t where starts[t] (its observation begins an episode)."""

    def step(carry, inputs):
        x_t, start = inputs
        keep = lambda c: jnp.where(start[:, None], 0.0, c)  # noqa: E731
        carry = tuple(
            cell_step(kind, w_h, b_h, jax.tree_util.tree_map(keep, c), x)
            for c, x, (_, w_h, b_h) in zip(carry, x_t, cells)
        )
        return carry, carry

    projections = tuple(cell[0] for cell in cells)
    return jax.lax.scan(step, carry, (projections, starts), unroll=min(unroll, starts.shape[0]))[1]


def memory_output(kind: str, carry):
    """The features a cell passes on: a GRU's carry h, an LSTM's h of (c, h)."""
    return carry if kind == "gru" else carry[1]


class RecurrentActorCritic(nn.Module):
    """(carry, obs [T, B, ...], starts [T, B]) -> (carries [T, B, ...], distribution [T, B], V [T, B]).

    ActorCritic's torsos and heads with a GRU or LSTM cell between them (``memory``, ``memory_size``
    units): separate cells for actor and critic, one shared cell with ``shared_trunk``. The carry is a
    tuple of one cell state per cell (``zero_carry``); ``carries`` holds the state after each step, so
    V of any step's successor is one more step from it. ``starts[t]`` zeroes the carry before step t.
    """

    action_kind: str
    action_dims: tuple[int, ...]
    obs_ndim: int = 1
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared_trunk: bool = False
    log_std_init: float = 0.0
    cnn: bool = False
    weight_init: str = "orthogonal"
    actor_obs: int = 0  # > 0: the actor reads obs[..., :actor_obs], the critic the rest (flat observations)
    memory: str = "gru"
    memory_size: int = 128
    post_memory_sizes: Sequence[int] = ()  # hidden layers after the cell, one MLP per head (shared trunk or not)

    @nn.compact
    def __call__(self, carry, obs, starts):
        actor_x, critic_x = _torsos(self, obs, ("", ""))
        cells = (CellWeights(self.memory, self.memory_size, name="actor_memory")(actor_x),)
        if not self.shared_trunk:
            cells += (CellWeights(self.memory, self.memory_size, name="critic_memory")(critic_x),)
        carries = run_cells(self.memory, cells, carry, starts)
        actor_f, critic_f = (memory_output(self.memory, c) for c in (carries[0], carries[-1]))
        if self.post_memory_sizes:
            post = (self.post_memory_sizes, self.activation, self.weight_init)
            actor_f = MLP(*post, name="actor_post_memory")(actor_f)
            critic_f = MLP(*post, name="critic_post_memory")(critic_f)
        dist, value = _heads(self, actor_f, critic_f)
        return carries, dist, value


def zero_carry(network: RecurrentActorCritic, batch: int):
    """The carry at an episode's start for ``batch`` envs: zeros, one cell state per cell."""
    zeros = jnp.zeros((batch, network.memory_size), jnp.float32)
    cell = zeros if network.memory == "gru" else (zeros, zeros)
    return (cell,) if network.shared_trunk else (cell, cell)
