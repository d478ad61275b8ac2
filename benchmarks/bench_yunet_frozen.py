"""YuNet's detection time per photo, plain torch against the TorchScript-frozen network the
detector switches to after its first photos, on the same decoded photos, alternating, in one run.

    .venv/bin/python benchmarks/bench_yunet_frozen.py --photos DIR [--count 40] [--rounds 3]

DIR holds the photos (for example bench_phone.py's 4032x3024 ones in its work folder); each is
decoded as a scan decodes it at the default options. Only the detect call is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-side", type=int, default=None)
    args = parser.parse_args()
    import torch

    from faceclust.cpu import threads
    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.photos.decode import load_image

    torch.set_num_threads(threads())
    options = DetectOptions() if args.max_side is None else DetectOptions(max_side=args.max_side)
    plain = detectors.create("yunet", options=options)
    plain.FREEZE_AFTER = 10 ** 9
    frozen = detectors.create("yunet", options=options)
    frozen.FREEZE_AFTER = 0
    paths = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:args.count]
    policy = lambda w, h: min(1.0, options.detection_scale(w, h, plain.window))  # noqa: E731
    images = [load_image(p, policy) for p in paths]
    scales = [options.detection_scale(i.original_width, i.original_height, plain.window) / i.scale for i in images]
    for detector in (plain, frozen):  # warm-up; builds the frozen network
        detector.detect(images[0].pixels, scales[0])
    assert frozen._frozen, "the frozen network could not be built"
    times: dict[str, list[float]] = {"plain": [], "frozen": []}
    same = 0
    for _ in range(args.rounds):
        for name, detector in (("plain", plain), ("frozen", frozen)):
            start = time.perf_counter()
            found = [detector.detect(i.pixels, s) for i, s in zip(images, scales)]
            times[name].append((time.perf_counter() - start) / len(images))
            if name == "plain":
                reference = found
            else:
                same += sum(len(a) == len(b) and (not len(a) or np.abs(a.boxes - b.boxes).max() < 0.05)
                            for a, b in zip(reference, found))
    side = images[0].pixels.shape
    print(f"{len(images)} photos decoded to {side[1]}x{side[0]}, {args.rounds} rounds, {threads()} threads")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values) * 1000:.1f} ms / photo |")
    print(f"frozen / plain: {statistics.median(times['frozen']) / statistics.median(times['plain']):.2f}; "
          f"same faces (boxes within 0.05 px) in {same} of {len(images) * args.rounds} photo runs")


if __name__ == "__main__":
    main()
