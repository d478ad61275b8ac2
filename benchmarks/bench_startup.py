"""Start-up of one-shot commands (issue 14, step 2): `faceclust verify A B` and `faceclust search
PHOTO` as whole processes, against `python -c "import torch"` (and the same without the
interpreter's teardown) in the same run, in rotating order; with the model cache warm (the usual case) and empty (a first run).

    .venv/bin/python benchmarks/bench_startup.py --rounds 5

A catalog of 60 lfw_dev photos is scanned first (not timed) for search. Reported: the median
of each command's wall time and its excess over torch's import.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lfw = ROOT.parent / "shared" / "data" / "lfw_dev"
    photos = sorted(lfw.rglob("*.jpg"))
    a, b, probe = photos[0], photos[1], photos[-1]
    faceclust = str(VENV_BIN / "faceclust")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        library = tmp / "library"
        library.mkdir()
        for photo in photos[2:62]:
            (library / photo.name).symlink_to(photo)
        catalog = tmp / "catalog.sqlite"
        warm = dict(os.environ, FACECLUST_CACHE=str(tmp / "cache"))
        subprocess.run([faceclust, "scan", str(library), "--catalog", str(catalog)], env=warm, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # also fills the model cache
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            # torch's import without the interpreter's teardown (0.4 s of destructors),
            # which faceclust skips since 2026-12-07 (faceclust.cli.run)
            "python -c 'import torch; os._exit(0)'": [sys.executable, "-c", "import os, torch; os._exit(0)"],
            "faceclust verify A B": [faceclust, "verify", str(a), str(b)],
            "faceclust search PHOTO": [faceclust, "search", str(probe), "--catalog", str(catalog)],
        }
        runs: dict[str, list[float]] = {}
        names = list(commands)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                runs.setdefault(name, []).append(timed(commands[name], warm))
                if name.startswith("faceclust"):
                    empty = dict(os.environ, FACECLUST_CACHE=str(tmp / f"empty-{r}-{len(runs)}"))
                    runs.setdefault(name + " (empty model cache)", []).append(timed(commands[name], empty))
    print(f"{args.rounds} rotating rounds, 2 cores; wall time of the whole process\n")
    print("| command | median s | min s | over torch's import (median) |")
    print("|---|---|---|---|")
    base = statistics.median(runs[names[0]])
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        excess = "" if name == names[0] else f"{median - base:+.2f} s"
        print(f"| {name} | {median:.2f} | {min(seconds):.2f} | {excess} |")


if __name__ == "__main__":
    main()
