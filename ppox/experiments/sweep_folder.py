"""A sweep folder: ``sweep.json`` (the ``Plan``: what to run), ``done/cNNNN.json`` (each finished
configuration: its seeds' curves, final returns and wall time), and the host members' ``runs/`` and ``configs/``.

One process writes a folder at a time (FOLDER/.lock, as run folders have). What is read back is checked before it
is used: a file that is not as ppox wrote it is a one-line ConfigError, and an entry point env or a Ray address
in sweep.json is used only when the user confirms it (``ppox.config.trust``)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ppox.agent.metrics import final_return
from ppox.config.config import Config
from ppox.config.trust import confirm_file_config
from ppox.envs.gym_make import env_factory
from ppox.envs.registry import check_env_id, is_entry_point
from ppox.errors import ConfigError
from ppox.experiments.sweep_space import Axis, Space, is_json_value, is_number, is_number_or_none
from ppox.storage.runfolder import LOCK_FILE, RunLock
from ppox.utils.files import atomic_write_text

SPEC_FILE = "sweep.json"
KEPT = ("episode_return", "episode_count", "episode_length")  # the curves a sweep keeps per member
SUBFOLDERS = ("done", "configs", "runs", "report")  # written by the sweep: never a link to elsewhere
RECORD_KEYS = ("index", "overrides", "batch_size", "wall_s", "final_return", "curves")  # what the report reads
MAX_DEPTH = 8  # deeper than any file ppox writes


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
    def from_json(cls, data: Any, **how) -> Plan:
        """The Plan of sweep.json's object, every configuration checked; ConfigError (one line) otherwise."""
        if not (isinstance(data, dict) and {"base", "axes", "combos", "seeds"} <= set(data)):
            raise ConfigError("it is no object with base, axes, combos and seeds")
        base = Config.from_dict(data["base"])
        if not isinstance(data["axes"], list):
            raise ConfigError("its axes are no list")
        axes = tuple(Axis.from_json(a) for a in data["axes"])
        combos, names, seeds = data["combos"], {a.name for a in axes}, data["seeds"]
        if not (isinstance(combos, list) and combos and all(_is_combo(c, names) for c in combos)):
            raise ConfigError("its combos are no list of configurations, each a value for every axis")
        if not (isinstance(seeds, int) and is_number(seeds) and 1 <= seeds < 10**6):
            raise ConfigError("its seeds are no count")
        plan = cls(Space(base, axes), tuple({k: _tuple(v) for k, v in c.items()} for c in combos), seeds, **how)
        for index in range(len(combos)):
            plan.config(index)  # (validated)
        return plan


def _is_combo(combo: Any, names: set[str]) -> bool:
    return isinstance(combo, dict) and set(combo) == names and all(map(is_json_value, combo.values()))


def _jsonable(combo: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in combo.items()}


def _tuple(value):
    return tuple(value) if isinstance(value, list) else value


def read_json(path: Path, fix: str) -> Any:
    """The JSON value of a file that ppox wrote; ConfigError, one line ending in ``fix``, where it is not one:
    no plain file, unreadable, not UTF-8, not JSON, or nested deeper (or with numbers longer) than ppox writes."""
    why = ""
    try:
        if not path.is_file():
            why = "not a plain file" if os.path.lexists(path) else "no such file"
        else:
            value = json.loads(path.read_bytes().decode())
            why = "" if _shallow(value) else f"nested deeper than {MAX_DEPTH} levels"
    except OSError as err:
        why = err.strerror or str(err)
    except UnicodeDecodeError:
        why = "not UTF-8 text"
    except json.JSONDecodeError as err:
        why = f"not JSON: {err.msg} at line {err.lineno}"
    except (ValueError, RecursionError) as err:  # (integers of thousands of digits; deep nesting)
        why = f"not JSON as ppox writes it: {str(err)[:60] or type(err).__name__}"
    if why:
        raise ConfigError(f"cannot read {path} ({why}); {fix}")
    return value


def _shallow(value: Any) -> bool:
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [v for x in level for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else ())]
        if not level:
            return True
    return False


def read_plan(folder: Path, **how) -> Plan:
    """The Plan of FOLDER/sweep.json with ``how`` (members, batch, jobs, ray); ConfigError (one line) if the file
    is no sweep plan that ppox wrote. Nothing named in it is imported or dialled."""
    path = Path(folder) / SPEC_FILE
    data = read_json(path, "give the folder of a sweep")
    try:
        return Plan.from_json(data, **how)
    except ConfigError as err:
        raise ConfigError(f"{path} is not a sweep plan as ppox writes it: {err}") from None


def load_plan(folder: Path, env: str | None = None, trust: bool = False, **how) -> Plan:
    """``read_plan``, to be run: an entry point env or a Ray address that sweep.json names (in its base or a
    configuration) is used only when ``env`` / ``how['ray']`` repeat it or ``trust`` (ConfigError otherwise)."""
    plan = read_plan(folder, **how)
    for config in dict.fromkeys(plan.config(i) for i in range(len(plan.combos))):
        confirm_file_config(config, Path(folder) / SPEC_FILE, env, plan.ray, trust)
    return plan


def check_envs(configs: Iterable[Config]) -> None:
    """ConfigError, before any work, for an env that cannot be made: an unknown id, or an entry point that does
    not import or names no env class or factory (importing it runs its code: the user named or confirmed it)."""
    for env in dict.fromkeys(c.env for c in configs):
        check_env_id(env)
        if is_entry_point(env):
            env_factory(env)


def check_folder(plan: Plan, out: Path) -> None:
    """ConfigError unless OUT can hold this sweep: absent, empty, or holding this very sweep (its sweep.json the
    same plan, its own folders no links to elsewhere). Reads only."""
    if not out.is_dir():
        if os.path.lexists(out):
            raise ConfigError(f"{out} is not a folder; choose another --out")
        return
    for name in SUBFOLDERS:
        path = out / name
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise ConfigError(f"{path} is a link or a file: a sweep writes only into folders it made; move it away")
    if not os.path.lexists(out / SPEC_FILE):
        done = out / "done"
        left = sorted(set(os.listdir(out)) - {LOCK_FILE, "done"}) or (os.listdir(done) if done.is_dir() else [])
        if left:
            raise ConfigError(
                f"{out} holds {left[0]!r} but no {SPEC_FILE}: it is no sweep folder; choose another --out"
            )
    elif read_plan(out).to_json() != json.loads(json.dumps(plan.to_json())):
        raise ConfigError(
            f"{out} holds another sweep (its {SPEC_FILE} differs); choose another --out, or "
            f"continue that one with: ppox sweep --resume {out}"
        )


def lock_folder(out: Path, check: Callable[[], None]) -> RunLock:
    """OUT made, and OUT/.lock held (ConfigError naming OUT while another ppox process writes it); ``check()``
    passes before anything is made and again under the lock (ConfigError otherwise, OUT left as it was)."""
    lock_file = out / LOCK_FILE
    if lock_file.is_symlink():
        raise ConfigError(f"{lock_file} is a link: a ppox folder's lock never is; move it away")
    if lock_file.exists():
        RunLock(out).release()  # (a live writer is refused before anything is read)
    check()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot make the folder {out}: {err.strerror or err}; choose another --out") from None
    lock = RunLock(out)
    try:
        check()
    except BaseException:
        lock.release()
        raise
    return lock


def open_folder(plan: Plan, out: Path) -> Path:
    """Make the sweep folder, or check that the one there holds this very sweep (then it resumes)."""
    check_folder(plan, out)
    (out / "done").mkdir(parents=True, exist_ok=True)
    if not (out / SPEC_FILE).exists():
        atomic_write_text(out / SPEC_FILE, json.dumps(plan.to_json(), indent=1))
    return out


def done_path(folder: Path, index: int) -> Path:
    return folder / "done" / f"c{index:04d}.json"


def read_done(folder: Path, plan: Plan, index: int) -> dict | None:
    """The record of configuration ``index`` (None if it is not done), checked against the plan: ConfigError
    (one line, naming the file) if it is not this configuration's record as ppox writes it."""
    path = done_path(folder, index)
    if not os.path.lexists(path):
        return None
    fix = "delete it to run that configuration again"
    record = read_json(path, fix)
    why = _record_problem(record, plan, index)
    if why:
        raise ConfigError(f"{path} is not the record of configuration {index} of this sweep ({why}); {fix}")
    return record


def finished(folder: Path, plan: Plan) -> list[dict]:
    """The records of the configurations done in FOLDER, by index (each checked, see ``read_done``); files in
    done/ that are no configuration's record are not read."""
    return [r for r in (read_done(folder, plan, i) for i in range(len(plan.combos))) if r is not None]


def _record_problem(record: Any, plan: Plan, index: int) -> str:
    if not isinstance(record, dict) or not set(RECORD_KEYS) <= set(record):
        return f"not an object with {', '.join(RECORD_KEYS)}"
    if not (isinstance(record["index"], int) and is_number(record["index"]) and record["index"] == index):
        return "another index"
    if record["overrides"] != _jsonable(plan.combos[index]):
        return "other overrides"
    if not (isinstance(record["batch_size"], int) and is_number(record["batch_size"]) and record["batch_size"] > 0):
        return "batch_size is no positive integer"
    if not (is_number(record["wall_s"]) and record["wall_s"] >= 0):
        return "wall_s is no number of seconds"
    finals, curves = record["final_return"], record["curves"]
    if not (isinstance(finals, list) and len(finals) == plan.seeds and all(is_number_or_none(x) for x in finals)):
        return f"final_return is no list of {plan.seeds} numbers"
    shapes = {_shape(curves.get(k)) if isinstance(curves, dict) else None for k in KEPT[:2]}
    if len(shapes) != 1 or [shape[0] if shape else None for shape in shapes] != [plan.seeds]:
        return f"its curves are no [{plan.seeds} seeds][updates] numbers"
    return ""


def _shape(rows: Any) -> tuple[int, int] | None:
    if not (isinstance(rows, list) and rows and all(isinstance(r, list) for r in rows)):
        return None
    if len({len(r) for r in rows}) != 1 or not rows[0] or not all(is_number_or_none(x) for r in rows for x in r):
        return None
    return len(rows), len(rows[0])


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
