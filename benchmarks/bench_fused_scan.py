"""What the defaults cost a scan: the default (YuNet, the fused embedder [dlib, 0.5 SFace],
min_face 30) against the default before the fused descriptor (MMOD, dlib's ResNet alone,
min_face 40), MMOD with dlib alone at min_face 30 and MMOD with the fused embedder (the default
before YuNet), the same photos, in rotating order, in one run.

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
    from faceclust.faces.detect import DetectOptions
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
        configs = {"former default: mmod, dlib-resnet, min_face 40": ("mmod", "dlib-resnet", 40),
                   "mmod, dlib-resnet, min_face 30": ("mmod", "dlib-resnet", 30),
                   "mmod, fused, min_face 30 (the default before yunet)": ("mmod", "fused", 30),
                   "default: yunet, fused, min_face 30": ("yunet", "fused", 30)}
        runs: dict[str, list] = {name: [] for name in configs}
        names = list(configs)
        for r in range(args.rounds + 1):
            for name in names[r % len(names):] + names[:r % len(names)]:
                detector, embedder, min_face = configs[name]
                catalog = tmp / f"{detector}-{embedder}-{min_face}-{r}.sqlite"
                started = time.perf_counter()
                detect = DetectOptions(detector=detector, min_face=min_face)
                summary = scan_library(catalog, [photos], ScanOptions(detect=detect, embedder=embedder,
                                                                      update_index=False))
                seconds = time.perf_counter() - started
                if r:  # round 0 loads the models
                    runs[name].append((seconds, summary))
    print(f"{len(sources)} photos of {args.set}, {args.rounds} alternating rounds after a warm-up, 2 cores\n")
    print("| configuration | photos/s (median) | faces | time split of the median run (s) |")
    print("|---|---|---|---|")
    medians = {}
    for name, results in runs.items():
        seconds = statistics.median(s for s, _ in results)
        _, summary = min(results, key=lambda item: abs(item[0] - seconds))
        medians[name] = seconds
        split = ", ".join(f"{k} {v:.1f}" for k, v in sorted(summary.timings.items()) if v >= 0.05)
        print(f"| {name} | {len(sources) / seconds:.1f} | {summary.faces_found} | {split} |")
    base = medians[names[0]]
    print("\n" + ", ".join(f"{name}: {medians[name] / base:.2f}x the former default's time" for name in names[1:]))


if __name__ == "__main__":
    main()
