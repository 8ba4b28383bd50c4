"""--track mlflow: a run's config, every update's metrics, its plots and samples in a local MLflow file store,
read back with MLflow's own client; a failed run is FAILED; a store that fails stops the run, which resumes."""

import importlib.util
import json

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from PIL import Image

import ppox
from ppox.agent.metrics import METRIC_NAMES
from ppox.cli import main
from ppox.errors import RunWriteError
from ppox.storage.runlog import RunLog
from ppox.storage.trackers import SAMPLES, chart_name
from tests.helpers import QUICK

NAMES = {chart_name(m) for m in METRIC_NAMES} | {"charts/steps_per_second"}  # as TensorBoard's tags


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A temporary MLflow file store, named by MLFLOW_TRACKING_URI."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(uri)


def mlflow_run_id(run_path) -> str:
    return json.loads((run_path / "trackers.json").read_text())["mlflow"]


def counts(store: MlflowClient, run_id: str) -> dict[str, int]:
    """Each metric's name: the number of values it received."""
    return {name: len(store.get_metric_history(run_id, name)) for name in store.get_run(run_id).data.metrics}


def test_a_cartpole_run_is_in_the_mlflow_store(tmp_path, store):
    result = ppox.train(ppox.Config(env="CartPole-v1", run_dir=str(tmp_path / "runs"), track=("mlflow",), **QUICK))
    run_id, config = mlflow_run_id(result.run_path), result.config
    run = store.get_run(run_id)
    assert run.info.run_name == result.run_path.name and run.info.status == "FINISHED"
    assert store.get_experiment(run.info.experiment_id).name == "ppox"
    assert run.data.params["env"] == "CartPole-v1" and run.data.params["num_envs"] == "4"
    assert counts(store, run_id) == dict.fromkeys(NAMES, config.num_updates) and config.num_updates == 4
    steps = [m.step for m in store.get_metric_history(run_id, "charts/episode_return")]
    assert steps == [(u + 1) * config.batch_size for u in range(config.num_updates)]  # the global step


def log_chunks(path, config, chunks: int, fail: bool = False, samples=None) -> None:
    """A run log that records ``chunks`` updates of [seeds, 1] metrics, then closes (with ``fail``: while an
    error is on its way, as the training does)."""
    path.mkdir(parents=True, exist_ok=True)
    log = RunLog(config, path)
    for update in range(chunks):
        metrics = {name: np.full((config.seeds, 1), update + 0.5) for name in METRIC_NAMES}
        log.write({**metrics, SAMPLES: samples or []}, update, 1000.0)
    if not fail:
        return log.close()
    try:
        raise RuntimeError("the env broke")
    except RuntimeError:
        log.close()


def test_a_failed_run_is_failed_with_its_plots_and_samples(tmp_path, store):
    path = tmp_path / "run"
    (path / "plots").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(path / "plots" / "metrics.png")
    sample = {"prompt": "the cat", "completion": " sat", "reward": 0.5}
    config = ppox.Config(env="CartPole-v1", seeds=2, track=("mlflow",), **QUICK)
    log_chunks(path, config, 2, fail=True, samples=[sample])
    run_id = mlflow_run_id(path)
    assert store.get_run(run_id).info.status == "FAILED"
    per_seed = {f"seed_{s}/{name}" for s in (0, 1) for name in NAMES - {"charts/steps_per_second"}}
    assert counts(store, run_id) == dict.fromkeys(NAMES | per_seed, 2)
    assert {f.path for f in store.list_artifacts(run_id, "plots")} == {"plots/metrics.png"}
    table = json.loads(open(store.download_artifacts(run_id, "samples.json", str(tmp_path))).read())
    rows = [[update, "the cat", " sat", 0.5] for update in (0, 1)]
    assert table == {"columns": ["update", "prompt", "completion", "reward"], "data": rows}


def test_the_default_store_is_mlruns_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")  # (set by the tracker for the file store; restored after)
    log_chunks(tmp_path / "run", ppox.Config(env="CartPole-v1", track=("mlflow",), **QUICK), 1)
    store = MlflowClient((tmp_path / "mlruns").as_uri())
    run = store.get_run(mlflow_run_id(tmp_path / "run"))
    assert run.info.status == "FINISHED" and run.info.run_name == "run"


def test_without_mlflow_the_run_stops_before_it_starts(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    code = main(
        [
            "train",
            "--env",
            "CartPole-v1",
            "--total-timesteps",
            "2048",
            "--num-envs",
            "4",
            "--num-steps",
            "128",
            "--no-progress",
            "--track",
            "mlflow",
            "--run-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and 'needs the mlflow package: pip install "ppox[mlflow]"' in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no run folder left


def test_a_store_that_fails_stops_the_run_and_resume_continues_it(tmp_path, store, monkeypatch):
    log_batch, written = MlflowClient.log_batch, []

    def failing_third(self, run_id, metrics=(), **kwargs):
        written.extend([1] if metrics else [])
        if len(written) == 3:
            raise MlflowException("the store went away")
        return log_batch(self, run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", failing_third)
    config = ppox.Config(env="CartPole-v1", run_dir=str(tmp_path / "runs"), track=("mlflow",), **QUICK)
    with pytest.raises(RunWriteError, match=r"--track mlflow: could not log to .*the store went away.*--resume"):
        ppox.train(config.replace(checkpoint_every=config.num_steps))  # a checkpoint after every update
    (run_path,) = (tmp_path / "runs").iterdir()
    run_id = mlflow_run_id(run_path)
    assert store.get_run(run_id).info.status == "FAILED"
    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)
    ppox.resume(run_path)
    assert store.get_run(run_id).info.status == "FINISHED"  # the same MLflow run, continued
    steps = {m.step for m in store.get_metric_history(run_id, "losses/value_loss")}
    assert steps == {(u + 1) * config.batch_size for u in range(config.num_updates)}
