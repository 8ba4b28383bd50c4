"""Sum the per-test CPU and wall seconds that benchmarks/pytest_cpu_time.py wrote: the whole, the long tier,
the rest, and the slowest tests.  python benchmarks/suite_time.py OUT [--top 40]"""

import argparse
import json
from pathlib import Path


def read(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    rows = sorted(read(args.out), key=lambda r: -r["cpu"])
    for name, part in (
        ("all", rows),
        ("long", [r for r in rows if r.get("long")]),
        ("default", [r for r in rows if not r.get("long")]),
    ):
        cpu, wall = sum(r["cpu"] for r in part), sum(r["wall"] for r in part)
        print(f"{name}: {len(part)} tests, {cpu:.0f} CPU s, {wall:.0f} s")
    for r in rows[: args.top]:
        print(f"{r['cpu']:8.2f} {r['wall']:8.2f}  {'long ' if r.get('long') else ''}{r['id']}")


if __name__ == "__main__":
    main()
