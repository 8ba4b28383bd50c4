"""rejax PPO on gymnax CartPole-v1 with the CleanRL/PureJaxRL CartPole hyperparameters.

Run with the rejax virtualenv (bench-envs/rejax/bin/python, made by setup_envs.sh).
Prints one JSON line on stdout; everything else goes to stderr.

What is measured:
  wall_s        seconds of ``jax.jit(algo.train)(rng)`` up to ``block_until_ready``, i.e.
                tracing + XLA compilation + training. Algorithm and env construction happen
                before the timer starts.
  final_return  mean return of the *training* episodes that finished during the last tenth of
                the updates (same definition as for ppox and SB3). rejax keeps no record of
                training episodes, so the environment is wrapped in ``EpisodeTally`` below, which
                only adds up completed-episode returns inside the env state; rejax's eval
                callback (called once per update here) reads those running totals.
  eval_return   rejax's own ``rejax.evaluate.evaluate`` after training (outside the timer):
                mean return over 128 fresh episodes with the final, stochastic policy.

Hyperparameters that rejax 0.1.3 cannot match exactly (see benchmarks/README.md):
  * gradient clipping is ``optax.clip(max_grad_norm)`` (element-wise value clip), not the global
    norm clip of CleanRL/PureJaxRL; actor and critic have separate Adam optimizers;
  * Adam eps is optax's default 1e-8 (CleanRL/PureJaxRL: 1e-5);
  * networks use flax's default (lecun-normal) init, not orthogonal init;
  * value clipping is always on with the policy clip range (0.2), as in CleanRL/PureJaxRL.
  * learning-rate annealing is not a rejax option; it is provided by passing an optax schedule
    (PureJaxRL's: constant within an update, linear to 0 over the updates) as learning_rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
from flax import struct

import gymnax
import rejax
from rejax.evaluate import evaluate

NUM_ENVS = 4
NUM_STEPS = 128
UPDATE_EPOCHS = 4
NUM_MINIBATCHES = 4
LR = 2.5e-4


@struct.dataclass
class TallyState:
    env_state: object
    episode_return: jax.Array  # return of the running episode
    finished_return_sum: jax.Array  # sum of returns of all finished episodes so far
    finished_count: jax.Array  # number of finished episodes so far


class EpisodeTally:
    """gymnax env wrapper keeping running totals of finished-episode returns in the state."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):  # only called for names not found on the wrapper
        if name.startswith("__") or name == "_env":  # copy/pickle probing before __init__
            raise AttributeError(name)
        return getattr(self._env, name)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        zero = jnp.zeros((), jnp.float32)
        return obs, TallyState(state, zero, zero, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params=None):
        obs, env_state, reward, done, info = self._env.step(key, state.env_state, action, params)
        ep_ret = state.episode_return + reward.astype(jnp.float32)
        new_state = TallyState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, ep_ret),
            finished_return_sum=state.finished_return_sum + jnp.where(done, ep_ret, 0.0),
            finished_count=state.finished_count + done.astype(jnp.int32),
        )
        return obs, new_state, reward, done, info


def tally_callback(algo, ts, rng):
    """Called by rejax after every update here: running totals over all envs."""
    s = ts.env_state
    return s.finished_return_sum.sum(), s.finished_count.sum()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-timesteps", type=int, default=500_000)
    args = p.parse_args()

    batch = NUM_ENVS * NUM_STEPS
    num_updates = args.total_timesteps // batch  # CleanRL/PureJaxRL: floor
    steps = num_updates * batch
    grad_steps_per_update = UPDATE_EPOCHS * NUM_MINIBATCHES

    def lr_schedule(count):
        # PureJaxRL's linear_schedule: constant within an update, 1 -> 1/num_updates.
        return LR * (1.0 - (count // grad_steps_per_update) / num_updates)

    base_env, env_params = gymnax.make("CartPole-v1")
    env = EpisodeTally(base_env)
    algo = rejax.PPO.create(
        env=env,
        env_params=env_params,
        total_timesteps=steps,
        eval_freq=batch,  # callback after every update (it only reads the tallies)
        skip_initial_evaluation=True,
        num_envs=NUM_ENVS,
        num_steps=NUM_STEPS,
        num_epochs=UPDATE_EPOCHS,
        num_minibatches=NUM_MINIBATCHES,
        learning_rate=lr_schedule,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        normalize_observations=False,
        normalize_rewards=False,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
    )
    algo = algo.replace(eval_callback=tally_callback)
    rng = jax.random.PRNGKey(args.seed)

    t0 = time.perf_counter()
    ts, (ret_sum, count) = jax.jit(algo.train)(rng)
    jax.block_until_ready((ts, ret_sum, count))
    wall = time.perf_counter() - t0

    ret_sum = jax.device_get(ret_sum)  # running totals after each update, shape [num_updates]
    count = jax.device_get(count)
    assert ret_sum.shape[0] == num_updates, (ret_sum.shape, num_updates)
    k = max(1, num_updates // 10)
    start = num_updates - k - 1
    base_sum = ret_sum[start] if start >= 0 else 0.0
    base_count = count[start] if start >= 0 else 0
    n = int(count[-1] - base_count)
    final_return = float((ret_sum[-1] - base_sum) / n) if n > 0 else float("nan")

    # rejax's own evaluation (outside the timer): 128 episodes, stochastic final policy.
    lengths, returns = evaluate(
        algo.make_act(ts), jax.random.PRNGKey(args.seed + 10_000), base_env, env_params, 128,
        env_params.max_steps_in_episode,
    )

    print(
        json.dumps(
            {
                "library": "rejax",
                "wall_s": wall,
                "final_return": final_return,
                "final_episodes": n,
                "eval_return": float(returns.mean()),
                "steps": int(ts.global_step),
                "num_updates": num_updates,
                "seed": args.seed,
                "versions": {
                    "rejax": _version("rejax"),
                    "gymnax": _version("gymnax"),
                    "jax": jax.__version__,
                    "flax": _version("flax"),
                },
            }
        ),
        flush=True,
    )


def _version(name):
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
