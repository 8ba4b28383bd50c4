"""ppox: Proximal Policy Optimization on JAX.

    import ppox
    result = ppox.train(ppox.Config(env="CartPole-v1"))
    policy = ppox.load(result.run_path)
    actions = policy.act(observations)
"""

from ppox._version import __version__
from ppox.config import Config
from ppox.drivers.fused_program import make_train
from ppox.errors import ConfigError
from ppox.evaluate import evaluate
from ppox.policy import Policy, load
from ppox.training import TrainResult, init_distributed, resume, train

__all__ = ["Config", "ConfigError", "Policy", "TrainResult", "evaluate", "load", "init_distributed", "make_train",
           "resume", "train", "__version__"]
