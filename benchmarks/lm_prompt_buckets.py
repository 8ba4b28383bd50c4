"""How many programs an LM run compiles, and what its updates cost, with prompts of varied lengths cut four ways.

    python benchmarks/lm_prompt_buckets.py [--updates 100] [--sets short long] [--ways full exact 16 64] [--out FILE]

The model of benchmarks/lm_trl_side_by_side.py (made there first: a tiny random Qwen2 of 128 positions), GRPO with
the KL in the loss, 4 prompts x 4 completions of 16 tokens per update, one epoch. Two prompt sets of 64 prompts:
"short", that benchmark's own (2-40 characters: 2-39 tokens, padded width 39), and "long" (2-110 characters,
seeded). Each way in a fresh process without the persistent cache:

- ``full`` (``--prompt-bucket 0``): every update at the set's padded width (ppox before: one program, all padding);
- ``exact``: each update cut to its longest prompt (no padding past it: one program per distinct length);
- ``16`` and ``64`` (``--prompt-bucket 16``, ``--prompt-bucket 64``, the default): cut to the smallest power of
  two >= its longest prompt, at least 16 or 64, at most the padded width (``ppox.language.sampling.trim_prompts``).

Reported per way: the compilations of the sampler (``_generate``), ``prepare`` and ``ppo_epochs`` (counted from
JAX's compile log), the seconds they took, the whole run's time, the first update's and the median update time
after the first 10 updates.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = ("_generate", "prepare", "ppo_epochs")


class CompileLog(logging.Handler):
    """Counts JAX's "Finished XLA compilation of jit(NAME) in S sec" lines of the programs named in PROGRAMS."""

    def __init__(self):
        super().__init__()
        self.count = {p: 0 for p in PROGRAMS}
        self.seconds = 0.0

    def emit(self, record):
        text = record.getMessage()
        for program in PROGRAMS:
            if f"compilation of jit({program})" in text:
                self.count[program] += 1
                self.seconds += float(text.rsplit(" in ", 1)[1].split()[0])


def prompt_set(name: str, folder: Path) -> list[str]:
    """The side-by-side benchmark's prompts ("short"), or 64 seeded strings of 2-110 characters ("long")."""
    if name == "short":
        return [json.loads(line)["prompt"] for line in (folder / "prompts.jsonl").read_text().splitlines()]
    rng = random.Random(1)
    return ["".join(rng.choice("abcdeghiklmnoprstuvxyz .:") for _ in range(rng.randint(2, 110))) for _ in range(64)]


def one(way: str, updates: int, prompts: str, folder: Path) -> dict:
    """One run of ``way`` in this process."""
    import jax
    import numpy as np

    import ppox.drivers.lm as driver
    import ppox.lm

    if way == "exact":
        driver.trim_prompts = _exact
    jax.config.update("jax_log_compiles", True)
    log = CompileLog()
    logging.getLogger("jax").addHandler(log)
    sys.path.insert(0, str(Path(__file__).parent))
    from lm_trl_side_by_side import reward

    bucket = 0 if way in ("full", "exact") else int(way)
    tick = time.perf_counter()
    result = ppox.lm.train(
        model=str(folder),
        prompts=prompt_set(prompts, folder),
        reward=reward,
        prompt_bucket=bucket,
        advantage="grpo",
        samples_per_prompt=4,
        prompts_per_update=4,
        updates=updates,
        max_new_tokens=16,
        max_prompt_tokens=128,
        temperature=1.0,
        learning_rate=3e-3,
        epochs=1,
        kl_in="loss",
        kl_coef=0.04,
        whiten_advantages=False,
        save=False,
        tensorboard=False,
        samples_every=0,
    )
    wall = time.perf_counter() - tick
    m = result.metrics  # (an update's time: its completion tokens over its tokens per second)
    times = (m["episode_length"][0] * m["episode_count"][0] / m["tokens_per_second"][0]).tolist()
    return {
        "compiles": log.count,
        "compile_s": log.seconds,
        "run_s": wall,
        "first_update_s": times[0],
        "update_s": statistics.median(times[10:]) if len(times) > 10 else None,
        "reward_last10": float(np.mean(result.metrics["episode_return"][0][-10:])),
    }


def distinct_lengths(name: str, folder: Path, updates: int) -> int:
    """How many distinct longest-prompt lengths the updates of a run meet (what ``exact`` compiles for)."""
    from ppox.drivers.lm import LMDriver
    from ppox.language import load_tokenizer

    _, mask = load_tokenizer(folder, pad_id=0).encode(prompt_set(name, folder))
    fake = type("Run", (), {"task": type("T", (), {"ids": mask})(), "config": None})()
    fake.config = type("C", (), {"prompts_per_update": 4, "samples_per_prompt": 1, "seed": 0})()
    return len({int(mask[LMDriver.prompt_rows(fake, u)].sum(-1).max()) for u in range(updates)})


def _exact(ids, mask, smallest):
    """Cut to the longest prompt exactly."""
    width = int(mask.sum(-1).max())
    return ids[:, ids.shape[1] - width :], mask[:, mask.shape[1] - width :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--sets", nargs="+", default=["short", "long"], choices=["short", "long"])
    parser.add_argument("--ways", nargs="+", default=["full", "exact", "16", "64"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lm_trl_side_by_side"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lm_prompt_buckets.json")
    args = parser.parse_args()
    folder = args.work / "model"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{folder}: make it first (python benchmarks/lm_trl_side_by_side.py make {folder})")
    env = {**os.environ, "PPOX_CACHE_DIR": ""}
    results: dict = {"load_before": os.getloadavg(), "sets": {}}
    for name in args.sets:
        results["sets"][name] = {"distinct": distinct_lengths(name, folder, args.updates)}
        for way in args.ways:
            if name == "long" and way == "exact":
                continue  # (one program per distinct length: 25 here: too slow to wait for; see "distinct")
            command = [sys.executable, __file__, "one", way, str(args.updates), name, str(folder)]
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            results["sets"][name][way] = json.loads(out.strip().splitlines()[-1])
            print(name, way, results["sets"][name][way], flush=True)
    results["load_after"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["one"]:
        print(json.dumps(one(sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))))
    else:
        main()
