"""A uniformly random policy on playground/CartpoleBalance through ppox's env (the learning test's baseline):
512 episodes of 200 steps (the test's --max-episode-steps 200), actions uniform in [-1, 1], seed 0.

  python benchmarks/playground_random.py      # random: mean 114.14 std 14.22 min 72.02 max 183.68 ...
"""

import jax
import jax.numpy as jnp
import numpy as np

from ppox.envs.jax_envs import make_jax_env

ENVS, STEPS = 512, 200
env, params, spec = make_jax_env("playground/CartpoleBalance")


def episode(key):
    """The return of one episode's first STEPS steps (nothing after a termination counts)."""
    first, key = jax.random.split(key)
    _, state = env.reset_env(first, params)

    def body(carry, k):
        state, done, total = carry
        action = jax.random.uniform(k, (1,), minval=-1.0, maxval=1.0)
        _, state, reward, ended, _ = env.step_env(k, state, action, params)
        return (state, done | ended, total + jnp.where(done, 0.0, reward)), None

    init = (state, jnp.zeros((), bool), jnp.zeros(()))
    (_, done, total), _ = jax.lax.scan(body, init, jax.random.split(key, STEPS))
    return total, done


if __name__ == "__main__":
    totals, done = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.PRNGKey(0), ENVS))
    totals = np.asarray(totals, np.float64)
    print(
        f"random: mean {totals.mean():.2f} std {totals.std():.2f} min {totals.min():.2f} max {totals.max():.2f} "
        f"over {ENVS} episodes of {STEPS} steps; terminated {int(np.asarray(done).sum())}"
    )
