"""Measure the MMOD detector's activation ranges for its int8 mode.

Runs the fp32 conv stack on the image pyramids of development photos, at the scales a scan
uses (the photo itself, and enlarged twice for small faces), and stores each activation's
[min, max] in ``faceclust/models/int8_ranges.json`` keyed by the model file's SHA-256. Only
these numbers are stored, never the photos.

    .venv/bin/python benchmarks/calibrate_detector.py --photos 40
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "lfw_dev")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from faceclust.models import int8_ranges, quantize
    from faceclust.models.files import DETECTOR_FILE, file_sha256, model_path
    from faceclust.models.mmod import MMODDetector

    detector = MMODDetector(dlib_resize=False)
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    paths = random.Random(args.seed).sample(paths, min(args.photos, len(paths)))
    inputs = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        for scale in (1.0, 2.0):
            pyramid = detector.pyramid(image, scale=scale)
            if pyramid is not None:
                inputs.append(pyramid.tiled)
    ranges = quantize.calibrate(detector.net.body, inputs)  # the score head stays fp32
    source = (f"{len(paths)} photos of {args.folder.name} (seed {args.seed}) at scales 1 and 2: "
              "benchmarks/calibrate_detector.py")
    int8_ranges.save_ranges(file_sha256(model_path(DETECTOR_FILE)), "mmod", ranges, source)
    for i, (low, high) in enumerate(ranges):
        print(f"activation {i}: [{low:.3f}, {high:.3f}]")
    print(f"wrote {int8_ranges.RANGES_FILE}")


if __name__ == "__main__":
    main()
