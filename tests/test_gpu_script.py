"""benchmarks/gpu.py, the one script that measures every GPU figure the docs promise (docs/gpu.md): its plan
holds each of them, its smoke mode runs end to end on a CPU and writes a record that --report turns into
docs/gpu.md's Results tables, and a run cut off by SIGTERM keeps its record and names the item in flight."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu.py"
FUSED = [f"fused {env} {n}" for env in ("CartPole-v1", "Breakout-MinAtar") for n in (2048, 8192, 32768, 65536)]
PROMISED = [*FUSED, "host ALE/Breakout-v5", "lm sample", "lm ppo", "brax"]  # docs/gpu.md, README, issue 34
EXPECTED = [  # the docs' other GPU expectations (docs/sweeps.md, docs/pixels.md)
    "sweep CartPole-v1 vmap",
    "sweep CartPole-v1 map",
    "host ALE/Breakout-v5 envpool",
    "fused ALE/Breakout-v5 envpool",
]


def gpu_py(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_the_plan_holds_every_promised_figure_the_promised_ones_first():
    done = gpu_py("--list")
    assert done.returncode == 0, done.stderr
    ids = [line.split(" {")[0].strip() for line in done.stdout.splitlines()]
    assert ids[0] == "device"
    assert sorted(ids[1:]) == sorted(PROMISED + EXPECTED)
    assert max(ids.index(i) for i in PROMISED) < min(ids.index(i) for i in EXPECTED)
    # the range's ends before its middle: a short budget still spans 2k-64k envs
    assert max(ids.index(f"fused {e} {n}") for e in ("CartPole-v1", "Breakout-MinAtar") for n in (2048, 65536)) < min(
        ids.index(f"fused {e} {n}") for e in ("CartPole-v1", "Breakout-MinAtar") for n in (8192, 32768)
    )


@pytest.mark.slow  # (5 processes that import JAX; 15-40 s on 2 shared cores)
def test_smoke_run_records_every_item_and_reports_the_tables(tmp_path):
    out = tmp_path / "gpu.json"
    done = gpu_py("--smoke", "--only", "fused CartPole,envpool,brax", "--updates", "3", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["smoke"] and record["finished"]
    assert record["device"]["platform"] == "cpu" and record["device"]["versions"]["jax"]
    results = {entry["id"]: entry["result"] for entry in record["items"]}
    fused = results["fused CartPole-v1 64"]
    assert fused["status"] == "ok", fused
    assert fused["steady_steps_per_s"] > 0 and fused["compile_s"] >= 0 and fused["updates"] == 3
    assert results["brax"]["status"] == "skipped"  # (Brax's programs take minutes to compile on a CPU)
    for name in ("host ALE/Breakout-v5 envpool", "fused ALE/Breakout-v5 envpool"):
        assert results[name]["status"] in ("ok", "skipped"), results[name]  # skipped without envpool
    assert "SMOKE RUN ON TINY SIZES: NOT A RESULT" in done.stdout
    table = gpu_py("--report", str(out))
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("| fused CartPole-v1"))
    assert f"{fused['steady_steps_per_s']:,.0f}" in row
    assert "| Brax ant, published scale" in table.stdout and "smoke: Brax's programs" in table.stdout
    assert "NOT A RESULT" in table.stdout


def test_a_run_cut_by_sigterm_keeps_its_record_and_names_the_item_in_flight(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--smoke", "--only", "lm sample", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the item is in flight
            if out.exists() and '"running"' in out.read_text():
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    record = json.loads(out.read_text())
    assert record["device"]["platform"] == "cpu" and not record["finished"]
    [entry] = record["items"]
    assert entry["id"] == "lm sample" and entry["result"]["status"] == "cut"
    assert "SIGTERM" in entry["result"]["error"] and "cut by SIGTERM" in stdout
