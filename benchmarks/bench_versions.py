"""Two or more checkouts of faceclust scanning the same photos, whole processes, alternating
rounds: what a change gains end to end when the machine's speed drifts between runs by more
than the change (seen here: 20-30% between phases of the host).

    git worktree add /tmp/before HEAD~3
    .venv/bin/python benchmarks/bench_versions.py --photos /tmp/phone/celeba_train-80-4032x3024-q92 \\
        --rounds 10 before=/tmp/before after=.

Each version runs ``python -m faceclust scan PHOTOS --catalog NEW --quiet`` with its checkout
first on PYTHONPATH and this interpreter (so the same installed packages), a new catalog
each time; the order of the versions alternates every round. Reported per version: the
median and each round's wall time, and the median CPU time (user + system) of the process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("versions", nargs="+", metavar="NAME=CHECKOUT")
    parser.add_argument("--args", default="", help="extra arguments for every scan, e.g. '--threads 2'")
    args = parser.parse_args()
    versions = []
    for spec in args.versions:
        name, _, checkout = spec.partition("=")
        root = Path(checkout).resolve()
        if not (root / "faceclust" / "__init__.py").is_file():
            parser.error(f"{checkout}: not a faceclust checkout")
        versions.append((name, root))
    wall: dict[str, list[float]] = {name: [] for name, _ in versions}
    cpu: dict[str, list[float]] = {name: [] for name, _ in versions}
    for r in range(args.rounds):
        for name, root in versions if r % 2 == 0 else versions[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, PYTHONPATH=str(root))
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "faceclust", "scan", str(args.photos), "--catalog",
                                str(Path(tmp) / "c.sqlite"), "--quiet", *args.args.split()], env=env, check=True)
                wall[name].append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    print(f"{args.rounds} alternating rounds, scan of {args.photos}\n")
    print("| version | median s | rounds (s) | median CPU s |")
    print("|---|---|---|---|")
    for name, _ in versions:
        rounds = " ".join(f"{s:.2f}" for s in wall[name])
        print(f"| {name} | {statistics.median(wall[name]):.2f} | {rounds} | {statistics.median(cpu[name]):.2f} |")


if __name__ == "__main__":
    main()
