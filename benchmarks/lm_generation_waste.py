"""What continuous batching could save a synchronous GRPO update: the sampler's share of the update times the
share of its row-steps spent on rows that had already ended.

    python benchmarks/lm_generation_waste.py [--batches 20] [--new-tokens 16 64] [--out FILE.json]

The model and prompts of benchmarks/lm_trl_side_by_side.py (a tiny random Qwen2; made there first), batches of
4 prompts x 4 completions drawn as an update draws them, temperature 1. The sampler runs every row until the
batch's longest completion ends (or --new-tokens), so of B x S row-steps (S: the steps the batch ran) those past a
row's end are dead: dead = 1 - sum_i len_i / (B S). Refilling a dead row with a new prompt (continuous batching)
can only turn dead row-steps into useful ones; an update that needs every completion of its groups before it
starts still waits for its longest completion, so its sampling time falls at most by the dead fraction, and the
update by at most (sampler time / update time) x dead. The update time is measured here too: sampling, a
constant reward, ``prepare`` and one epoch of ``ppo_epochs``, as ``ppox lm train`` runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax
import numpy as np

import ppox.lm
from ppox.language import Sampling, load, load_tokenizer, make_sampler
from ppox.language.hf import pad_id
from ppox.language.sampling import trim_prompts

REPO = Path(__file__).resolve().parents[1]


def sampler_figures(folder: Path, new_tokens: int, batches: int) -> dict:
    """The dead fraction and the sampler's time per batch (after a compiling call), median over ``batches``."""
    model = load(folder)
    tok = load_tokenizer(folder, pad_id=pad_id(model))
    prompts = [json.loads(line)["prompt"] for line in (folder / "prompts.jsonl").read_text().splitlines()]
    ids, mask = tok.encode(prompts)
    sample = make_sampler(model.config, Sampling(new_tokens, model.eos_ids, tok.pad_id, temperature=1.0))
    rng = np.random.default_rng(0)
    dead, seconds = [], []
    for i in range(batches + 1):
        rows = np.repeat(rng.choice(len(prompts), 4, replace=False), 4)
        p, m = trim_prompts(ids[rows], mask[rows], 64)  # (the default --prompt-bucket, as an update)
        tick = time.perf_counter()
        out = jax.block_until_ready(sample(model.params, p, m, jax.random.key(i)))
        lengths = np.asarray(out.mask).sum(-1)
        if i:  # (the first call compiles)
            seconds.append(time.perf_counter() - tick)
            dead.append(1 - lengths.sum() / (len(lengths) * lengths.max()))
    return {"dead_fraction": statistics.fmean(dead), "sampler_s": statistics.median(seconds)}


def update_seconds(folder: Path, new_tokens: int, updates: int) -> float:
    """The median time of a whole GRPO update (KL in the loss, one epoch) after the first 5, constant reward."""
    prompts = [json.loads(line)["prompt"] for line in (folder / "prompts.jsonl").read_text().splitlines()]
    result = ppox.lm.train(
        model=str(folder),
        prompts=prompts,
        reward=lambda p, c: [0.0] * len(c),
        advantage="grpo",
        samples_per_prompt=4,
        prompts_per_update=4,
        updates=updates,
        max_new_tokens=new_tokens,
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
    m = result.metrics
    times = m["episode_length"][0] * m["episode_count"][0] / m["tokens_per_second"][0]
    return float(np.median(times[5:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lm_trl_side_by_side"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lm_generation_waste.json")
    args = parser.parse_args()
    folder = args.work / "model"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{folder}: make it first (python benchmarks/lm_trl_side_by_side.py make {folder})")
    results = {"load_before": os.getloadavg(), "cases": {}}
    for n in args.new_tokens:
        got = sampler_figures(folder, n, args.batches)
        got["update_s"] = update_seconds(folder, n, args.batches)
        got["sampler_share"] = min(1.0, got["sampler_s"] / got["update_s"])
        got["bound"] = got["sampler_share"] * got["dead_fraction"]
        results["cases"][str(n)] = got
        print(n, got, flush=True)
    results["load_after"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
