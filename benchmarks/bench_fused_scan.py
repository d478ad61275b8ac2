"""What the fused descriptor costs a scan: photos/s with the fused embedder ([dlib, 0.5 SFace])
against today's default (dlib's ResNet alone), the same photos, alternating, in one run.

    .venv/bin/python benchmarks/bench_fused_scan.py --set celeba_train --photos 400 --rounds 2

Each round scans the photos into a fresh catalog (no index); the first scan of each embedder
is a warm-up (models load), not counted. Reported: median photos/s and the time split.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="celeba_train")
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    sources = sorted((ROOT.parent / "shared" / "data" / args.set).rglob("*.jpg"))[:: 3][: args.photos]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        for i, source in enumerate(sources):
            target = photos / f"{i % 20:02d}" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        runs: dict[str, list] = {"dlib-resnet": [], "fused": []}
        for r in range(args.rounds + 1):
            order = ["dlib-resnet", "fused"] if r % 2 == 0 else ["fused", "dlib-resnet"]
            for name in order:
                catalog = tmp / f"{name}-{r}.sqlite"
                started = time.perf_counter()
                summary = scan_library(catalog, [photos], ScanOptions(embedder=name, update_index=False))
                seconds = time.perf_counter() - started
                if r:  # round 0 loads the models
                    runs[name].append((seconds, summary))
    print(f"{len(sources)} photos of {args.set}, {args.rounds} alternating rounds after a warm-up, 2 cores\n")
    print("| embedder | photos/s (median) | faces | time split of the median run (s) |")
    print("|---|---|---|---|")
    medians = {}
    for name, results in runs.items():
        seconds = statistics.median(s for s, _ in results)
        _, summary = min(results, key=lambda item: abs(item[0] - seconds))
        medians[name] = seconds
        split = ", ".join(f"{k} {v:.1f}" for k, v in sorted(summary.timings.items()) if v >= 0.05)
        print(f"| {name} | {len(sources) / seconds:.1f} | {summary.faces_found} | {split} |")
    print(f"\nfused / dlib time: {medians['fused'] / medians['dlib-resnet']:.2f}x")


if __name__ == "__main__":
    main()
