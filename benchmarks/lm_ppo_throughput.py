"""Response tokens per second of a whole PPO update on a language model (sampling, scoring, prepare,
epochs x minibatches), on a GPT-2-shaped model with random weights.

    python benchmarks/lm_ppo_throughput.py [--updates 4] [--prompts 8] [--prompt-tokens 32] [--new 32]

The model of benchmarks/lm_throughput.py (10.1M parameters: GPT-2's 50257-token vocabulary, tied, 6 layers,
width 160, 5 heads) and no end token that it would draw on purpose, so every completion has --new tokens;
reward: a constant (the cost of a Python reward is not the point). PPO with GAE and a critic, 4 epochs x 2
minibatches. Prints tokens/s of every update; the first includes compilation.
"""

import argparse
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import ppox.lm
from ppox.language import from_hf, init_params, parameter_count
from ppox.language.hf import LanguageModel, save

CONFIG = {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 160, "n_layer": 6, "n_head": 5, "n_positions": 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new", type=int, default=32)
    args = parser.parse_args()
    config = from_hf(CONFIG)
    folder = Path(tempfile.mkdtemp()) / "gpt2-shaped"
    save(folder, LanguageModel(config, init_params(config, jax.random.key(0)),
                               {**CONFIG, "eos_token_id": 50256, "pad_token_id": 0}))
    rng = np.random.default_rng(0)
    prompts = rng.integers(1, 50000, (64, args.prompt_tokens)).tolist()
    tick = time.perf_counter()
    result = ppox.lm.train(model=str(folder), prompts=prompts, reward=lambda p, c: [0.0] * len(c), updates=args.updates,
                      prompts_per_update=args.prompts, max_new_tokens=args.new, max_prompt_tokens=args.prompt_tokens,
                      epochs=4, minibatches=2, save=False)
    seconds = time.perf_counter() - tick
    rates = result.metrics["tokens_per_second"][0]
    print(f"{parameter_count(config) / 1e6:.1f}M parameters, {jax.devices()[0].platform}, {args.prompts} completions "
          f"of {args.new} tokens per update after {args.prompt_tokens}-token prompts; tokens/s per update: "
          + ", ".join(f"{r:.0f}" for r in rates) + f"; {seconds:.1f}s in all")


if __name__ == "__main__":
    main()
