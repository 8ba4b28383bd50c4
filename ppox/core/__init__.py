"""The algorithm's math: pure JAX functions, no environments, no I/O; ``ADVANTAGE_ESTIMATORS`` names the
advantage estimators that ``--advantage`` chooses from."""

from ppox.core.advantages import (
    ADVANTAGE_ESTIMATORS,
    EstimatorParams,
    Trajectory,
    discounted_returns,
    gae,
    nstep_advantages,
    td_residuals,
)
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
    "ADVANTAGE_ESTIMATORS",
    "Categorical",
    "DiagGaussian",
    "EstimatorParams",
    "LossTerms",
    "MultiCategorical",
    "RewardScaler",
    "RunningMeanStd",
    "Trajectory",
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
