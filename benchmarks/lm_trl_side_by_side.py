"""ppox against TRL's GRPOTrainer on one tiny random Qwen2, same prompts, reward and settings, side by side.

    python benchmarks/lm_trl_side_by_side.py [--repeats 3] [--updates 100] [--cases full lora] [--lora-learning-rate LR]
    python benchmarks/lm_trl_side_by_side.py make DIR     (in the transformers venv: the model and prompts)
    python benchmarks/lm_trl_side_by_side.py one DIR CASE UPDATES LR OUT.json   (one TRL run, transformers venv)

TRL goes into the transformers venv, bench-envs/hf (torch 2.13, transformers 5.25, peft 0.22): bench-envs/hf/bin/pip
install trl (1.16.0 measured).

The model: a Qwen2 made by transformers with random weights (seed 0; 2 layers, width 64, 4 heads, 2 key/value
heads, tied embeddings, the 96-token byte-level tokenizer of tests/fixtures/lm/qwen2), saved as a Hugging Face
folder both load. The prompts: 64 strings of 2-40 letters drawn from the tokenizer's alphabet (seeded), so
their token counts vary. The reward, ``reward`` below, is the number of "a" characters in the completion over
the completion budget: about 0.06 for the random model, up to 1 for a completion of 16 a-tokens.

The settings (both sides): GRPO, 4 prompts x 4 completions per update, 16 new tokens at temperature 1 (no
top-k/top-p), one epoch of one minibatch (TRL: ``num_iterations=1``, batch 16), Adam at a constant learning
rate (eps 1e-8, no weight decay, gradient norm clipped at 1), the KL to the reference in the loss as k3 with
beta 0.04 (TRL's ``beta``; ppox ``--kl-in loss --kl-coef 0.04``), token-mean loss (TRL ``loss_type="dapo"``,
ppox ``--loss token``), group-scaled advantages without whitening, clip 0.2. "lora": rank 8, alpha 16, dropout
0 on q_proj and v_proj (TRL: peft's LoraConfig), the reference being the base with the adapters off (both).

Fairness: torch single-threaded (``torch.set_num_threads(1)``, OMP/MKL threads 1) and XLA single-threaded
(XLA_FLAGS ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``); each measurement is a fresh
process, ppox and TRL alternating. ppox runs as users run it, ``ppox lm train`` (the command turns on the
persistent compilation cache, here in a folder of its own: "cold" is an empty folder, "warm" the folder a
cold run filled). Per run: the whole process time (start to exit: imports, loading, compilation, 100
updates, saving), the median update time over updates 11-100 (steady state), completion tokens per second
(the tokens generated in an update over its time, median over the same updates), and the reward per update.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HF_PYTHON = REPO / "bench-envs" / "hf" / "bin" / "python"
NEW_TOKENS, PROMPTS_PER_UPDATE, K, BETA, LR = 16, 4, 4, 0.04, 3e-3
LORA = {"r": 8, "alpha": 16.0, "targets": ["q_proj", "v_proj"]}
ONE_THREAD = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
STEADY_FROM = 10  # updates before this index are left out of the steady-state medians


def reward(prompts, completions, **_) -> list[float]:
    """The count of "a" characters in each completion over the completion budget (16 tokens)."""
    return [text.count("a") / NEW_TOKENS for text in completions]


def make(folder: Path) -> None:
    """The random tiny Qwen2 folder and prompts.jsonl (run with the transformers venv)."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
        rope_theta=1e6,
    )
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fixture = REPO / "tests" / "fixtures" / "lm" / "qwen2"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(fixture / name, folder / name)
    letters = "abcdeghiklmnoprstuvxyz .:"
    rng = random.Random(0)
    rows = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 40))) for _ in range(64)]
    (folder / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in rows))


def ppox_command(folder: Path, case: str, updates: int, run_dir: Path, lr: float) -> list[str]:
    """``ppox lm train`` with the settings of the module docstring."""
    command = [
        str(Path(sys.executable).with_name("ppox")),
        "lm",
        "train",
        "--model",
        str(folder),
        "--prompts",
        str(folder / "prompts.jsonl"),
        "--reward",
        "lm_trl_side_by_side:reward",
        "--advantage",
        "grpo",
        "--samples-per-prompt",
        str(K),
        "--prompts-per-update",
        str(PROMPTS_PER_UPDATE),
        "--updates",
        str(updates),
        "--max-new-tokens",
        str(NEW_TOKENS),
        "--temperature",
        "1.0",
        "--learning-rate",
        str(lr),
        "--adam-eps",
        "1e-8",
        "--epochs",
        "1",
        "--minibatches",
        "1",
        "--kl-in",
        "loss",
        "--kl-coef",
        str(BETA),
        "--loss",
        "token",
        "--no-whiten-advantages",
        "--clip-coef",
        "0.2",
        "--no-tensorboard",
        "--samples-every",
        "0",
        "--checkpoint-every",
        "0",
        "--run-dir",
        str(run_dir),
        "--run-name",
        "run",
        "--seed",
        "0",
    ]
    if case == "lora":
        command += [
            "--lora-rank",
            str(LORA["r"]),
            "--lora-alpha",
            str(LORA["alpha"]),
            "--lora-targets",
            ",".join(LORA["targets"]),
        ]
    return command


def read_ppox(run: Path) -> dict:
    """Per-update time, reward and completion tokens from RUN/metrics.csv (wall_time: when each update ended)."""
    import csv

    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    ends = [float(r["wall_time"]) for r in rows]
    times = [b - a for a, b in zip(ends, ends[1:])]
    first = float(rows[0]["episode_length"]) * PROMPTS_PER_UPDATE * K / float(rows[0]["tokens_per_second"])
    tokens = [float(r["episode_length"]) * PROMPTS_PER_UPDATE * K for r in rows]
    return {"update_s": [first, *times], "reward": [float(r["episode_return"]) for r in rows], "tokens": tokens}


def run_trl(folder: Path, case: str, updates: int, lr: float) -> dict:
    """TRL's GRPOTrainer with the settings of the module docstring, in this process (the transformers venv)."""
    import torch

    torch.set_num_threads(1)
    import datasets
    import transformers
    import trl

    prompts = [json.loads(line)["prompt"] for line in (folder / "prompts.jsonl").read_text().splitlines()]
    clocks, rewards, lengths = [], [], []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            clocks.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                rewards.append(float(logs["reward"]))
                lengths.append(float(logs["completions/mean_length"]))

    settings = trl.GRPOConfig(
        output_dir=str(folder / "trl_out"),
        per_device_train_batch_size=PROMPTS_PER_UPDATE * K,
        num_generations=K,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        learning_rate=lr,
        lr_scheduler_type="constant",
        adam_epsilon=1e-8,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        beta=BETA,
        loss_type="dapo",
        scale_rewards="group",
        epsilon=0.2,
        num_iterations=1,
        max_steps=updates,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        bf16=False,
        disable_tqdm=True,
    )
    peft_config = None
    if case == "lora":
        import peft

        peft_config = peft.LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=0.0,
            target_modules=LORA["targets"],
            task_type="CAUSAL_LM",
        )
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=settings,
        train_dataset=datasets.Dataset.from_dict({"prompt": prompts}),
        processing_class=transformers.AutoTokenizer.from_pretrained(folder),
        peft_config=peft_config,
        callbacks=[Clock()],
    )
    start = time.perf_counter()
    trainer.train()
    ends = [start, *clocks]
    tokens = [m * PROMPTS_PER_UPDATE * K for m in lengths]
    return {"update_s": [b - a for a, b in zip(ends, ends[1:])], "reward": rewards, "tokens": tokens}


def one(folder: Path, case: str, updates: int, lr: float, out: Path) -> None:
    """One measured TRL run (this process is the one ``measure`` times); its per-update figures to ``out``."""
    out.write_text(json.dumps(run_trl(folder, case, updates, lr)))


def measure(impl: str, folder: Path, case: str, updates: int, cache: Path | None, lr: float = LR) -> dict:
    """A fresh process of ``one``: its whole time from start to exit, and the figures it wrote."""
    out = folder / f"out_{impl}_{case}.json"
    env = {**os.environ, **ONE_THREAD, "PPOX_CACHE_DIR": str(cache or "")}
    if impl == "ppox":  # ppox lm train itself is the timed process: ``one`` only wraps it
        run_dir = folder.parent / f"runs_{case}"
        shutil.rmtree(run_dir, ignore_errors=True)
        tick = time.perf_counter()
        subprocess.run(
            ppox_command(folder, case, updates, run_dir, lr),
            cwd=Path(__file__).parent,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        process_s = time.perf_counter() - tick
        got = read_ppox(run_dir / "run")
    else:
        tick = time.perf_counter()
        subprocess.run(
            [str(HF_PYTHON), __file__, "one", str(folder), case, str(updates), str(lr), str(out)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process_s = time.perf_counter() - tick
        got = json.loads(out.read_text())
    steady = got["update_s"][STEADY_FROM:]
    rates = [t / s for t, s in zip(got["tokens"][STEADY_FROM:], steady)]
    return {
        "process_s": process_s,
        "first_update_s": got["update_s"][0],
        "update_s": statistics.median(steady),
        "tokens_per_s": statistics.median(rates),
        "reward": got["reward"],
        "mean_length": [t / (PROMPTS_PER_UPDATE * K) for t in got["tokens"]],
    }


def medians(runs: list[dict]) -> dict:
    """The median of each figure over the runs, and the runs' reward curves averaged per update."""
    figures = {
        k: statistics.median(r[k] for r in runs) for k in ("process_s", "first_update_s", "update_s", "tokens_per_s")
    }
    curve = [statistics.fmean(values) for values in zip(*(r["reward"] for r in runs))]
    return {**figures, "reward_curve": curve, "runs": runs}


def plot(results: dict, path: Path) -> None:
    """The mean reward per update of each implementation, one panel per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(results["cases"])
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.5), squeeze=False)
    for ax, case in zip(axes[0], cases):
        for impl in ("ppox_warm", "trl"):
            curve = results["cases"][case][impl]["reward_curve"]
            ax.plot(range(1, len(curve) + 1), curve, label=impl.replace("_warm", ""))
        ax.set(title=f"GRPO, KL in the loss, {case}", xlabel="update", ylabel="reward (mean over runs)")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--cases", nargs="+", default=["full", "lora"], choices=["full", "lora"])
    parser.add_argument("--lora-learning-rate", type=float, default=LR)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lm_trl_side_by_side"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lm_trl_side_by_side.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "curves" / "lm_trl_side_by_side.png")
    args = parser.parse_args(argv)
    folder = args.work / "model"
    if not (folder / "config.json").is_file():
        subprocess.run([str(HF_PYTHON), __file__, "make", str(folder)], check=True, env={**os.environ, **ONE_THREAD})
    results: dict = {
        "settings": {
            "new_tokens": NEW_TOKENS,
            "prompts_per_update": PROMPTS_PER_UPDATE,
            "k": K,
            "beta": BETA,
            "learning_rate": LR,
            "lora_learning_rate": args.lora_learning_rate,
            "lora": LORA,
            "updates": args.updates,
            "steady_from_update": STEADY_FROM + 1,
        },
        "load": [],
        "cases": {},
    }
    for case in args.cases:
        runs: dict = {"ppox_cold": [], "trl": [], "ppox_warm": []}
        for repeat in range(args.repeats):
            cache = args.work / f"xla_cache_{case}_{repeat}"
            shutil.rmtree(cache, ignore_errors=True)
            for impl, name in (("ppox", "ppox_cold"), ("trl", "trl"), ("ppox", "ppox_warm")):
                results["load"].append(os.getloadavg()[0])
                got = measure(
                    impl, folder, case, args.updates, cache, args.lora_learning_rate if case == "lora" else LR
                )
                runs[name].append(got)
                print(
                    case,
                    repeat,
                    name,
                    {k: round(v, 4) for k, v in got.items() if isinstance(v, float)},
                    f"reward {statistics.fmean(got['reward'][:10]):.3f} -> {statistics.fmean(got['reward'][-10:]):.3f}",
                    flush=True,
                )
        results["cases"][case] = {name: medians(r) for name, r in runs.items()}
    args.out.write_text(json.dumps(results, indent=1))
    plot(results, args.plot)
    print(
        json.dumps(
            {
                c: {n: {k: v for k, v in m.items() if k not in ("runs", "reward_curve")} for n, m in r.items()}
                for c, r in results["cases"].items()
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["make"]:
        make(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["one"]:
        one(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), Path(sys.argv[6]))
    else:
        main(sys.argv[1:])
