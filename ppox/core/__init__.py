"""The algorithm's math: pure JAX functions, no environments, no I/O."""

from ppox.core.advantages import discounted_returns, gae, nstep_advantages, td_residuals
from ppox.core.distributions import Categorical, DiagGaussian, MultiCategorical
from ppox.core.losses import (
    LossTerms,
    approx_kl,
    clip_fraction,
    clipped_surrogate,
    explained_variance,
    ppo_loss,
    value_loss,
)
from ppox.core.normalize import (
    RewardScaler,
    RunningMeanStd,
    normalize,
    scale_reward,
    update_stats,
)

__all__ = [
    "Categorical",
    "DiagGaussian",
    "LossTerms",
    "MultiCategorical",
    "RewardScaler",
    "RunningMeanStd",
    "approx_kl",
    "clip_fraction",
    "clipped_surrogate",
    "discounted_returns",
    "explained_variance",
    "gae",
    "normalize",
    "nstep_advantages",
    "ppo_loss",
    "scale_reward",
    "td_residuals",
    "update_stats",
    "value_loss",
]
