"""Every GPU figure the docs promise, in one run of a few minutes (docs/gpu.md says what each one means).

    python benchmarks/gpu.py                  # on a GPU: writes benchmarks/results/gpu.json (about 8 minutes at most)
    python benchmarks/gpu.py --smoke          # tiny sizes, a CPU in 1-3 minutes: writes /tmp/ppox_gpu_smoke.json
    python benchmarks/gpu.py --list           # the plan, without running it
    python benchmarks/gpu.py --only lm,atari  # the items whose id contains one of these words
    python benchmarks/gpu.py --report benchmarks/results/gpu.json   # docs/gpu.md's Results rows from a record

Items, in the order they run (the first ones matter most, so a short budget keeps them):

- Brax: brax/ant at Brax's published PPO scale, ppox's fused driver against Brax's own ppo.train on the same GPU
  (benchmarks/brax_side_by_side.py; skipped in --smoke);
- fused CartPole-v1 and Breakout-MinAtar (their presets) at --num-envs 2048 and 65536 first, then 8192 and 32768:
  ``ppox.train`` of --updates updates; steady steps/s from the run log's per-chunk wall times (metrics.csv) after
  the first chunk, the update program's compile time apart;
- LM sampling tokens/s (``ppox.lm.make_sampler``; the 10.1M-parameter GPT-2 shape of benchmarks/lm_throughput.py,
  random weights, batches 1, 32, 256) and tokens/s of whole PPO updates (``ppox.lm.train``, the model of
  benchmarks/lm_ppo_throughput.py, 64 prompts per update);
- Atari host driver (ALE/Breakout-v5's preset: 8 envs, ale-py's vector env, the jitted CNN actor), if ale-py is
  installed; the same measure;
- a fused sweep of CartPole-v1 (16 members: 4 learning rates x 4 seeds) with --members vmap and with map
  (docs/sweeps.md: "on a GPU, vmap is where the speed is");
- Atari with EnvPool on the host and the fused driver (docs/pixels.md: the fused driver's saving grows on a GPU),
  if envpool is installed (it has no wheel for Python 3.12: on the device image it is skipped).

Each item runs in its own process (a timeout per item; JAX's memory of one item is freed before the next) and
never fails the run: an error, a timeout or a skip is recorded for that item and the run goes on. The JSON is
written again before and after every item (the item in flight is marked "running"), so a run cut short keeps
what it measured; SIGTERM (``timeout``) or Ctrl-C ends the item in flight, records it as "cut" and writes the
JSON. --budget-s: items that no longer fit are skipped. Outside a GPU (without --smoke) the default output goes to
/tmp, never to benchmarks/results.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

RESULTS = HERE / "results" / "gpu.json"
SMOKE_OUT = Path(tempfile.gettempdir()) / "ppox_gpu_smoke.json"
CPU_OUT = Path(tempfile.gettempdir()) / "ppox_gpu_on_cpu.json"
GPU_PLATFORMS = ("gpu", "cuda", "rocm")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")  # "ppox.errors.ConfigError: ..."
FUSED_ENVS = ("CartPole-v1", "Breakout-MinAtar")
ATARI = "ALE/Breakout-v5"
# benchmarks/lm_throughput.py's model: GPT-2's vocabulary (tied), 6 layers, width 160, 5 heads: 10.1M parameters
GPT2_10M = {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 160, "n_layer": 6, "n_head": 5, "n_positions": 1024}
GPT2_TINY = {**GPT2_10M, "vocab_size": 512, "n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 128}


def plan(args) -> list[dict]:
    """The items, most important first: the promised figures (fused at the smallest and largest sizes, the LM
    figures, Atari, then the middle sizes), then the figures that test the docs' other GPU expectations."""
    sizes = (64,) if args.smoke else (2048, 65536, 8192, 32768)
    updates = args.updates or (4 if args.smoke else 20)
    tiny = {"num_steps": 16} if args.smoke else {}
    fused = [
        {
            "id": f"fused {env} {n}",
            "kind": "train",
            "params": {"env": env, "driver": "fused", "num_envs": n, "updates": updates, **tiny},
        }
        for n in sizes
        for env in FUSED_ENVS
    ]
    small = {"num_envs": 2, "num_steps": 16, "num_minibatches": 2} if args.smoke else {}
    atari = {
        "id": f"host {ATARI}",
        "kind": "train",
        "params": {"env": ATARI, "driver": "host", "updates": 3 if args.smoke else 8, **small},
    }
    envpool = [
        {
            "id": f"{driver} {ATARI} envpool",
            "kind": "train",
            "params": {"env": ATARI, "driver": driver, "vec": "envpool", "updates": 3 if args.smoke else 8, **small},
        }
        for driver in ("host", "fused")
    ]
    model = GPT2_TINY if args.smoke else GPT2_10M
    sample = {
        "id": "lm sample",
        "kind": "lm_sample",
        "params": {
            "model": model,
            "batches": [1, 4] if args.smoke else [1, 32, 256],
            "prompt": 8 if args.smoke else 32,
            "new": 8 if args.smoke else 64,
            "repeats": 2 if args.smoke else 3,
        },
    }
    ppo = {
        "id": "lm ppo",
        "kind": "lm_ppo",
        "params": {
            "model": model,
            "prompts": 4 if args.smoke else 64,
            "prompt_tokens": 8 if args.smoke else 32,
            "new": 8 if args.smoke else 32,
            "updates": 3 if args.smoke else 4,
        },
    }
    sweeps = [
        {
            "id": f"sweep CartPole-v1 {members}",
            "kind": "sweep",
            "params": {
                "env": "CartPole-v1",
                "members": members,
                "learning_rates": [3e-4, 1e-3] if args.smoke else [1e-4, 3e-4, 1e-3, 3e-3],
                "seeds": 2 if args.smoke else 4,
                "updates": 4 if args.smoke else 40,
                **tiny,
            },
        }
        for members in ("vmap", "map")
    ]
    # Brax's Ant at Brax's published scale, ppox against Brax's own PPO (benchmarks/brax_side_by_side.py); on a CPU
    # smoke run it is skipped (each of the two programs takes minutes to compile on 2 cores)
    # (two programs to compile and two evaluations: its own timeout)
    brax: dict[str, Any] = {
        "id": "brax",
        "kind": "brax",
        "params": {"smoke": bool(args.smoke), "updates": 20},
        "timeout_s": 420.0,
    }
    items: list[dict[str, Any]] = [brax] + fused[:4] + [sample, ppo, atari] + fused[4:] + sweeps + envpool
    if args.only:
        words = [w.strip() for w in args.only.split(",") if w.strip()]
        items = [item for item in items if any(w.lower() in item["id"].lower() for w in words)]
    return [{"id": "device", "kind": "device", "params": {}}] + items


# ---------------------------------------------------------------------------------------------------------------
# Measures: each runs in a child process (``--item``) and returns a JSON-able dict.


def measure_device(_: dict) -> dict:
    import importlib.metadata as md
    import platform

    import jax

    device = jax.devices()[0]
    versions: dict[str, str | None] = {}
    for name in ("jax", "jaxlib", "flax", "optax", "gymnax", "gymnasium", "numpy", "ale-py"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    smi = None
    try:
        smi = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        pass
    import ppox

    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "devices": [str(d) for d in jax.devices()],
        "bytes_limit": (device.memory_stats() or {}).get("bytes_limit"),
        "nvidia_smi": smi,
        "versions": versions,
        "ppox": ppox.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "env": {
            k: os.environ.get(k)
            for k in (
                "XLA_PYTHON_CLIENT_MEM_FRACTION",
                "XLA_PYTHON_CLIENT_PREALLOCATE",
                "XLA_FLAGS",
                "JAX_COMPILATION_CACHE_DIR",
                "JAX_PLATFORMS",
            )
        },
    }


def chunk_timing(rows: list[dict], batch: int, updates: int) -> dict:
    """Steady steps/s and the compile time, from metrics.csv's wall_time (seconds since the run log started, after
    driver.init(), one value per chunk of updates): the chunks after the first are steady; the first holds the
    update program's compilation."""
    walls = [float(r["wall_time"]) for r in rows]
    first = walls.count(walls[0])  # updates of the first chunk
    if first == updates:
        return {"first_chunk_s": walls[0], "first_chunk_updates": first, "note": "one chunk: no steady figure"}
    per_update = (walls[-1] - walls[0]) / (updates - first)
    return {
        "first_chunk_s": round(walls[0], 3),
        "first_chunk_updates": first,
        "steady_s_per_update": round(per_update, 5),
        "steady_steps_per_s": round(batch / per_update, 1),
        "compile_s": round(walls[0] - first * per_update, 3),
        "chunks": len(set(walls)),
    }


def measure_train(p: dict) -> dict:
    """ppox.train of ``p["updates"]`` updates of the env's preset (num_envs and the rest overridden by ``p``)."""
    import importlib.util

    overrides = {k: p[k] for k in ("num_envs", "num_steps", "num_minibatches", "vec") if k in p}
    vec = overrides.get("vec") or ("ale" if p["env"].startswith("ALE/") else None)  # (the Atari presets' --vec)
    needs = {"ale": ("ale_py", "atari"), "envpool": ("envpool", "envpool")}.get(vec or "")
    if needs is not None and importlib.util.find_spec(needs[0]) is None:
        return {"status": "skipped", "note": f"{needs[0]} is not installed (pip install 'ppox[{needs[1]}]')"}
    import ppox

    base = ppox.Config.preset(p["env"], **overrides)
    updates, batch = p["updates"], base.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        config = base.replace(
            driver=p["driver"],
            total_timesteps=updates * batch,
            run_dir=tmp,
            run_name="run",
            tensorboard=False,
            progress=False,
            checkpoint_every=0,
        )
        tick = time.perf_counter()
        result = ppox.train(config)
        call_s = time.perf_counter() - tick
        with open(Path(result.run_path) / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    out = {
        "status": "ok",
        "vec": config.vec,
        "num_envs": config.num_envs,
        "num_steps": config.num_steps,
        "batch": batch,
        "updates": updates,
        "steps": updates * batch,
        "train_call_s": round(call_s, 3),
        "end_to_end_steps_per_s": round(updates * batch / call_s, 1),
        **chunk_timing(rows, batch, updates),
    }
    if "steady_s_per_update" in out:  # what is neither compilation nor steady updates: setup, init, the final save
        out["other_s"] = round(call_s - out["compile_s"] - updates * out["steady_s_per_update"], 3)
    returns = [float(r["episode_return"]) for r in rows if r["episode_return"] not in ("", "nan")]
    out["last_episode_return"] = returns[-1] if returns else None
    return out


def kv_cache_bytes(config, batch: int, slots: int, itemsize: int) -> int:
    """The sampler's key/value cache: keys and values of every layer, [batch, slots, kv_heads, head_dim] each."""
    return 2 * config.num_layers * batch * slots * config.num_kv_heads * config.head_dim * itemsize


def measure_lm_sample(p: dict) -> dict:
    import jax
    import jax.numpy as jnp

    import ppox.lm

    config = ppox.lm.from_hf(p["model"])
    params = ppox.lm.init_params(config, jax.random.key(0))
    sample = ppox.lm.make_sampler(config, ppox.lm.Sampling(max_new_tokens=p["new"], eos_ids=(), pad_id=0))
    rows = []
    for batch in p["batches"]:
        row = {"batch": batch, "kv_cache_bytes": kv_cache_bytes(config, batch, p["prompt"] + p["new"], 4)}
        try:
            prompt = jax.random.randint(jax.random.key(1), (batch, p["prompt"]), 0, config.vocab_size)
            mask = jnp.ones_like(prompt, bool)
            tick = time.perf_counter()
            jax.block_until_ready(sample(params, prompt, mask, jax.random.key(2)))
            row["first_call_s"] = round(time.perf_counter() - tick, 3)
            times = []
            for i in range(p["repeats"]):
                tick = time.perf_counter()
                jax.block_until_ready(sample(params, prompt, mask, jax.random.key(3 + i)))
                times.append(time.perf_counter() - tick)
            row.update(best_s=round(min(times), 5), tokens_per_s=round(batch * p["new"] / min(times), 1))
        except Exception as err:  # noqa: BLE001  (one batch size's failure, e.g. out of memory, is recorded)
            row["error"] = f"{type(err).__name__}: {str(err)[:300]}"
        rows.append(row)
    return {
        "status": "ok" if all("error" not in r for r in rows) else "partial",
        "parameters": ppox.lm.parameter_count(config),
        "prompt": p["prompt"],
        "new": p["new"],
        "batches": rows,
    }


def measure_lm_ppo(p: dict) -> dict:
    import jax
    import numpy as np

    import ppox.lm

    config = ppox.lm.from_hf(p["model"])
    vocab = config.vocab_size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        hf = {**p["model"], "eos_token_id": vocab - 1, "pad_token_id": 0}
        ppox.lm.save(folder, ppox.lm.LanguageModel(config, ppox.lm.init_params(config, jax.random.key(0)), hf))
        prompts = np.random.default_rng(0).integers(1, vocab - 1, (max(64, p["prompts"]), p["prompt_tokens"]))
        tick = time.perf_counter()
        result = ppox.lm.train(
            model=str(folder),
            prompts=prompts.tolist(),
            reward=lambda _, c: [0.0] * len(c),
            updates=p["updates"],
            prompts_per_update=p["prompts"],
            max_new_tokens=p["new"],
            max_prompt_tokens=p["prompt_tokens"],
            epochs=4,
            minibatches=2,
            save=False,
        )
        call_s = time.perf_counter() - tick
    rates = [float(r) for r in result.metrics["tokens_per_second"][0]]
    tokens = result.metrics["episode_length"][0] * result.metrics["episode_count"][0]  # response tokens per update
    return {
        "status": "ok",
        "parameters": ppox.lm.parameter_count(config),
        "prompts_per_update": p["prompts"],
        "new": p["new"],
        "epochs": 4,
        "minibatches": 2,
        "tokens_per_s_per_update": [round(r, 1) for r in rates],
        "first_update_tokens_per_s": round(rates[0], 1),
        "first_update_s": round(float(tokens[0]) / rates[0], 3),
        "steady_tokens_per_s": round(statistics.median(rates[1:]), 1) if len(rates) > 1 else None,
        "train_call_s": round(call_s, 3),
    }


def measure_sweep(p: dict) -> dict:
    """A fused sweep's members (learning rates x seeds of one preset) in one program, as ``ppox sweep`` runs a batch
    (``ppox.experiments.sweep.run_members``), with ``--members`` vmap or map: steady member-steps/s between the
    first chunk (compilation) and the last."""
    import ppox
    from ppox.config.config import static_config
    from ppox.experiments.sweep import run_members

    overrides = {k: p[k] for k in ("num_envs", "num_steps") if k in p}
    base = ppox.Config.preset(p["env"], **overrides)
    base = base.replace(total_timesteps=p["updates"] * base.batch_size, tensorboard=False, progress=False)
    configs = [base.replace(learning_rate=lr, seed=s) for lr in p["learning_rates"] for s in range(p["seeds"])]

    class Quiet:  # (the sweep's progress display)
        def advance(self, n: int) -> None:
            pass

    class Never:  # (its signal flag)
        requested = False

    marks: list[tuple[float, int]] = []
    tick = time.perf_counter()
    _, wall = run_members(
        static_config(base.replace(seeds=1)),
        configs,
        p["members"],
        Quiet(),
        Never(),
        lambda _, done: marks.append((time.perf_counter() - tick, done)),
    )
    members, batch = len(configs), base.batch_size
    out = {
        "status": "ok",
        "members": members,
        "mode": p["members"],
        "batch": batch,
        "updates": p["updates"],
        "call_s": round(wall, 3),
        "first_chunk_s": round(marks[0][0], 3),
        "first_chunk_updates": marks[0][1],
        "chunks": len(marks),
    }
    if len(marks) >= 2:
        (t0, d0), (t1, d1) = marks[0], marks[-1]
        per_update = (t1 - t0) / (d1 - d0)
        out.update(
            steady_s_per_update=round(per_update, 5),
            steady_member_steps_per_s=round(members * batch / per_update, 1),
            compile_s=round(marks[0][0] - d0 * per_update, 3),
        )
    return out


def measure_brax(p: dict) -> dict:
    """brax/ant (positional) at Brax's published PPO scale (4096 envs, unroll 5, batch 2048 x 32 minibatches, 4
    epochs), ``updates`` updates: ppox's fused driver, then Brax's ppo.train with the same settings and networks
    (benchmarks/brax_side_by_side.py): steps/s after the first chunk (ppox) or training epoch (Brax), with and
    without compilation, and each one's final stochastic evaluation return."""
    if p.get("smoke"):
        return {"status": "skipped", "note": "smoke: Brax's programs take minutes to compile on a CPU"}
    import importlib.util

    if importlib.util.find_spec("brax") is None:
        return {"status": "skipped", "note": 'Brax is not installed: pip install "ppox[brax]"'}
    import brax_side_by_side as side  # (benchmarks/, this script's folder, is first on sys.path)

    scale = side.SCALES["published"]
    steps = side.steps_per_update(scale) * p["updates"]
    ppox_run, brax_run = side.run_ppox(steps, 0, scale), side.run_brax(steps, 0, scale)
    return {
        "status": "ok",
        "steps": steps,
        "ppox": ppox_run,
        "brax": brax_run,
        "steady_steps_per_s": round(ppox_run["sps_without_compile"], 1),
        "brax_steady_steps_per_s": round(brax_run["sps_without_compile"], 1),
        "ratio": round(ppox_run["sps_without_compile"] / brax_run["sps_without_compile"], 3),
    }


MEASURES = {
    "device": measure_device,
    "train": measure_train,
    "lm_sample": measure_lm_sample,
    "lm_ppo": measure_lm_ppo,
    "sweep": measure_sweep,
    "brax": measure_brax,
}


def child(item: dict) -> None:
    out = MEASURES[item["kind"]](item["params"])
    if item["kind"] not in ("device", "brax"):
        import jax

        stats = jax.devices()[0].memory_stats()  # None on a CPU
        if stats:
            out["peak_bytes_in_use"] = stats.get("peak_bytes_in_use")
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The parent: runs each item in a child process, records, prints the table.


def run_item(item: dict, timeout: float, env: dict) -> dict:
    tick = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--item", json.dumps(item)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as err:
        tail = (err.stderr or b"")[-800:]
        return {
            "status": "timeout",
            "seconds": round(time.perf_counter() - tick, 1),
            "error": f"no result within {timeout:.0f} s",
            "stderr_tail": tail.decode(errors="replace") if isinstance(tail, bytes) else tail,
        }
    seconds = round(time.perf_counter() - tick, 1)
    results = [line[len("RESULT ") :] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not results:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raised = [ln for ln in lines if EXCEPTION_LINE.match(ln)]  # (not JAX's note on its filtered frames)
        return {
            "status": "error",
            "seconds": seconds,
            "error": (raised or lines or [f"exit {done.returncode}"])[-1][:500],
            "stderr_tail": "\n".join(lines[-15:]),
        }
    return {**json.loads(results[-1]), "seconds": seconds}


def write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)


def size(n) -> str:
    """Bytes in MiB or GiB ("" for None)."""
    if not n:
        return ""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def table_rows(entry: dict) -> list[tuple[str, str, str, str]]:
    """(item, figure, compile / first call, notes) lines of one entry."""
    r, name = entry["result"], entry["id"]
    if r.get("status") not in ("ok", "partial"):
        return [(name, r.get("status", "?"), "", str(r.get("note") or r.get("error") or "")[:90])]
    mem = size(r.get("peak_bytes_in_use"))
    if entry["kind"] == "train":
        rate = f"{r['steady_steps_per_s']:,.0f} steps/s" if "steady_steps_per_s" in r else r.get("note", "")
        return [
            (
                name,
                rate,
                f"{r['compile_s']:.1f} s" if "compile_s" in r else "",
                f"end to end {r['end_to_end_steps_per_s']:,.0f}/s, {r['updates']} x {r['batch']:,} steps {mem}",
            )
        ]
    if entry["kind"] == "lm_sample":
        return [
            (
                f"{name} batch {b['batch']}",
                f"{b['tokens_per_s']:,.0f} tokens/s" if "tokens_per_s" in b else "error",
                f"first call {b['first_call_s']:.1f} s" if "first_call_s" in b else "",
                b.get("error", f"kv cache {size(b['kv_cache_bytes'])}")[:90],
            )
            for b in r["batches"]
        ]
    if entry["kind"] == "lm_ppo":
        steady = r["steady_tokens_per_s"]
        return [
            (
                name,
                f"{steady:,.0f} tokens/s" if steady else "",
                f"first update {r['first_update_s']:.1f} s",
                f"{r['prompts_per_update']} x {r['new']} tokens per update {mem}",
            )
        ]
    if entry["kind"] == "sweep":
        rate = r.get("steady_member_steps_per_s")
        return [
            (
                name,
                f"{rate:,.0f} member-steps/s" if rate else "",
                f"{r['compile_s']:.1f} s" if "compile_s" in r else "",
                f"{r['members']} members x {r['updates']} x {r['batch']:,} steps {mem}",
            )
        ]
    return [(name, "ok", "", "")]


# ---------------------------------------------------------------------------------------------------------------
# --report: the rows of docs/gpu.md's Results tables, from a record.


def figure(result: dict | None) -> str:
    """One item's figure as docs/gpu.md's Results tables show it: steady rate (compile s), or its status."""
    if not result:
        return "not run"
    if result.get("status") not in ("ok", "partial"):
        return str(result.get("status"))
    for key in ("steady_steps_per_s", "steady_member_steps_per_s"):
        if result.get(key):
            compile_s = result.get("compile_s")
            return f"{result[key]:,.0f}" + (f" ({compile_s:.0f} s)" if compile_s is not None else "")
    return str(result.get("note") or "no steady figure")


def report(record: dict) -> str:
    """docs/gpu.md's two Results tables, filled from ``record`` (a gpu.json)."""
    found = {entry["id"]: entry["result"] for entry in record["items"]}
    device = record.get("device") or {}
    versions = device.get("versions") or {}
    lines = [
        f"{device.get('device_kind')} ({device.get('platform')}; nvidia-smi: {device.get('nvidia_smi')}), jax "
        f"{versions.get('jax')}, jaxlib {versions.get('jaxlib')}, flax {versions.get('flax')}; {record.get('started')}"
        + ("; SMOKE RUN ON TINY SIZES: NOT A RESULT" if record.get("smoke") else ""),
        "",
    ]
    sizes = sorted({int(i.rsplit(" ", 1)[1]) for i in found if i.startswith("fused ") and i[-1].isdigit()})
    lines += [
        "| figure | " + " | ".join(f"{n:,} envs" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for env in FUSED_ENVS:
        cells = [figure(found.get(f"fused {env} {n}")) for n in sizes]
        lines.append(f"| fused {env}, steady steps/s (compile s) | " + " | ".join(cells) + " |")
    sample = found.get("lm sample") or {}
    rates = [f"{b['tokens_per_s']:,.0f}" if "tokens_per_s" in b else "error" for b in sample.get("batches", [])]
    batches = " / ".join(str(b["batch"]) for b in sample.get("batches", []))
    ppo = found.get("lm ppo") or {}
    brax = found.get("brax") or {}
    atari = found.get(f"host {ATARI}") or {}
    sweep = found.get("sweep CartPole-v1 vmap") or found.get("sweep CartPole-v1 map") or {}
    model = f"{sample['parameters'] / 1e6:.1f}M" if sample.get("parameters") else "10.1M"
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| Atari host ({ATARI}, {atari.get('num_envs', 8)} envs), steady steps/s (compile s) | "
        f"{figure(atari or None)} |",
        f"| LM sampling, {model} GPT-2 shape, tokens/s at batch {batches or '1 / 32 / 256'} | "
        + (" / ".join(rates) if rates else figure(sample or None))
        + " |",
        f"| LM PPO update, {ppo.get('prompts_per_update', 64)} x {ppo.get('new', 32)} tokens, tokens/s "
        f"(first update s) | "
        + (
            f"{ppo['steady_tokens_per_s']:,.0f} ({ppo['first_update_s']:.0f} s)"
            if ppo.get("steady_tokens_per_s")
            else figure(ppo or None)
        )
        + " |",
        f"| fused sweep, CartPole-v1, {sweep.get('members', 16)} members, member-steps/s (compile s): vmap / map | "
        f"{figure(found.get('sweep CartPole-v1 vmap'))} / {figure(found.get('sweep CartPole-v1 map'))} |",
        f"| {ATARI} with EnvPool, steady steps/s: host / fused | "
        f"{figure(found.get(f'host {ATARI} envpool'))} / {figure(found.get(f'fused {ATARI} envpool'))} |",
        "| Brax ant, published scale, steady steps/s: ppox / Brax's PPO (ratio); eval return: ppox / Brax | "
        + (
            f"{brax['steady_steps_per_s']:,.0f} / {brax['brax_steady_steps_per_s']:,.0f} ({brax['ratio']:.2f}x); "
            f"{brax['ppox']['eval_return']:,.0f} / {brax['brax']['eval_return']:,.0f}"
            if brax.get("status") == "ok"
            else brax.get("note") or figure(brax or None)
        )
        + " |",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The parent: runs each item in a child process, records, prints the table.


class Cut(Exception):
    """SIGTERM (``timeout``) while an item runs: it is ended, recorded as cut, and the record written."""


def on_sigterm(signum, _frame) -> None:
    raise Cut("SIGTERM")


def run_all(items, args, record: dict, out: Path, budget: float, item_timeout: float, env: dict, start: float) -> None:
    """Run the items in order, writing the record before and after each (record["out"]: where it goes). Raises Cut
    (SIGTERM) or KeyboardInterrupt once the item in flight is recorded as cut."""
    record["out"], cut = str(out), None
    for item in items:
        elapsed = time.perf_counter() - start
        left = budget - elapsed
        print(f"[{elapsed:6.1f} s] {item['id']} ...", flush=True)
        entry: dict[str, Any] = {**item, "result": {"status": "running", "started_s": round(elapsed, 1)}}
        if item["kind"] != "device":  # (the device item says where the record goes: nothing is written before it)
            record["items"].append(entry)
            write(Path(record["out"]), record)  # (a run cut off now says which item was in flight)
        result: dict[str, Any]
        try:
            if item["kind"] != "device" and left < (5 if args.smoke else 20):
                result = {"status": "skipped", "note": f"budget: {left:.0f} s of --budget-s {budget:.0f} left"}
            else:
                result = run_item(item, max(10.0, min(item.get("timeout_s", item_timeout), left)), env)
        except (Cut, KeyboardInterrupt) as err:  # (subprocess.run has ended the item's process)
            cut = str(err) or type(err).__name__
            result = {
                "status": "cut",
                "seconds": round(time.perf_counter() - start - elapsed, 1),
                "error": f"{cut} after {time.perf_counter() - start:.0f} s of the run",
            }
        entry["result"] = result
        if item["kind"] == "device":
            record["device"] = result
            if result.get("platform") not in GPU_PLATFORMS and not args.smoke and args.out is None:
                record["out"] = str(CPU_OUT)
                print(f"JAX sees no GPU ({result.get('platform')}): writing {CPU_OUT}, not {RESULTS}", flush=True)
            print(
                f"    {result.get('device_kind')} ({result.get('platform')}), jax "
                f"{(result.get('versions') or {}).get('jax')}",
                flush=True,
            )
        else:
            status = result.get("status")
            print(
                f"    {status} in {result.get('seconds', 0):.1f} s"
                + (f": {result.get('error') or result.get('note')}" if status != "ok" else ""),
                flush=True,
            )
        record["elapsed_s"] = round(time.perf_counter() - start, 1)
        write(Path(record["out"]), record)
        if cut:
            raise Cut(cut)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script on a CPU (1-3 minutes)")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="seconds for the whole run (default 480; smoke 360)"
    )
    parser.add_argument(
        "--item-timeout-s", type=float, default=None, help="most seconds per item (default 180; smoke 120)"
    )
    parser.add_argument("--updates", type=int, default=None, help="updates per fused run (default 20; smoke 4)")
    parser.add_argument("--only", default="", help="comma list: run only the items whose id contains one of these")
    parser.add_argument("--out", type=Path, default=None, help="JSON written (default: results/gpu.json on a GPU)")
    parser.add_argument("--list", action="store_true", help="print the plan and stop")
    parser.add_argument("--report", type=Path, help="print docs/gpu.md's Results rows from this JSON and stop")
    parser.add_argument("--item", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.item:
        return child(json.loads(args.item))
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    items = plan(args)
    if args.list:
        for item in items:
            print(f"{item['id']:32s} {json.dumps(item['params'])}")
        return
    budget = args.budget_s or (360.0 if args.smoke else 480.0)
    item_timeout = args.item_timeout_s or (120.0 if args.smoke else 180.0)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    }
    if not args.smoke:
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90")  # 65536 MinAtar envs: see docs/gpu.md
    start = time.perf_counter()
    out = args.out or (SMOKE_OUT if args.smoke else RESULTS)
    record: dict = {
        "what": "benchmarks/gpu.py" + (" --smoke: a check of the script, not a result" if args.smoke else ""),
        "smoke": args.smoke,
        "argv": sys.argv[1:],
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "budget_s": budget,
        "finished": False,
        "device": None,
        "items": [],
    }
    signal.signal(signal.SIGTERM, on_sigterm)
    cut = None
    try:
        run_all(items, args, record, out, budget, item_timeout, env, start)
    except (Cut, KeyboardInterrupt) as err:  # (the record as last written: every finished item, the one in flight)
        cut = str(err) or type(err).__name__
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    out = Path(record.pop("out"))
    if (record["device"] or {}).get("platform") not in GPU_PLATFORMS and not args.smoke and args.out is None:
        out = CPU_OUT  # (never benchmarks/results without a GPU)
    record["finished"] = cut is None
    record["elapsed_s"] = round(time.perf_counter() - start, 1)
    write(out, record)
    device = record["device"] or {}
    print(
        f"\n{device.get('device_kind')} ({device.get('platform')}), jax {(device.get('versions') or {}).get('jax')}"
        + ("  [SMOKE RUN ON TINY SIZES: NOT A RESULT]" if args.smoke else "")
    )
    lines = [("item", "figure (steady)", "compile / first call", "notes")] + [
        line for entry in record["items"] for line in table_rows(entry)
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line[:3], widths)) + "  " + line[3])
    print(f"\n{record['elapsed_s']:.0f} s in all" + (f", cut by {cut}" if cut else "") + f"; written to {out}")


if __name__ == "__main__":
    main()
