"""Small faces in big photos: which face sizes a detector finds in a 12-megapixel photo, at
several working sides (``--max-side``). The development sets are small photos with one big
face; a phone's group photo has many small ones.

    .venv/bin/python benchmarks/bench_group.py [--sizes 60 80 100 120 160] [--sides 1024 1280 1600]

Each "group photo" is a 4032x3024 JPEG (q92) tiled with lfw_dev photos, each enlarged so that
its face (the box the default detector finds in it at its own size) is ``size`` pixels wide;
every tile holds one face where that box says. A tile's face is found when a detected box
overlaps the expected box at IoU >= 0.3. The photos are decoded and searched as a scan does
(the working-size policy of each detector and ``--max-side``). Written to ``--work`` (made again on every run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZE = (4032, 3024)


def make_photos(shared: Path, work: Path, face: int, count: int, rng) -> list[tuple[Path, np.ndarray]]:
    """``count`` group photos with faces ``face`` px wide: (path, expected boxes (n, 4))."""
    from PIL import Image

    from faceclust.faces.detect import DetectOptions, detectors

    detector = detectors.create("yunet", options=DetectOptions())
    sources = sorted((shared / "lfw_dev").rglob("*.jpg"))
    out = []
    for k in range(count):
        path = work / f"group-{face}-{k}.jpg"
        canvas = Image.new("RGB", SIZE, (120, 120, 120))
        boxes = []
        x = y = row_height = 0
        for index in rng.permutation(len(sources)):
            with Image.open(sources[index]) as im:
                tile = im.convert("RGB")
            found = detector.detect(np.asarray(tile), scale=1.0)
            if len(found) != 1:
                continue  # one face a tile, so that the expected box is known
            box = found.boxes[0].astype(np.float64)
            factor = face / (box[2] - box[0])
            tile = tile.resize((round(tile.width * factor), round(tile.height * factor)), Image.Resampling.BICUBIC)
            if x + tile.width > SIZE[0]:
                x, y, row_height = 0, y + row_height, 0
            if y + tile.height > SIZE[1]:
                break
            canvas.paste(tile, (x, y))
            boxes.append(box * factor + [x, y, x, y])
            x, row_height = x + tile.width, max(row_height, tile.height)
        canvas.save(path, quality=92)
        out.append((path, np.array(boxes)))
    return out


def found_share(photos, detector_name: str, max_side: int) -> tuple[float, int, float]:
    from bench_yunet import iou

    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.photos.decode import load_image

    options = DetectOptions(detector=detector_name, max_side=max_side)
    detector = detectors.create(detector_name, options=options)
    policy = lambda w, h: min(1.0, options.detection_scale(w, h, detector.window))  # noqa: E731
    found = total = 0
    seconds = 0.0
    for path, expected in photos:
        image = load_image(path, policy)
        scale = options.detection_scale(image.original_width, image.original_height, detector.window)
        start = time.perf_counter()
        got = detector.detect(image.pixels, scale=scale / image.scale).boxes / image.scale
        seconds += time.perf_counter() - start
        total += len(expected)
        if len(got):
            found += int((iou(expected, got).max(axis=1) >= 0.3).sum())
    return found / max(total, 1), total, seconds / len(photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 80, 100, 120, 160])
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 1280, 1600])
    parser.add_argument("--detectors", nargs="+", default=["yunet"])
    parser.add_argument("--photos", type=int, default=2, help="group photos per face size")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "faceclust-bench-group")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    args.work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photos = {size: make_photos(args.shared_data, args.work, size, args.photos, rng) for size in args.sizes}
    print(f"{args.photos} photos of {SIZE[0]}x{SIZE[1]} per face size; faces found (share of the tiles' faces)\n")
    print("| detector | max side | " + " | ".join(f"{s} px faces" for s in args.sizes) + " | detect s / photo |")
    print("|---|---|" + "---|" * len(args.sizes) + "---|")
    for name in args.detectors:
        for side in args.sides:
            cells, times = [], []
            for size in args.sizes:
                share, total, seconds = found_share(photos[size], name, side)
                cells.append(f"{share:.3f} ({total})")
                times.append(seconds)
            print(f"| {name} | {side} | " + " | ".join(cells) + f" | {np.mean(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
