"""bfloat16 parameters with a float32 master copy, and gradient accumulation (ppox.language.precision): the
update rules against float64 references, and --grad-accum-steps k in ppo_epochs equal to one big batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ppox.errors import ConfigError
from ppox.language.hf import load
from ppox.language.ppo import make_optimizer, ppo_epochs, prepare
from ppox.language.precision import MasterState, accumulated, float32_master
from ppox.language.run_config import LMRunConfig
from ppox.language.sampling import Sampling, make_sampler
from tests import helpers

QWEN2 = helpers.FIXTURES / "lm" / "qwen2"


def test_the_master_copy_keeps_steps_that_bfloat16_rounds_away():
    """SGD with lr 1e-4 on weights near 1 (bfloat16 spacing 2^-7): 50 steps of gradient 1 move a bfloat16
    parameter by 5e-3 only through the float32 master (reference: float64 sum, rounded to bfloat16 at the
    end); the same steps on the bfloat16 numbers themselves are each rounded away."""
    p0 = jnp.asarray([1.0, 0.75, -1.25], jnp.bfloat16)
    grads = jnp.ones(3, jnp.bfloat16)
    for optimizer, moved in ((float32_master(optax.sgd(1e-4)), True), (optax.sgd(1e-4), False)):
        params, state = p0, optimizer.init(p0)
        for _ in range(50):
            updates, state = optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        assert params.dtype == jnp.bfloat16
        expected = (np.asarray(p0, np.float64) - 50 * 1e-4).astype(jnp.bfloat16)
        if moved:
            np.testing.assert_array_equal(np.asarray(params), expected)
            np.testing.assert_allclose(np.asarray(state.master), np.asarray(p0, np.float64) - 5e-3, atol=1e-6)
            assert state.master.dtype == jnp.float32
        else:
            np.testing.assert_array_equal(np.asarray(params), np.asarray(p0))


def test_accumulation_steps_on_the_mean_of_k_gradients():
    """k = 3: calls 1 and 2 leave the parameters alone; call 3 applies SGD to (g1 + g2 + g3) / 3 (float64)."""
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(3, 4))
    optimizer = accumulated(optax.sgd(0.5), 3)
    params = jnp.zeros(4)
    state = optimizer.init(params)
    for i, g in enumerate(grads):
        updates, state = optimizer.update(jnp.asarray(g, jnp.float32), state, params)
        params = optax.apply_updates(params, updates)
        if i < 2:
            np.testing.assert_array_equal(np.asarray(params), 0.0)
    np.testing.assert_allclose(np.asarray(params), -0.5 * grads.mean(0), atol=1e-6)


def test_bfloat16_runs_get_the_float32_master_unless_asked_not_to():
    model = load(QWEN2, dtype="bfloat16")
    config = LMRunConfig(model=str(QWEN2), dtype="bfloat16")
    state = make_optimizer(config).init(model.params)
    assert isinstance(state, MasterState)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating))
    plain = make_optimizer(config.replace(optimizer_dtype="params")).init(model.params)
    assert not isinstance(plain, MasterState)
    assert not isinstance(make_optimizer(config.replace(dtype="float32")).init(model.params), MasterState)
    with pytest.raises(ConfigError, match="--grad-accum-steps 3: >= 1 and dividing --minibatches 4"):
        LMRunConfig(model="m", minibatches=4, grad_accum_steps=3)


@pytest.mark.long  # (three compiled PPO epochs: 78 s on the loaded 2-core machine)
def test_ppo_with_k_accumulated_minibatches_equals_one_big_batch():
    """GRPO with the sequence-mean loss, one epoch: 4 minibatches of 2 completions accumulated into one Adam
    step give the parameters one minibatch of all 8 gives (the loss is a mean over completions; float32
    tolerance), and not those of 4 separate steps."""
    model = load(QWEN2)
    sample = make_sampler(model.config, Sampling(6, model.eos_ids, 0, temperature=1.0))
    prompt = jnp.asarray(np.repeat(np.arange(3, 7)[:, None] * [1, 2, 3], 2, axis=0) % 90 + 3, jnp.int32)
    mask = jnp.ones_like(prompt, bool)
    out = sample(model.params, prompt, mask, jax.random.PRNGKey(0))
    scores = jnp.asarray(np.random.default_rng(0).normal(size=8), jnp.float32)
    big = LMRunConfig(model=str(QWEN2), advantage="grpo", samples_per_prompt=2, prompts_per_update=4, epochs=1,
                      loss="sequence", learning_rate=1e-3, temperature=1.0)
    params = {"policy": model.params, "critic": None}
    batch, _ = prepare(big, model.config, params, model.params, prompt, mask, out.tokens, out.mask, scores,
                       jnp.float32(0.05))
    results = {}
    for name, changes in {"big": {}, "accumulated": {"minibatches": 4, "grad_accum_steps": 4},
                          "separate": {"minibatches": 4}}.items():
        config = big.replace(**changes)
        new, _, _ = ppo_epochs(config, model.config, params, make_optimizer(config).init(params), batch,
                               jax.random.PRNGKey(1))
        results[name] = new["policy"]
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), results["big"], model.params))
    assert max(moved) > 5e-4  # (an Adam step of lr 1e-3 moved the parameters)
    gap = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), results["accumulated"],
                                       results["big"]))
    assert max(gap) < 2e-5
    apart = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), results["separate"],
                                         results["big"]))
    assert max(apart) > 5e-4
