"""RLHF on a task with a known optimum: shortest paths on a random graph (ppox.language.randomwalks).

    python benchmarks/lm_randomwalks.py [--seeds 3] [--updates 50] [--pretrain-steps 1500]

A tiny GPT-2 (2 layers, width 64) is pretrained in-process on random walks; then PPO (GAE, critic), RLOO
and GRPO (k = 4) each train it for ``--updates`` updates of 64 completions, from the same pretrained
model, per seed. Before and after, 20 samples per start node (temperature 1) are scored: the mean score
is the fraction of the optimum reached (d*/length for a valid path to the goal, else 0); "optimal" is
the fraction of shortest paths; KL is the mean summed k1 estimate against the pretrained reference.
Writes benchmarks/results/lm_randomwalks.json and docs/curves/lm_randomwalks.png.
"""

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import ppox.lm
from ppox.language import randomwalks as rw
from ppox.language.hf import load, save
from ppox.language.sampling import Sampling, make_sampler, sequence_logprobs

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"ppo (gae)": {"advantage": "gae", "samples_per_prompt": 1, "prompts_per_update": 64},
           "rloo (k=4)": {"advantage": "rloo", "samples_per_prompt": 4, "prompts_per_update": 16},
           "grpo (k=4)": {"advantage": "grpo", "samples_per_prompt": 4, "prompts_per_update": 16}}


def evaluate(graph, model, params, ref_params, samples=20, seed=123) -> dict:
    """Mean score, fraction of optimal paths and mean KL(policy || reference) over sampled walks."""
    starts = np.repeat(np.arange(1, graph.nodes), samples)[:, None].astype(np.int32)
    prompt, mask = jnp.asarray(starts), jnp.ones(starts.shape, bool)
    sample = make_sampler(model.config, Sampling(10, model.eos_ids, graph.pad_id, temperature=1.0))
    out = sample(params, prompt, mask, jax.random.PRNGKey(seed))
    tokens, keep = np.asarray(out.tokens), np.asarray(out.mask)
    walks = [t[k].tolist() for t, k in zip(tokens, keep)]
    scores = np.asarray(rw.path_scores(graph, starts.tolist(), walks))
    ref = sequence_logprobs(model.config, ref_params, prompt, mask, out.tokens, out.mask, temperature=1.0)
    kl = float(np.asarray((out.logprobs - ref).sum(-1)).mean())
    return {"score": float(scores.mean()), "optimal": float((scores == 1.0).mean()), "kl": kl}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--pretrain-steps", type=int, default=1500)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--kl-coef", type=float, default=0.01)
    args = parser.parse_args()
    graph = rw.make_graph(seed=0)
    tick = time.perf_counter()
    pretrained, loss = rw.pretrain(graph, steps=args.pretrain_steps, seed=0)
    print(f"pretrained {args.pretrain_steps} steps in {time.perf_counter() - tick:.1f}s, loss {loss:.3f} "
          f"(uniform over 3 edges: {np.log(3):.3f})")
    folder = Path(tempfile.mkdtemp()) / "walker"
    save(folder, pretrained)
    model = load(folder)
    before = evaluate(graph, model, model.params, model.params)
    print(f"reference: score {before['score']:.3f}, optimal {before['optimal']:.3f}")
    results, curves = {"pretrain_loss": loss, "reference": before, "args": vars(args)}, {}
    for name, kw in METHODS.items():
        runs = []
        for seed in range(args.seeds):
            tick = time.perf_counter()
            out = ppox.lm.train(model=str(folder), prompts=rw.start_prompts(graph), reward=functools.partial(rw.path_scores,
                           graph), updates=args.updates, max_new_tokens=10, temperature=1.0, epochs=4, minibatches=4,
                           learning_rate=args.learning_rate, kl_coef=args.kl_coef, seed=seed, save=False, **kw)
            after = evaluate(graph, model, out.model.params, model.params)
            runs.append({**after, "seconds": time.perf_counter() - tick,
                         "curve": out.metrics["episode_return"][0].tolist(), "kl_curve": out.metrics["kl_ref"][0].tolist()})
            print(f"{name} seed {seed}: score {after['score']:.3f}, optimal {after['optimal']:.3f}, "
                  f"KL {after['kl']:.2f} nats, {runs[-1]['seconds']:.1f}s")
        results[name] = runs
        curves[name] = np.array([r["curve"] for r in runs]), np.array([r["kl_curve"] for r in runs])
    out = ROOT / "benchmarks" / "results" / "lm_randomwalks.json"
    out.write_text(json.dumps(results, indent=1))
    plot(curves, before["score"], ROOT / "docs" / "curves" / "lm_randomwalks.png")
    print(f"wrote {out}")


def plot(curves: dict, reference: float, path: Path) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, (score, kl) in curves.items():
        x = np.arange(1, score.shape[1] + 1)
        for axis, values in ((ax, score), (bx, kl)):
            mean = values.mean(0)
            axis.plot(x, mean, label=name)
            axis.fill_between(x, values.min(0), values.max(0), alpha=0.2)
    ax.axhline(reference, color="grey", ls="--", lw=1, label="pretrained (reference)")
    ax.set(xlabel="update (64 completions)", ylabel="mean score = fraction of optimum", ylim=(0, 1.05))
    bx.set(xlabel="update (64 completions)", ylabel="KL to reference (nats per completion)")
    ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"randomwalks: tiny GPT-2, {len(next(iter(curves.values()))[0])} seeds (line: mean; band: min-max)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
