"""The evaluation curves stored with gymnax-blines' MinAtar PPO runs, read without unpickling.

  .venv/bin/python benchmarks/gymnax_blines_logs.py [--from CLONE]

gymnax-blines (github.com/RobertTLange/gymnax-blines) keeps, beside each PPO config, the log of the run it
trained with it: agents/GAME-MinAtar/ppo.pkl (the config's learning rate, 5e-4), ppo0.001.pkl and
ppo0.0001.pkl (the same config at 1e-3 and 1e-4). Each log holds the environment steps and the mean return of
164 games with sampled actions, every 5,000 vectorised steps (about 320k environment steps). Pickle runs code
when it loads, so this script never loads one: it walks the file's opcodes with ``pickletools.genops`` and
reads the numbers out of them. It writes benchmarks/results/minatar/reference/gymnax_blines.json, which
``benchmarks/minatar.py --report`` draws beside ppox's curves, and prints each log's last evaluations.

The logs come from a clone of that repository (``--from``) or are downloaded at the pinned commit below.
"""

from __future__ import annotations

import argparse
import json
import pickletools
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "minatar" / "reference" / "gymnax_blines.json"
COMMIT = "3f029d6b98afb0d654d387b5bc0f7a592373ad66"  # gymnax-blines main, April 2023 (logs from June 2022)
RAW = f"https://raw.githubusercontent.com/RobertTLange/gymnax-blines/{COMMIT}"
GAMES = ("Breakout", "SpaceInvaders", "Asterix", "Freeway")
LOGS = ("ppo", "ppo0.001", "ppo0.0001")


def read_log(data: bytes) -> dict:
    """{learning_rate, steps, returns} out of one stored log: the ints after 'log_steps', the float32 scalars
    (numpy 0-d arrays, 4 raw bytes each) after 'log_return', the float after 'lr_begin'."""
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    where = {arg: i for i, (_, arg) in enumerate(ops) if isinstance(arg, str)}
    for key in ("log_steps", "log_return", "network", "lr_begin"):
        if key not in where:
            raise ValueError(f"not a gymnax-blines PPO log: no {key!r} in it")
    steps = [arg for name, arg in ops[where["log_steps"]:where["log_return"]]
             if name in ("BININT", "BININT1", "BININT2", "LONG1")]
    returns = [float(np.frombuffer(arg, "<f4")[0]) for name, arg in ops[where["log_return"]:where["network"]]
               if name == "SHORT_BINBYTES" and len(arg) == 4]
    if len(steps) != len(returns) or not steps:
        raise ValueError(f"log_steps ({len(steps)}) and log_return ({len(returns)}) do not pair up")
    learning_rate = next(arg for name, arg in ops[where["lr_begin"]:] if name == "BINFLOAT")
    return {"learning_rate": learning_rate, "steps": steps, "returns": [round(x, 3) for x in returns]}


def fetch(game: str, log: str, clone: Path | None) -> bytes:
    path = f"agents/{game}-MinAtar/{log}.pkl"
    if clone is not None:
        return (clone / path).read_bytes()
    with urllib.request.urlopen(f"{RAW}/{path}", timeout=60) as response:
        return response.read()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="clone", type=Path, help="a clone of gymnax-blines instead of downloading")
    args = p.parse_args()
    logs = {game: {log: read_log(fetch(game, log, args.clone)) for log in LOGS} for game in GAMES}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"source": f"{RAW}/agents/GAME-MinAtar/LOG.pkl", "logs": logs}, indent=1))
    print("| game | learning rate | last five evaluations (164 games each) | final | highest |")
    print("|---|---|---|---|---|")
    for game, runs in logs.items():
        for run in runs.values():
            r = run["returns"]
            print(f"| {game} | {run['learning_rate']:g} | {', '.join(f'{x:.1f}' for x in r[-5:])} | {r[-1]:.1f} | "
                  f"{max(r):.1f} |")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
