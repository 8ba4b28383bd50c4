"""ppox: Proximal Policy Optimization on JAX.

    import ppox
    result = ppox.train(ppox.Config(env="CartPole-v1"))
    policy = ppox.load(result.run_path)
    actions = policy.act(observations)

The names below are imported when first used, so that ``import ppox.cli`` is light: the command line
listens to signals before JAX and the environments are imported.
"""

import importlib

from ppox._version import __version__

_WHERE = {
    "Callback": "ppox.run.callbacks",
    "Config": "ppox.config.config",
    "ConfigError": "ppox.errors",
    "Policy": "ppox.acting.policy",
    "TrainResult": "ppox.run.training",
    "UserCodeError": "ppox.errors",
    "evaluate": "ppox.acting.evaluation",
    "init_distributed": "ppox.run.training",
    "load": "ppox.acting.policy",
    "make_train": "ppox.drivers.fused_program",
    "resume": "ppox.run.training",
    "resume_lm": "ppox.lm.training",  # also ppox.lm.resume
    "StopOnNoImprovement": "ppox.run.callbacks",
    "StopOnReturn": "ppox.run.callbacks",
    "train_lm": "ppox.lm.training",  # also ppox.lm.train
    "train": "ppox.run.training",
}
__all__ = [*_WHERE, "__version__"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'ppox' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
