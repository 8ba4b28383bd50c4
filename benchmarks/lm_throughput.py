"""Generation throughput of ppox.lm's sampler: a GPT-2-shaped model of about 10M parameters, random weights.

    python benchmarks/lm_throughput.py [--batch 1 8 32] [--prompt 32] [--new 64] [--repeats 3] [--gpt2-small]

GPT-2's vocabulary (50257, tied embeddings), 6 layers, width 160, 5 heads (``--gpt2-small``: GPT-2 small's
shape, 124M parameters: 12 layers, width 768, 12 heads). No end-of-sequence id, so every row generates all
``--new`` tokens; tokens/s = batch * new / seconds per call, after one compiling call.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from ppox.language import from_hf, init_params, parameter_count
from ppox.language.sampling import Sampling, make_sampler

CONFIG = {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 160, "n_layer": 6, "n_head": 5, "n_positions": 1024}
SMALL = {**CONFIG, "n_embd": 768, "n_layer": 12, "n_head": 12}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--gpt2-small", action="store_true")
    args = parser.parse_args()
    config = from_hf(SMALL if args.gpt2_small else CONFIG)
    params = init_params(config, jax.random.key(0))
    print(f"GPT-2-shaped model, {parameter_count(config) / 1e6:.1f}M parameters, {jax.devices()[0].platform}, "
          f"prompt {args.prompt}, {args.new} new tokens, top_p {args.top_p}")
    sampling = Sampling(max_new_tokens=args.new, eos_ids=(), pad_id=0, top_p=args.top_p)
    sample = make_sampler(config, sampling)
    for batch in args.batch:
        prompt = jax.random.randint(jax.random.key(1), (batch, args.prompt), 0, config.vocab_size)
        mask = jnp.ones_like(prompt, bool)
        start = time.perf_counter()
        jax.block_until_ready(sample(params, prompt, mask, jax.random.key(2)))
        compile_s = time.perf_counter() - start
        times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(sample(params, prompt, mask, jax.random.key(3 + i)))
            times.append(time.perf_counter() - start)
        best = min(times)
        print(f"batch {batch:3d}: first call {compile_s:5.1f} s, then {best:6.3f} s per call (best of "
              f"{args.repeats}): {batch * args.new / best:8.0f} tokens/s")


if __name__ == "__main__":
    main()
