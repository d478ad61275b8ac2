"""YuNet's detection time per photo by runtime: the torch rebuild (plain, and the TorchScript
inference form it switches to after its first photos) and onnxruntime (the default), on the
same decoded photos, alternating, in one run.

    .venv/bin/python benchmarks/bench_yunet_runtime.py --photos DIR [--count 40] [--rounds 3] [--workers 2]

DIR holds the photos (for example bench_phone.py's 4032x3024 ones in its work folder); each is
decoded as a scan decodes it at the default options. Only the detect calls are timed (wall
time per photo). ``--workers 2``: two threads detect side by side, each computing alone, as a
scan's workers do; 1: one thread computing with every core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _detect_all(detector, images, scales, workers: int) -> tuple[float, list]:
    from faceclust.cpu import compute_alone_on_this_thread

    found: list = [None] * len(images)

    def work(start: int) -> None:
        if workers > 1:
            compute_alone_on_this_thread()
        for i in range(start, len(images), workers):
            found[i] = detector.detect(images[i].pixels, scales[i])

    begin = time.perf_counter()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - begin) / len(images), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-side", type=int, default=None)
    args = parser.parse_args()
    import torch

    from faceclust.cpu import threads
    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.memory import keep_freed_memory
    from faceclust.photos.decode import load_image

    keep_freed_memory()  # as a scan does: freed activations stay in the process
    torch.set_num_threads(threads())
    options = DetectOptions() if args.max_side is None else DetectOptions(max_side=args.max_side)
    plain = detectors.create("yunet", options=options, runtime="torch")
    plain._load().FREEZE_AFTER = 10 ** 9
    frozen = detectors.create("yunet", options=options, runtime="torch")
    frozen._load().FREEZE_AFTER = 0
    ort = detectors.create("yunet", options=options, runtime="onnxruntime")
    paths = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:args.count]
    policy = lambda w, h: min(1.0, options.detection_scale(w, h, plain.window))  # noqa: E731
    images = [load_image(p, policy) for p in paths]
    scales = [options.detection_scale(i.original_width, i.original_height, plain.window) / i.scale for i in images]
    runners = {"torch, plain": plain, "torch, inference form": frozen, "onnxruntime": ort}
    for detector in runners.values():  # warm-up; builds the frozen network
        detector.detect(images[0].pixels, scales[0])
    assert frozen._load()._frozen, "the frozen network could not be built"
    times: dict[str, list[float]] = {name: [] for name in runners}
    same = {name: 0 for name in runners}
    for _ in range(args.rounds):
        reference = None
        for name, detector in runners.items():
            seconds, found = _detect_all(detector, images, scales, args.workers)
            times[name].append(seconds)
            reference = reference or found
            same[name] += sum(len(a) == len(b) and (not len(a) or np.abs(a.boxes - b.boxes).max() < 0.05)
                              for a, b in zip(reference, found))
    side = images[0].pixels.shape
    base = statistics.median(times["torch, inference form"])
    print(f"{len(images)} photos decoded to {side[1]}x{side[0]}, {args.rounds} rounds, "
          f"{args.workers} worker(s), {threads()} threads")
    print("| runtime | ms a photo (wall) | vs torch's inference form | same faces as torch plain (boxes within 0.05 px) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values) * 1000:.1f} | {base / statistics.median(values):.2f}x | "
              f"{same[name]}/{len(images) * args.rounds} |")


if __name__ == "__main__":
    main()
