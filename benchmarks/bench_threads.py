"""One op on every core, or one core per worker? The scan's models timed both ways, in one run.

    .venv/bin/python benchmarks/bench_threads.py --photos DIR [--count 16] [--rounds 3]

DIR holds photos (for example bench_phone.py's 4032x3024 JPEGs); each is decoded as a scan
decodes it. For YuNet (frozen, the photos), SFace and dlib's ResNet (chips of random pixels:
their cost does not depend on the pixels), three ways, alternating, each round's best kept:

- ``1 thread``: torch on one thread, one call after the other;
- ``N threads``: torch on every core (``faceclust.cpu.threads()``), one call after the other
  (what the scan did before its workers found faces);
- ``N workers``: as many threads side by side, torch on one thread each (what the scan's
  workers do now).

Times are per photo (YuNet) or per face (embedders): wall time over the work done. Then SFace
and dlib's ResNet on one thread by the number of chips in a call.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--count", type=int, default=16, help="photos (and chips per embedder call x 4)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from faceclust.memory import keep_freed_memory

    keep_freed_memory()  # the command line's memory policy, before any thread starts
    import torch

    from faceclust.cpu import threads, compute_alone_on_this_thread
    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.faces.embed import embedders
    from faceclust.photos.decode import load_image

    cores = threads()
    options = DetectOptions()
    yunet = detectors.create("yunet", options=options)
    yunet.expect(10 ** 6)
    policy = lambda w, h: min(1.0, options.detection_scale(w, h, yunet.window))  # noqa: E731
    paths = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:args.count]
    images = [load_image(p, policy) for p in paths]
    scales = [options.detection_scale(i.original_width, i.original_height, yunet.window) / i.scale for i in images]
    rng = np.random.default_rng(0)
    fused = embedders.create("fused")
    dlib, sface = fused.parts
    chips = {"sface": rng.integers(0, 256, (4 * args.count, 112, 112, 3), dtype=np.uint8),
             "dlib-resnet": rng.integers(0, 256, (4 * args.count, 150, 150, 3), dtype=np.uint8)}
    work = {  # name -> (units, one unit of work by index)
        "yunet (per photo)": (len(images), lambda i: yunet.detect(images[i].pixels, scales[i])),
        "sface (per face, calls of 8)": (len(chips["sface"]) // 8,
                                         lambda i: sface.embed(chips["sface"][8 * i:8 * i + 8])),
        "dlib-resnet (per face, calls of 8)": (len(chips["dlib-resnet"]) // 8,
                                               lambda i: dlib.embed(chips["dlib-resnet"][8 * i:8 * i + 8])),
    }
    per_unit = {"yunet (per photo)": 1, "sface (per face, calls of 8)": 8, "dlib-resnet (per face, calls of 8)": 8}
    for _, (units, run) in work.items():  # warm-up
        torch.set_num_threads(cores)
        run(0)

    def serial(units, run, n):
        torch.set_num_threads(n)
        start = time.perf_counter()
        for i in range(units):
            run(i)
        return time.perf_counter() - start

    def side_by_side(units, run):
        def worker(part):
            compute_alone_on_this_thread()
            for i in part:
                run(i)

        parts = [range(w, units, cores) for w in range(cores)]
        workers = [threading.Thread(target=worker, args=(p,)) for p in parts]
        start = time.perf_counter()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return time.perf_counter() - start

    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for name, (units, run) in work.items():
            done = units * per_unit[name]
            for way, seconds in (("1 thread", lambda: serial(units, run, 1)),
                                 (f"{cores} threads", lambda: serial(units, run, cores)),
                                 (f"{cores} workers", lambda: side_by_side(units, run))):
                ms = 1000 * seconds() / done
                best[(name, way)] = min(best.get((name, way), float("inf")), ms)
    torch.set_num_threads(1)
    by_batch: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for name, embedder in (("sface", sface), ("dlib-resnet", dlib)):
            for size in (1, 2, 4, 8, 16, 32):
                calls = max(1, 32 // size)
                start = time.perf_counter()
                for c in range(calls):
                    embedder.embed(chips[name][(c * size) % 32:(c * size) % 32 + size])
                ms = 1000 * (time.perf_counter() - start) / (calls * size)
                by_batch[(name, size)] = min(by_batch.get((name, size), float("inf")), ms)

    command = "benchmarks/bench_threads.py " + " ".join(sys.argv[1:])
    print(f"\nCommand: `.venv/bin/python {command}`; {len(images)} photos, {cores} cores, best of {args.rounds} rounds\n")
    ways = ["1 thread", f"{cores} threads", f"{cores} workers"]
    print("| model | " + " | ".join(f"{w} (ms)" for w in ways) + f" | {cores} threads vs 1 | {cores} workers vs 1 |")
    print("|---|" + "---|" * (len(ways) + 2))
    for name in work:
        one = best[(name, "1 thread")]
        cells = [f"{best[(name, w)]:.1f}" for w in ways]
        print(f"| {name} | {' | '.join(cells)} | {one / best[(name, ways[1])]:.2f}x | {one / best[(name, ways[2])]:.2f}x |")
    print("\n| embedder, 1 thread | " + " | ".join(f"{s} chips" for s in (1, 2, 4, 8, 16, 32)) + " |")
    print("|---|" + "---|" * 6)
    for name in ("sface", "dlib-resnet"):
        print(f"| {name} (ms a face) | " + " | ".join(f"{by_batch[(name, s)]:.1f}" for s in (1, 2, 4, 8, 16, 32)) + " |")


if __name__ == "__main__":
    main()
