"""Face-found-in-photo recall: faceclust's detector against dlib's CNN as face_recognition runs it.

    .venv/bin/python benchmarks/bench_recall.py [--set celeb25_web] [--every 1] [--min-face 40 30] [--detectors yunet mmod]

Every photo of a labelled set holds its person, so recall is the share of photos in which at
least one face is found. The reference is dlib's CNN detector (dlib-bin) at face_recognition's
settings: ``cnn_face_detection_model_v1(mmod_human_face_detector.dat)(image, 1)`` (one
upsampling, ``face_locations(model="cnn")``'s default) on the photo with its EXIF orientation
applied. faceclust runs as a scan does (the working-size policy, the default two-pass rule),
once per ``--detectors`` and ``--min-face``; only the detect call is timed, models loaded first. ``--every N`` takes
every N-th photo (dlib's CNN needs about 1.2 s a photo on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def dlib_cnn(paths: list[Path]) -> tuple[np.ndarray, float]:
    import dlib
    from PIL import Image, ImageOps

    spec = importlib.util.find_spec("face_recognition_models")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    cnn = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))
    found, seconds = [], 0.0
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        start = time.perf_counter()
        found.append(len(cnn(pixels, 1)))
        seconds += time.perf_counter() - start
    return np.array(found), seconds / len(paths)


def faceclust(paths: list[Path], min_face: int, detector_name: str | None = None) -> tuple[np.ndarray, float]:
    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.photos.decode import load_image

    options = DetectOptions(min_face=min_face) if detector_name is None else \
        DetectOptions(min_face=min_face, detector=detector_name)
    detector = detectors.create(options.detector, options=options)

    def policy(width: int, height: int) -> float:  # a scan's: decode no larger than detection looks
        return min(1.0, options.detection_scale(width, height, detector.window))

    detector.detect(load_image(paths[0], policy).pixels, scale=1.0)  # load the model first
    found, seconds = [], 0.0
    for path in paths:
        image = load_image(path, policy)
        scale = options.detection_scale(image.original_width, image.original_height, detector.window)
        start = time.perf_counter()
        found.append(len(detector.detect(image.pixels, scale=scale / image.scale)))
        seconds += time.perf_counter() - start
    return np.array(found), seconds / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="celeb25_web")
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--min-face", type=int, nargs="+", default=[30])
    parser.add_argument("--detectors", nargs="+", default=[None],
                        help="registered detectors (default: the default detector)")
    args = parser.parse_args()
    paths = sorted(p for p in (args.shared_data / args.set).glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    paths = paths[::args.every]
    rows = [("dlib CNN, face_recognition's settings (upsample 1)", *dlib_cnn(paths))]
    rows += [(f"faceclust {d or 'default detector'}, min_face {m}", *faceclust(paths, m, d))
             for d in args.detectors for m in args.min_face]
    print(f"{args.set}: {len(paths)} photos (every {args.every}), {time.strftime('%Y-%m-%d')}\n")
    print("| detector | recall (photos with a face) | faces / photo | detect s / photo |")
    print("|---|---|---|---|")
    for name, found, seconds in rows:
        print(f"| {name} | {np.mean(found > 0):.4f} ({int((found > 0).sum())}) | {found.mean():.3f} | {seconds:.4f} |")


if __name__ == "__main__":
    main()
