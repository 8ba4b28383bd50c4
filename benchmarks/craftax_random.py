"""A uniformly random policy on Craftax-Classic-Symbolic-v1, through ppox's adapter and its optimistic-reset step:
64 envs x 1,000 steps in one jitted scan; prints the episodes' count, mean return, std, mean length, the Crafter
score of the achievement rates, and each rate (tests/envs/test_craftax.py's random figure; seed 123).

  .venv/bin/python benchmarks/craftax_random.py
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from ppox.envs.craftax import crafter_score
from ppox.envs.jax_envs import make_autoreset_step, make_jax_env
from ppox.envs.optimistic_reset import batched_step

env, params, spec = make_jax_env("Craftax-Classic-Symbolic-v1")
N, T = 64, 1000
step = batched_step(env, params, N, make_autoreset_step(env, params, with_episode_values=True))
def run(key):
    k0, key = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k0, N), params)
    def body(carry, k):
        state, ret = carry
        ka, ks = jax.random.split(k)
        a = jax.random.randint(ka, (N,), 0, 17)
        obs, state, r, term, trunc, _, vals = step(jax.random.split(ks, (N, 2)), state, a)
        done = term | trunc
        ret = ret + r
        out = (jnp.where(done, ret, 0.0), done, jnp.stack([vals[n] for n in env.episode_metric_names], -1))
        return (state, jnp.where(done, 0.0, ret)), out
    _, (rets, dones, vals) = jax.lax.scan(body, (state, jnp.zeros(N)), jax.random.split(key, T))
    return rets, dones, vals
t=time.time()
rets, dones, vals = jax.jit(run)(jax.random.PRNGKey(123))
rets, dones, vals = map(np.asarray, (rets, dones, vals))
n = dones.sum()
rates = vals[dones].mean(0)
print("episodes", n, "mean return", rets[dones].mean(), "std", rets[dones].std(), "mean length", N*T/ max(n,1),
      "score", float(crafter_score(jnp.asarray(rates))), "time", time.time()-t)
print(dict(zip(env.episode_metric_names, rates.round(1))))
