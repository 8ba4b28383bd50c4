"""The GRPO family on the randomwalks task (ppox.language.randomwalks): each --loss with the KL to the
reference in the reward (k1) and in the loss (beta k3, TRL's GRPO beta), from the same pretrained model.

    python benchmarks/lm_loss_variants.py [--seeds 2] [--updates 25] [--pretrain-steps 600]

A tiny GPT-2 (2 layers, width 64) is pretrained in-process on random walks (as tests/language/test_ppo.py
does); then GRPO (16 prompts x k = 4 completions per update, 4 epochs x 4 minibatches, learning rate 5e-4,
beta 0.04, no advantage whitening, as TRL's GRPO) trains it for ``--updates`` updates with each variant,
per seed, the runs of a seed alternating between variants. Recorded per run: the mean score of the first
two and the last three updates (the score is the fraction of the optimum reached), kl_ref at the end (the
mean per-completion k1 against the pretrained model) and the wall time (compilation included). Writes
benchmarks/results/lm_loss_variants.json (after every run).
"""

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import ppox.lm
from ppox.language import randomwalks as rw
from ppox.language.hf import save

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "lm_loss_variants.json"
VARIANTS = {
    f"{loss} / kl in {place}": {"loss": loss, "kl_in": place}
    for place in ("loss", "reward")
    for loss in ("token", "sequence", "dr_grpo", "gspo")
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--updates", type=int, default=25)
    parser.add_argument("--pretrain-steps", type=int, default=600)
    args = parser.parse_args()
    graph = rw.make_graph(seed=0)
    reward = functools.partial(rw.path_scores, graph)
    model, loss = rw.pretrain(graph, steps=args.pretrain_steps, seed=0)
    results = {"command": f"python benchmarks/lm_loss_variants.py --seeds {args.seeds} --updates {args.updates} "
                          f"--pretrain-steps {args.pretrain_steps}",
               "pretrain_loss": float(loss), "load_before": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        save(folder, model)
        for seed in range(args.seeds):
            for name, variant in VARIANTS.items():
                tick = time.perf_counter()
                result = ppox.lm.train(
                    model=folder, save=False, tensorboard=False, max_new_tokens=10, temperature=1.0,
                    prompts_per_update=16, samples_per_prompt=4, advantage="grpo", kl_coef=0.04,
                    whiten_advantages=False, epochs=4, minibatches=4, learning_rate=5e-4, updates=args.updates,
                    seed=seed, prompts=rw.start_prompts(graph), reward=reward, **variant,
                )
                score = result.metrics["episode_return"][0]
                run = {"variant": name, "seed": seed, "score_first2": float(score[:2].mean()),
                       "score_last3": float(score[-3:].mean()), "kl_ref_last": float(result.metrics["kl_ref"][0, -1]),
                       "wall_s": round(time.perf_counter() - tick, 1), "load": os.getloadavg()[0]}
                results["runs"].append(run)
                print(json.dumps(run), flush=True)
                OUT.write_text(json.dumps(results, indent=2))
    summary = {}
    for name in VARIANTS:
        runs = [r for r in results["runs"] if r["variant"] == name]
        summary[name] = {k: float(np.median([r[k] for r in runs])) for k in ("score_last3", "kl_ref_last", "wall_s")}
    results["median_over_seeds"] = summary
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
