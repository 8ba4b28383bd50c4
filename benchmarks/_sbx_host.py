"""SBX (stable-baselines3 in JAX, PyPI: sbx-rl) PPO on a Gymnasium env (CartPole-v1 or
HalfCheetah-v5), hyperparameters of benchmarks/host.py's TASKS (CleanRL's).

Run with the SBX virtualenv (bench-envs/sbx/bin/python, made by setup_envs.sh).
Prints one JSON line on stdout; everything else goes to stderr. The env, the callback, the timer
and the final return are the same code as for SB3 (``_sb3_host.run``).

  wall_s        seconds of ``model.learn(...)``, JIT compilation of SBX's jitted functions
                (``predict_all``, ``_one_update``) included; model construction (which
                initialises the flax parameters) happens before the timer starts.

Where SBX 0.28.0 differs from CleanRL (and from ppox) even with these settings (see
benchmarks/README.md): actor and critic are trained by two separate Adam optimizers with
separate global-norm clipping (0.5 each); no value clipping (SBX ignores ``clip_range_vf``);
``ortho_init=True`` only makes the policy head orthogonal (scale 0.01), the hidden layers and the
value head keep flax's default (lecun normal) init; SB3's lr schedule, VecNormalize and
truncation bootstrapping as for SB3.

Threads: XLA's defaults; torch (SB3's rollout buffer, which SBX reuses) with 1 thread, as for SB3.
"""

from __future__ import annotations

import sys

from _sb3_host import parse_args, run


def main():
    args = parse_args(__doc__.split("\n")[0])

    import flax
    import flax.linen as nn
    import jax
    import sbx
    import stable_baselines3
    from sbx import PPO

    def make_model(venv, task, batch):
        lr = task["learning_rate"]
        return PPO(
            "MlpPolicy",
            venv,
            learning_rate=lambda progress_remaining: lr * progress_remaining,
            n_steps=task["num_steps"],
            batch_size=batch // task["num_minibatches"],
            n_epochs=task["update_epochs"],
            gamma=task["gamma"],
            gae_lambda=task["gae_lambda"],
            clip_range=task["clip_coef"],
            normalize_advantage=True,
            ent_coef=task["ent_coef"],
            vf_coef=task["vf_coef"],
            max_grad_norm=task["max_grad_norm"],
            # separate 64x64 tanh actor and critic (SBX's default net_arch and activation, spelled
            # out), orthogonal policy head, Adam eps 1e-5 (SBX's default), log std init 0.
            policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.tanh,
                               ortho_init=True, log_std_init=0.0),
            seed=args.seed,
            device="cpu",
            verbose=0,
        )

    run("sbx", args, make_model, {"sbx": sbx.__version__, "stable_baselines3": stable_baselines3.__version__,
                                  "jax": jax.__version__, "flax": flax.__version__})


if __name__ == "__main__":
    sys.exit(main())
