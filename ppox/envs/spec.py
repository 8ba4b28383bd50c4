"""What a policy needs to know about an environment: observation shape and action space."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Observation shape and action space of an environment, as plain JSON-able values.

    action_kind: "discrete" (action_dims = (n,)), "continuous" (action_dims = (dim,), with
    bounds action_low/action_high) or "multi_discrete" (action_dims = sizes).
    """

    obs_shape: tuple[int, ...]
    action_kind: str
    action_dims: tuple[int, ...]
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EnvSpec":
        def tup(x):
            return None if x is None else tuple(x)

        return cls(
            obs_shape=tuple(data["obs_shape"]),
            action_kind=data["action_kind"],
            action_dims=tuple(data["action_dims"]),
            action_low=tup(data.get("action_low")),
            action_high=tup(data.get("action_high")),
        )
