"""--track wandb in offline mode: the config, every update's metrics, the run folder's plots and an LM run's
sample completions in RUN/wandb, read back with W&B's own reader of the run file (`wandb leet inspect --json`);
a failed run exits 1; W&B's service process is gone once W&B is torn down."""

import collections
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wandb
from PIL import Image

import ppox
import ppox.lm
from ppox.agent.metrics import METRIC_NAMES
from ppox.errors import ConfigError
from ppox.storage.runlog import RunLog
from ppox.storage.trackers import SAMPLES, chart_name
from tests.helpers import FIXTURES, QUICK

NAMES = {chart_name(m) for m in METRIC_NAMES} | {"charts/steps_per_second"}  # as TensorBoard's tags
WANDB = Path(sys.executable).with_name("wandb")


def service_processes() -> list[str]:
    """This process's children that are W&B's service (wandb-core)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
            command = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # (a process that ended meanwhile)
            continue
        if parent == os.getpid() and "wandb-core" in command:
            found.append(stat.parent.name)
    return found


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline, its own folders under tmp_path; afterwards its service is shut down, and checked gone."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("DATA", "CACHE", "CONFIG", "ARTIFACT"):
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(tmp_path / "wandb-home" / name.lower()))
    yield
    wandb.teardown()
    assert service_processes() == []


def records(run_path: Path) -> list[dict]:
    """The records of the run's offline W&B file, as W&B's reader prints them."""
    (folder,) = (run_path / "wandb").glob("offline-run-*")
    out = subprocess.run(
        [str(WANDB), "leet", "inspect", "--json", str(folder)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def history_counts(found: list[dict]) -> dict[str, int]:
    """Each logged name: the number of history rows (updates) that hold it (media: name.path, name.size, ...)."""
    rows = [
        {k.split(".")[0] for k in r["history"]["item"] if not k.startswith("_")}
        for r in found
        if r["type"] == "history"
    ]
    return collections.Counter(name for row in rows for name in row)


def test_a_cartpole_run_is_in_the_offline_wandb_run(tmp_path, offline):
    result = ppox.train(ppox.Config(env="CartPole-v1", run_dir=str(tmp_path / "runs"), track=("wandb",), **QUICK))
    found, config = records(result.run_path), result.config
    (run,) = [r["run"] for r in found if r["type"] == "run"]
    assert run["display_name"] == result.run_path.name and run["project"] == "ppox"
    assert run["config"]["update"]["env"] == "CartPole-v1" and run["config"]["update"]["num_envs"] == 4
    assert history_counts(found) == dict.fromkeys(NAMES, config.num_updates) and config.num_updates == 4
    steps = [int(r["history"]["step"]["num"]) for r in found if r["type"] == "history"]
    assert steps == [(u + 1) * config.batch_size for u in range(config.num_updates)]  # the global step
    assert [r["exit"].get("exit_code", 0) for r in found if r["type"] == "exit"] == [0]
    assert service_processes()  # (W&B's service runs until W&B is torn down: the fixture checks that it ends)


def test_a_failed_run_exits_1_with_its_plots_and_samples(tmp_path, offline):
    path = tmp_path / "run"
    (path / "plots").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(path / "plots" / "metrics.png")
    sample = {"prompt": "the cat", "completion": " sat", "reward": 0.5}
    config = ppox.Config(env="CartPole-v1", seeds=2, track=("wandb",), **QUICK)
    log = RunLog(config, path)
    for update in range(2):
        log.write({**{m: np.full((2, 1), 0.5) for m in METRIC_NAMES}, SAMPLES: [sample]}, update, 1000.0)
    try:
        raise RuntimeError("the env broke")
    except RuntimeError:
        log.close()  # (as the training closes it while an error is on its way)
    found = records(path)
    assert [r["exit"]["exit_code"] for r in found if r["type"] == "exit"] == [1]
    per_seed = {f"seed_{s}/{name}" for s in (0, 1) for name in NAMES - {"charts/steps_per_second"}}
    assert history_counts(found) == {**dict.fromkeys(NAMES | per_seed, 2), "plots/metrics": 1, "samples": 1}
    (table,) = (path / "wandb").glob("offline-run-*/files/media/table/samples_*.table.json")
    rows = [[update, "the cat", " sat", 0.5] for update in (0, 1)]
    assert json.loads(table.read_text()) == {"columns": ["update", "prompt", "completion", "reward"], "data": rows}
    assert list((path / "wandb").glob("offline-run-*/files/media/images/plots/metrics_*.png"))


def test_without_wandb_the_run_stops_before_it_starts(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r'^--track wandb needs the wandb package: pip install "ppox\[wandb\]"$'):
        ppox.train(ppox.Config(env="CartPole-v1", run_dir=str(tmp_path), track=("wandb",), **QUICK))
    assert list(tmp_path.iterdir()) == []  # no run folder left


def test_an_lm_run_logs_a_table_of_sample_completions(tmp_path, offline):
    result = ppox.lm.train(
        model=str(FIXTURES / "lm" / "gpt2"),
        prompts=["the cat", "a dog sat"],
        reward=lambda p, c: [float(len(x)) for x in c],
        updates=2,
        prompts_per_update=2,
        max_new_tokens=2,
        epochs=1,
        tensorboard=False,
        track=("wandb",),
        run_dir=str(tmp_path / "runs"),
        run_name="lm",
    )
    (table,) = (result.run_path / "wandb").glob("offline-run-*/files/media/table/samples_*.table.json")
    logged = json.loads(table.read_text())
    assert logged["columns"] == ["update", "prompt", "completion", "reward"]
    assert [row[0] for row in logged["data"]] == [0, 0, 1, 1]  # each update's completions of distinct prompts
    assert all(row[3] == len(row[2]) for row in logged["data"]) and {row[1] for row in logged["data"]} == {
        "the cat",
        "a dog sat",
    }
    assert history_counts(records(result.run_path))["charts/episode_return"] == 2
