"""Actor-critic networks: orthogonal initialisation scales, separate or shared trunks, heads per action kind."""

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import pytest

from ppox.config.config import Config
from ppox.core.distributions import Categorical, DiagGaussian, MultiCategorical
from ppox.agent.agent import make_network
from ppox.agent.networks import CNN, PatchConv
from ppox.envs.spec import EnvSpec


def _init(spec, **changes):
    network = make_network(Config(**changes), spec)
    return network, network.init(jax.random.PRNGKey(0), jnp.zeros((1,) + spec.obs_shape))["params"]


def test_orthogonal_init_scales():
    _, params = _init(EnvSpec((64,), "discrete", (4,)))
    hidden = np.asarray(params["actor_trunk"]["Dense_1"]["kernel"])  # 64 x 64
    np.testing.assert_allclose(hidden.T @ hidden, 2.0 * np.eye(64), atol=1e-4)  # gain sqrt(2)
    policy_head = np.asarray(params["Dense_1"]["kernel"])  # 64 x 4: orthonormal columns times 0.01
    np.testing.assert_allclose(policy_head.T @ policy_head, 1e-4 * np.eye(4), atol=1e-8)
    value_head = np.asarray(params["Dense_0"]["kernel"])  # 64 x 1, gain 1
    assert np.linalg.norm(value_head) == pytest.approx(1.0, rel=1e-5)
    for leaf_path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if "bias" in jax.tree_util.keystr(leaf_path):
            assert not np.any(np.asarray(leaf))


def test_lecun_init_is_flax_default_on_every_layer_with_small_positive_biases():
    """--weight-init lecun (gymnax-blines' network): every kernel, heads and convolutions included, has the variance
    1/fan_in of LeCun normal; biases lie in [0, 0.05); the same parameter names and shapes as orthogonal."""
    for spec in (EnvSpec((400,), "discrete", (6,)), EnvSpec((10, 10, 4), "discrete", (3,))):
        _, orthogonal = _init(spec, hidden_sizes=(256, 256))
        _, params = _init(spec, hidden_sizes=(256, 256), weight_init="lecun")
        assert jax.tree_util.tree_map(np.shape, params) == jax.tree_util.tree_map(np.shape, orthogonal)
        leaves = jax.tree_util.tree_leaves_with_path(params)
        for leaf_path, leaf in leaves:
            leaf, name = np.asarray(leaf, np.float64), jax.tree_util.keystr(leaf_path)
            if "bias" in name:
                assert leaf.min() >= 0.0 and leaf.max() < 0.05 and (leaf.size < 100 or leaf.std() > 0.01), name
                continue
            fan_in = int(np.prod(leaf.shape[:-1]))
            assert np.abs(leaf).max() <= 2.0 / np.sqrt(fan_in) / 0.8796 + 1e-6, name  # truncated at 2 std
            if leaf.size >= 1000:  # enough entries for the variance to within 10%
                assert leaf.var() * fan_in == pytest.approx(1.0, rel=0.1), name
        heads = [np.asarray(params[name]["kernel"]) for name in ("Dense_0", "Dense_1")]
        assert all(np.abs(head).max() > 0.05 for head in heads)  # not shrunk like the orthogonal 0.01 head


def test_separate_networks_by_default_and_shared_as_option():
    _, separate = _init(EnvSpec((3,), "discrete", (2,)))
    assert {"actor_trunk", "critic_trunk"} <= set(separate)
    _, shared = _init(EnvSpec((3,), "discrete", (2,)), shared_trunk=True)
    assert "critic_trunk" not in shared and "actor_trunk" in shared


@pytest.mark.parametrize(
    "spec, kind",
    [
        (EnvSpec((3,), "discrete", (5,)), Categorical),
        (EnvSpec((3,), "continuous", (2,), (-1.0, -1.0), (1.0, 1.0)), DiagGaussian),
        (EnvSpec((3,), "multi_discrete", (2, 3)), MultiCategorical),
        (EnvSpec((10, 10, 4), "discrete", (3,)), Categorical),
    ],
)
def test_heads_per_action_kind(spec, kind):
    network, params = _init(spec)
    dist, value = network.apply({"params": params}, jnp.zeros((7,) + spec.obs_shape))
    assert isinstance(dist, kind) and value.shape == (7,)
    action = dist.sample(jax.random.PRNGKey(1))
    assert dist.log_prob(action).shape == (7,)
    if kind is DiagGaussian:
        np.testing.assert_allclose(params["log_std"], 0.0)  # state-independent, log_std_init


@pytest.mark.parametrize("shape,features,size,stride", [((3, 10, 10, 4), 16, 3, 1), ((2, 84, 84, 4), 32, 8, 4),
                                                        ((2, 20, 20, 32), 64, 4, 2), ((2, 9, 9, 64), 64, 3, 1)])
def test_patch_convolution_equals_flax_conv(shape, features, size, stride):
    """PatchConv (patches times the kernel) gives flax's Conv output from the same parameters, in float64."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(1), shape, jnp.float64)
        conv = nn.Conv(features, (size, size), (stride, stride), padding="VALID", param_dtype=jnp.float64)
        params = conv.init(jax.random.PRNGKey(2), x)
        params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(3), p.shape, p.dtype), params)
        expected = conv.apply(params, x)
        got = PatchConv(features, size, stride).apply(params, x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-12, atol=1e-12)


def test_uint8_images_give_exactly_the_outputs_of_the_images_scaled_first():
    """A CNN policy on uint8 frames gathers the first layer's patches as bytes and scales them after: the same
    float32 numbers as scaling the frames to [0, 1] first (tolerance 0), actor and critic, Nature CNN."""
    network = make_network(Config(network="cnn", hidden_sizes=(64,)), EnvSpec((84, 84, 4), "discrete", (4,)))
    frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 84, 84, 4)), jnp.uint8)
    params = network.init(jax.random.PRNGKey(0), frames[:1])
    (dist, values), (scaled_dist, scaled_values) = (network.apply(params, frames),
                                                    network.apply(params, frames.astype(jnp.float32) / 255.0))
    np.testing.assert_array_equal(np.asarray(dist.logits), np.asarray(scaled_dist.logits))
    np.testing.assert_array_equal(np.asarray(values), np.asarray(scaled_values))
    assert np.asarray(values).std() > 0  # not a constant output


def test_cnn_parameters_keep_flax_conv_names_and_shapes():
    """Checkpoints of CNN policies hold Conv_0.. kernels [kh, kw, C, F] and biases, as flax's Conv writes them."""
    params = CNN().init(jax.random.PRNGKey(0), jnp.zeros((1, 84, 84, 4)))["params"]
    shapes = {name: (layer["kernel"].shape, layer["bias"].shape) for name, layer in params.items()}
    assert shapes == {"Conv_0": ((8, 8, 4, 32), (32,)), "Conv_1": ((4, 4, 32, 64), (64,)),
                      "Conv_2": ((3, 3, 64, 64), (64,))}
    assert CNN().apply({"params": params}, jnp.zeros((5, 84, 84, 4))).shape == (5, 7 * 7 * 64)
