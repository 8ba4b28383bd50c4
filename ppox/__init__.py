"""ppox: Proximal Policy Optimization on JAX.

    import ppox
    result = ppox.train(ppox.Config(env="CartPole-v1"))
    policy = ppox.load(result.run_path)
    actions = policy.act(observations)
"""

__version__ = "0.1.0"

from ppox.config import Config, ConfigError  # noqa: E402
from ppox.policy import Policy, load  # noqa: E402
from ppox.training import TrainResult, init_distributed, resume, train  # noqa: E402
from ppox.drivers.fused import make_train  # noqa: E402

__all__ = ["Config", "ConfigError", "Policy", "TrainResult", "load", "init_distributed", "make_train", "resume", "train", "__version__"]
