"""Does keeping freed memory (faceclust.memory.keep_freed_memory, called by the CLI) speed up scans?

Scans the same phone-size photos (celeba_train photos enlarged to 2048x1536, written to a
temporary folder) into fresh catalogs, each scan in its own process, alternating with and
without the glibc setting so that a noisy spell hurts both; prints each round and the ratio of
medians.

    .venv/bin/python benchmarks/bench_memory.py [--photos 80] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_scan import ROOT, big_copies

SCAN = """
import sys, time
from pathlib import Path
if sys.argv[1] == "keep":
    from faceclust.memory import keep_freed_memory
    assert keep_freed_memory()
from faceclust.scan.options import ScanOptions
from faceclust.scan.scanner import scan_library
start = time.perf_counter()
scan_library(Path(sys.argv[2]), [Path(sys.argv[3])], ScanOptions(update_index=False))
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"default": [], "keep": []}
    with tempfile.TemporaryDirectory() as tmp:
        photos = big_copies(args.shared_data / "celeba_train", args.photos, (2048, 1536), Path(tmp) / "photos")
        for round_ in range(args.rounds):
            for mode in ("default", "keep"):
                catalog = Path(tmp) / f"{mode}-{round_}.sqlite"
                out = subprocess.run([sys.executable, "-c", SCAN, mode, str(catalog), str(photos)],
                                     capture_output=True, text=True, check=True)
                seconds[mode].append(float(out.stdout.strip().splitlines()[-1]))
                print(f"round {round_}: {mode}: {seconds[mode][-1]:.2f} s", file=sys.stderr, flush=True)
    median = {mode: statistics.median(values) for mode, values in seconds.items()}
    print("| photos | glibc default (s, each round) | freed memory kept (s, each round) | ratio of medians |")
    print("|---|---|---|---|")
    print(f"| {args.photos} at 2048x1536 | {', '.join(f'{v:.2f}' for v in seconds['default'])} | "
          f"{', '.join(f'{v:.2f}' for v in seconds['keep'])} | {median['default'] / median['keep']:.2f}x |")


if __name__ == "__main__":
    main()
