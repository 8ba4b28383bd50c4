"""JaxMARL's side of benchmarks/jaxmarl.py: its baseline files' settings, and its own make_train, patched.

The baseline files come from github.com/FLAIROx/JaxMARL (a bare checkout named by --jaxmarl-repo) and run with
these changes only:
- hydra and omegaconf are not installed here: two stub modules stand in for them (only ``@hydra.main`` is used,
  by ``main``, which is not run); the config dict is built in code from the yaml values below;
- wandb is a stub whose ``log`` does nothing (the io_callback that calls it stays in the program);
- the metrics: each update also returns the mean return of the episodes that ended in its rollout (JaxMARL's
  ``returned_episode_returns`` where ``returned_episode``), and on SMAX the fraction of them won
  (``returned_won_episode``); the recurrent files' ``train`` returns these metrics, which it only logged before;
- jax's ``qr`` (where jax.random.orthogonal finds it) runs in NumPy through a host callback (``host_qr``).
  Their orthogonal initialisers (flax's, in their layers and in GRUCell) call it; with the seeds vmapped, XLA's
  CPU QR kernel splits the batch over the intra-op thread pool and waits for it, and when two such kernels run
  at once (MAPPO's actor and critic are initialised side by side) they hold both threads of this 2-core machine
  and wait forever: a deadlock (seen in gdb: two threads in lapack_sgeqrf's ParallelBatchMap, in
  BlockingCounter::Wait, the process using no CPU for 16 minutes).
  Only the initialisation calls QR: the training program is theirs unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

MPE_IPPO = {  # baselines/IPPO/config/ippo_ff_mpe.yaml
    "LR": 2.5e-4, "NUM_ENVS": 16, "NUM_STEPS": 128, "UPDATE_EPOCHS": 4, "NUM_MINIBATCHES": 4, "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh", "ENV_NAME": "MPE_simple_spread_v3", "ENV_KWARGS": {}, "ANNEAL_LR": True,
}  # fmt: skip
MPE_MAPPO = {  # baselines/MAPPO/config/mappo_homogenous_rnn_mpe.yaml
    "LR": 2e-3, "NUM_ENVS": 16, "NUM_STEPS": 128, "FC_DIM_SIZE": 128, "GRU_HIDDEN_DIM": 128, "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "SCALE_CLIP_EPS": False,
    "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh", "ENV_NAME": "MPE_simple_spread_v3",
    "ENV_KWARGS": {}, "ANNEAL_LR": True,
}  # fmt: skip
SMAX_KWARGS = {"see_enemy_actions": True, "walls_cause_death": True, "attack_mode": "closest"}
SMAX_IPPO = {  # baselines/IPPO/config/ippo_rnn_smax.yaml
    "LR": 0.004, "NUM_ENVS": 128, "NUM_STEPS": 128, "GRU_HIDDEN_DIM": 128, "FC_DIM_SIZE": 128, "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.05, "SCALE_CLIP_EPS": False,
    "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.25, "ACTIVATION": "relu", "ENV_NAME": "HeuristicEnemySMAX",
    "MAP_NAME": "2s3z", "ENV_KWARGS": SMAX_KWARGS, "ANNEAL_LR": True,
}  # fmt: skip
SMAX_MAPPO = {  # baselines/MAPPO/config/mappo_homogenous_rnn_smax.yaml
    "LR": 0.002, "NUM_ENVS": 128, "NUM_STEPS": 128, "FC_DIM_SIZE": 128, "GRU_HIDDEN_DIM": 128, "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "SCALE_CLIP_EPS": False,
    "ENT_COEF": 0.0, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.25, "ACTIVATION": "relu", "OBS_WITH_AGENT_ID": True,
    "ENV_NAME": "HeuristicEnemySMAX", "MAP_NAME": "2s3z", "ENV_KWARGS": SMAX_KWARGS, "ANNEAL_LR": True,
}  # fmt: skip
SETTINGS = {
    ("mpe", "ippo"): MPE_IPPO,
    ("mpe", "mappo"): MPE_MAPPO,
    ("smax", "ippo"): SMAX_IPPO,
    ("smax", "mappo"): SMAX_MAPPO,
}
PEER_FILES = {
    ("mpe", "ippo"): "baselines/IPPO/ippo_ff_mpe.py",
    ("mpe", "mappo"): "baselines/MAPPO/mappo_rnn_mpe.py",
    ("smax", "ippo"): "baselines/IPPO/ippo_rnn_smax.py",
    ("smax", "mappo"): "baselines/MAPPO/mappo_rnn_smax.py",
}
ENDED = "ended = metric['returned_episode']; "
MASKED_RETURN = (
    ENDED + "ep = jnp.where(ended, metric['returned_episode_returns'], 0.0).sum() / jnp.maximum(ended.sum(), 1); "
    "ep = jnp.where(ended.sum() > 0, ep, jnp.nan)"
)
MASKED_WIN = (
    ENDED + "won = jnp.where(ended, metric['returned_won_episode'], 0.0).sum() / jnp.maximum(ended.sum(), 1); "
    "won = jnp.where(ended.sum() > 0, won, jnp.nan)"
)
INFO = "            metric = traj_batch.info\n"
RETURN_METRIC = "            return (runner_state, update_steps), metric\n"
RETURN_TRAIN = '        return {"runner_state": runner_state}\n'
TRAIN_WITH_METRICS = '        return {"runner_state": runner_state, "metrics": metric}\n'
PATCHES = {
    ("mpe", "ippo"): [
        (
            "            metric = jax.tree.map(lambda x: x.mean(), metric)\n",
            f"            {MASKED_RETURN}\n            metric = jax.tree.map(lambda x: x.mean(), metric)\n"
            "            metric['episode_return'] = ep\n",
        )
    ],
    ("mpe", "mappo"): [
        (INFO, f"{INFO}            {MASKED_RETURN}\n"),
        (RETURN_METRIC, "            return (runner_state, update_steps), {'episode_return': ep}\n"),
        (RETURN_TRAIN, TRAIN_WITH_METRICS),
    ],
    ("smax", "ippo"): [
        (INFO, f"{INFO}            {MASKED_RETURN}\n            {MASKED_WIN}\n"),
        (RETURN_METRIC, "            return (runner_state, update_steps), {'episode_return': ep, 'win_rate': won}\n"),
        (RETURN_TRAIN, TRAIN_WITH_METRICS),
    ],
}
PATCHES[("smax", "mappo")] = PATCHES[("smax", "ippo")]


def stub_modules() -> None:
    """hydra, omegaconf (not installed) and wandb (not wanted) as stubs, before the baseline file is run."""
    hydra = types.ModuleType("hydra")
    hydra.main = lambda **kwargs: lambda f: f  # type: ignore[attr-defined]
    omegaconf = types.ModuleType("omegaconf")
    omegaconf.OmegaConf = types.SimpleNamespace(to_container=lambda c: c)  # type: ignore[attr-defined]
    wandb = types.ModuleType("wandb")
    wandb.log = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    wandb.init = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    sys.modules.update(hydra=hydra, omegaconf=omegaconf, wandb=wandb)


def host_qr() -> None:
    """``jnp.linalg.qr`` (the reduced QR) computed by NumPy in a host callback, one matrix at a time under vmap:
    the same factorisation, without XLA's parallel batched QR kernel (module docstring)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    def qr(a, mode="reduced"):
        if mode != "reduced" or a.ndim != 2:
            raise NotImplementedError(f"host_qr: only the reduced QR of a matrix (mode {mode!r}, shape {a.shape})")
        k = min(a.shape)
        shapes = (jax.ShapeDtypeStruct((a.shape[0], k), a.dtype), jax.ShapeDtypeStruct((k, a.shape[1]), a.dtype))

        def host(x):
            q, r = np.linalg.qr(np.asarray(x))
            return q.astype(x.dtype), r.astype(x.dtype)

        return jax.pure_callback(host, shapes, a, vmap_method="sequential")

    from jax._src.numpy import linalg  # (jax.random.orthogonal, which flax's initialiser calls, looks qr up here)

    linalg.qr = jnp.linalg.qr = qr


def settings(env: str, algo: str, num_envs: int | None) -> dict:
    """The baseline's yaml values, with NUM_ENVS scaled down where --num-envs says so."""
    values = dict(SETTINGS[(env, algo)])
    if num_envs:
        values["NUM_ENVS"] = num_envs
    return values


def peer_train(env: str, algo: str, repo: Path, timesteps: int, num_envs: int | None):
    """JaxMARL's make_train(config) from its baseline file (patched as the module docstring says)."""
    path = PEER_FILES[(env, algo)]
    source = subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    ).stdout
    for old, new in PATCHES[(env, algo)]:
        if source.count(old) != 1:
            raise SystemExit(f"{path}: the patch's anchor {old.strip()!r} is not there once")
        source = source.replace(old, new)
    stub_modules()
    host_qr()
    module = types.ModuleType(f"jaxmarl_{env}_{algo}")
    sys.modules[module.__name__] = module  # (its dataclasses look their module up)
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 (JaxMARL's own file)
    return module.make_train(dict(settings(env, algo, num_envs), TOTAL_TIMESTEPS=timesteps))
