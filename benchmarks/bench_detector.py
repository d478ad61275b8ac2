"""Face detector speed: the torch rebuild of dlib's MMOD CNN detector against dlib-bin, in one run.

Both detect faces in the same real photos (the first photo of the first celeba_train
identities, up to 512 px), at their native size and resized to 1024x768, and at native size
with one doubling (our scale=2 against dlib's upsample_num_times=1). Our time is split into
its three stages: building the tiled pyramid, the conv stack, and turning the score map into
boxes. Each run also counts the rectangles both give identically. Prints a markdown table.

Run from the project root:

    .venv/bin/python benchmarks/bench_detector.py [--shared-data PATH]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from faceclust.models import quantize
from faceclust.models.files import DETECTOR_FILE, model_path
from faceclust.models.mmod import MMODDetector

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED_DATA = Path(os.environ.get("FACECLUST_SHARED_DATA",
                                          PROJECT_ROOT.parent / "shared" / "data"))
BIG = (1024, 768)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA,
                        help="folder holding celeba_train")
    parser.add_argument("--photos", type=int, default=4, help="how many photos")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rounds", type=int, default=5,
                        help="least rounds of our detector per input (best and median kept)")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="keep adding rounds until this long was spent on an input")
    return parser.parse_args()


def load_photos(shared_data: Path, count: int) -> list[np.ndarray]:
    from PIL import Image

    folders = sorted(p for p in (shared_data / "celeba_train").iterdir() if p.is_dir())
    return [np.asarray(Image.open(sorted(f.glob("*.jpg"))[0]).convert("RGB"))
            for f in folders[:count]]


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


@dataclass
class StageTimes:
    """Per-image wall times of each stage, one list entry per round."""

    pyramid: list[float] = field(default_factory=list)
    conv: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)

    @property
    def total(self) -> list[float]:
        return [a + b + c for a, b, c in zip(self.pyramid, self.conv, self.post)]


def time_ours(detector: MMODDetector, images: list[np.ndarray], scale: float, rounds: int,
              min_seconds: float) -> tuple[StageTimes, list[tuple[np.ndarray, np.ndarray]]]:
    """Per-image stage times, one entry per round over all the images.

    Other processes share this CPU: a round covers every image, so a busy spell hurts a
    round rather than one image, and rounds continue for ``min_seconds`` so that a spell
    longer than a few quick rounds cannot spoil them all.
    """
    times = StageTimes()
    results = [detector.detect(image, scale=scale) for image in images]  # warm-up per shape
    start_all = time.perf_counter()
    while len(times.pyramid) < rounds or time.perf_counter() - start_all < min_seconds:
        spent = np.zeros(3)
        for image in images:
            start = time.perf_counter()
            pyramid = detector.pyramid(image, scale=scale)
            mid = time.perf_counter()
            scores = detector.score_map(pyramid)
            end = time.perf_counter()
            detector.boxes(scores, pyramid)
            spent += (mid - start, end - mid, time.perf_counter() - end)
        for stage, value in zip(("pyramid", "conv", "post"), spent / len(images)):
            getattr(times, stage).append(float(value))
    return times, results


def time_dlib(reference, images: list[np.ndarray], upsample: int
              ) -> tuple[float, list[np.ndarray]]:
    """Seconds per image (one pass: dlib takes seconds per photo) and its rectangles."""
    rects, spent = [], 0.0
    for image in images:
        start = time.perf_counter()
        found = reference(image, upsample)
        spent += time.perf_counter() - start
        rects.append(np.array([[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()]
                               for d in found], np.int64).reshape(-1, 4))
    return spent / len(images), rects


def identical(ours: list[tuple[np.ndarray, np.ndarray]], theirs: list[np.ndarray]
              ) -> tuple[int, int, int]:
    """(dlib rectangles that we give exactly, that we overlap at IoU >= 0.5, dlib rectangles)."""
    same = close = total = 0
    for (boxes, _), rects in zip(ours, theirs):
        mine = {tuple(r) for r in boxes.astype(np.int64).tolist()}
        same += sum(tuple(r) in mine for r in rects.tolist())
        close += sum(any(_iou(r, b) >= 0.5 for b in boxes.tolist()) for r in rects.tolist())
        total += len(rects)
    return same, close, total


def _iou(a, b) -> float:
    """IoU of two inclusive-corner rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return 0.0
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def conv_gflop(detector: MMODDetector, image: np.ndarray) -> float:
    """Multiply-adds x 2 of the conv stack on this image's tiled pyramid."""
    total = 0.0

    def count(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += 2 * module.in_channels * kh * kw * output.numel()

    def count_head(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.conv.kernel_size
        total += 2 * module.conv.in_channels * kh * kw * output.numel()

    hooks = [m.register_forward_hook(count) for m in detector.net.body.modules()
             if isinstance(m, nn.Conv2d)] + [detector.net.head.register_forward_hook(count_head)]
    detector.score_map(detector.pyramid(image))
    for hook in hooks:
        hook.remove()
    return total / 1e9


def main() -> None:
    args = parse_args()
    if not (args.shared_data / "celeba_train").is_dir():
        sys.exit(f"no photo sets at {args.shared_data}; pass --shared-data PATH")
    import dlib

    load_before = os.getloadavg()[0]
    # "exact" is dlib's arithmetic (fp32, dlib's enlargement); "int8" is the scan's default
    # conv stack with plain bilinear enlargement (one pass here: the two-pass rule is a scan
    # policy, measured end to end by bench_scan.py).
    detectors = {"exact": MMODDetector(threads=args.threads)}
    if quantize.int8_supported():
        detectors["int8"] = MMODDetector(threads=args.threads, precision="int8", dlib_resize=False)
    reference = dlib.cnn_face_detection_model_v1(str(model_path(DETECTOR_FILE)))
    native = load_photos(args.shared_data, args.photos)
    big = [resized(image, BIG) for image in native]
    cases = [(f"{BIG[0]}x{BIG[1]}", big, 1.0, 0), ("native (<= 512 px)", native, 1.0, 0),
             ("native, scale 2 / upsample 1", native, 2.0, 1)]

    rows = []
    for name, images, scale, upsample in cases:
        dlib_seconds, theirs = time_dlib(reference, images, upsample)
        for mode, detector in detectors.items():
            times, ours = time_ours(detector, images, scale, args.rounds, args.min_seconds)
            same, close, total = identical(ours, theirs)
            best = int(np.argmin(times.total))
            rows.append((name, mode, len(images), min(times.total), float(np.median(times.total)),
                         dlib_seconds, times.pyramid[best], times.conv[best], times.post[best],
                         same, close, total))
    gflop = conv_gflop(detectors["exact"], big[0])
    conv_rate = {row[1]: gflop / row[7] for row in rows if row[0] == cases[0][0]}
    load_after = os.getloadavg()[0]

    print("| input | mode | photos | ours s/img (best / median) | dlib s/img | speed-up (best / median) "
          "| pyramid | conv stack | boxes + NMS | dlib's rects: identical / IoU ≥ 0.5 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, mode, n, best, median, theirs, pyr, conv, post, same, close, total in rows:
        print(f"| {name} | {mode} | {n} | {best:.3f} / {median:.3f} | {theirs:.2f} | "
              f"{theirs / best:.1f}x / {theirs / median:.1f}x | {pyr * 1e3:.0f} ms | "
              f"{conv * 1e3:.0f} ms | {post * 1e3:.1f} ms | {same}/{total} / {close}/{total} |")
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    rates = ", ".join(f"{mode} {rate:.0f}" for mode, rate in conv_rate.items())
    print(f"\nConv stack at {BIG[0]}x{BIG[1]}: {gflop:.1f} GFLOP per image; "
          f"GFLOP/s (fp32-equivalent) in the best round: {rates}. Stage columns are from our best round. "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; dlib-bin "
          f"{dlib.__version__} "
          f"(one core). 1-min load average {load_before:.2f} before, {load_after:.2f} after "
          "(other processes share this CPU).")
    print(f"\nProduced by: `{command}` (ours: best and median of at least {args.rounds} "
          f"rounds and {args.min_seconds:g} s per input, after a warm-up; dlib: one pass)")


if __name__ == "__main__":
    main()
