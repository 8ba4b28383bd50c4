"""A sweep folder: ``sweep.json`` (the ``Plan``: what to run), ``done/cNNNN.json`` (each finished
configuration: its seeds' curves, final returns and wall time), and the host members' ``runs/`` and ``configs/``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ppox.agent.metrics import final_return
from ppox.config.config import Config
from ppox.errors import ConfigError
from ppox.experiments.sweep_space import Axis, Space
from ppox.utils.files import atomic_write_text

SPEC_FILE = "sweep.json"
KEPT = ("episode_return", "episode_count", "episode_length")  # the curves a sweep keeps per member


@dataclasses.dataclass(frozen=True)
class Plan:
    """A sweep: the space, its configurations (overrides of the base), seeds per configuration, how to run."""

    space: Space
    combos: tuple[dict, ...]
    seeds: int = 4
    members: str = "auto"  # fused: vmap, map or auto (map on a CPU, vmap on an accelerator)
    batch: int | None = None  # fused: members per program call (default: vmap what fits the memory budget, map seeds)
    jobs: int = 1  # host: processes at a time
    ray: str | None = None  # host: members as Ray tasks on this cluster ('local', 'auto' or an address)

    def config(self, index: int) -> Config:
        return self.space.config(self.combos[index])

    def to_json(self) -> dict:
        return {
            "base": json.loads(self.space.base.to_json()),
            "axes": [a.to_json() for a in self.space.axes],
            "combos": [_jsonable(c) for c in self.combos],
            "seeds": self.seeds,
        }

    @classmethod
    def from_json(cls, data: dict, **how) -> Plan:
        base = Config.from_dict(data["base"])
        axes = tuple(Axis(a["name"], tuple(_tuple(v) for v in a["values"]), a["low"], a["high"]) for a in data["axes"])
        combos = tuple({k: _tuple(v) for k, v in c.items()} for c in data["combos"])
        return cls(Space(base, axes), combos, data["seeds"], **how)


def _jsonable(combo: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in combo.items()}


def _tuple(value):
    return tuple(value) if isinstance(value, list) else value


def open_folder(plan: Plan, out: Path) -> Path:
    """Make the sweep folder, or check that the one there holds this very sweep (then it resumes)."""
    spec = out / SPEC_FILE
    if spec.exists():
        if json.loads(spec.read_text()) != json.loads(json.dumps(plan.to_json())):
            raise ConfigError(
                f"{out} holds another sweep (its {SPEC_FILE} differs); choose another --out, or "
                f"continue that one with: ppox sweep --resume {out}"
            )
    else:
        (out / "done").mkdir(parents=True, exist_ok=True)
        atomic_write_text(spec, json.dumps(plan.to_json(), indent=1))
    (out / "done").mkdir(exist_ok=True)
    return out


def done_path(folder: Path, index: int) -> Path:
    return folder / "done" / f"c{index:04d}.json"


def write_done(folder: Path, plan: Plan, index: int, metrics: dict[str, np.ndarray], wall: float) -> None:
    """One configuration's record: its overrides, config, per-seed final return, curves [seeds, updates]."""
    config = plan.config(index)
    record = {
        "index": index,
        "overrides": _jsonable(plan.combos[index]),
        "config": json.loads(config.to_json()),
        "seeds": [config.seed + s for s in range(plan.seeds)],
        "batch_size": config.batch_size,
        "final_return": [None if not np.isfinite(x) else float(x) for x in final_return(metrics)],
        "wall_s": round(wall, 3),
        "curves": {k: [[None if not np.isfinite(x) else float(x) for x in row] for row in metrics[k]] for k in KEPT},
    }
    atomic_write_text(done_path(folder, index), json.dumps(record))


def member_folder(folder: Path, index: int, seed_index: int) -> Path:
    return folder / "runs" / f"c{index:04d}_s{seed_index}"


def member_log(folder: Path, index: int, seed_index: int) -> Path:
    return folder / "configs" / f"c{index:04d}_s{seed_index}.log"
