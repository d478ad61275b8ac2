"""YuNet against the default MMOD detector on the development sets: faces found, photos with a
face, time, and the box geometry that maps YuNet's boxes onto MMOD's (``--fit``).

    .venv/bin/python benchmarks/bench_yunet.py [--every 5] [--fit]

Every ``--every``-th photo of lfw_dev, celeba_train and celeb25_web is decoded as a scan decodes
it; the default detector (``mmod`` at the default options, as a scan calls it) gives the
reference boxes. YuNet runs on the same pixels at the scale a scan would give it (``yunet`` at
the default options) and at its raw scale 1, for several score thresholds. A YuNet face matches
an MMOD face when their boxes overlap at IoU >= 0.4 (after the geometry mapping), one to one.
``--fit`` fits faceclust.faces.yunet.MMOD_GEOMETRY by least squares on YuNet's raw boxes of
matched faces (matched by centre distance) and prints the constants.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_SHARED_DATA = Path(os.environ.get("FACECLUST_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETS = ("lfw_dev", "celeba_train", "celeb25_web")
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    h = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    inter = w * h
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def match(ref: np.ndarray, got: np.ndarray, least: float = 0.4) -> list[tuple[int, int]]:
    if not len(ref) or not len(got):
        return []
    m = iou(ref, got)
    pairs = []
    while m.size and m.max() >= least:
        i, j = np.unravel_index(m.argmax(), m.shape)
        pairs.append((int(i), int(j)))
        m[i, :], m[:, j] = -1, -1
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--window", type=float, default=None,
                        help="YuNet's smallest face at scale 1 (default: the detector's own)")
    args = parser.parse_args()

    import torch

    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.faces.yunet import as_mmod_boxes
    from faceclust.photos.decode import load_image

    torch.set_num_threads(args.threads)
    options = DetectOptions()
    mmod = detectors.create("mmod", options=options)
    yunet = detectors.create("yunet", options=options)
    if args.window:
        yunet.window = args.window
    print(f"| set | photos | detector | photos with a face | faces | MMOD's faces matched | s/photo |")
    print("|---|---|---|---|---|---|---|")
    pairs_raw, pairs_ref = [], []
    for name in SETS:
        paths = sorted((args.shared_data / name).rglob("*.jpg"))[::args.every]
        stats: dict[str, list] = {}
        for path in paths:
            image = load_image(path)
            w, h = image.pixels.shape[1], image.pixels.shape[0]
            t = time.perf_counter()
            ref = mmod.detect(image.pixels, scale=options.detection_scale(w, h, mmod.window)).boxes.astype(np.float64)
            stats.setdefault("mmod", []).append((len(ref), len(ref), time.perf_counter() - t))
            t = time.perf_counter()
            boxes, scores, _ = yunet.raw(image.pixels, options.detection_scale(w, h, yunet.window), min(THRESHOLDS))
            took = time.perf_counter() - t
            for threshold in THRESHOLDS:
                kept = boxes[scores >= threshold]
                mapped = as_mmod_boxes(kept)
                stats.setdefault(f"yunet >= {threshold}", []).append((len(kept), len(match(ref, mapped)), took))
            if args.fit and len(ref):
                kept = boxes[scores >= 0.9]
                if len(kept):
                    cr = (ref[:, :2] + ref[:, 2:]) / 2
                    ck = (kept[:, :2] + kept[:, 2:]) / 2
                    d = np.linalg.norm(cr[:, None] - ck[None], axis=2)
                    for i in range(len(ref)):
                        j = int(d[i].argmin())
                        if d[i, j] < 0.3 * (ref[i, 2] - ref[i, 0]) and int(d[:, j].argmin()) == i:
                            pairs_raw.append(kept[j])
                            pairs_ref.append(ref[i])
        total_ref = sum(s[0] for s in stats["mmod"])
        for detector, rows in stats.items():
            found = sum(1 for r in rows if r[0])
            faces = sum(r[0] for r in rows)
            matched = sum(r[1] for r in rows)
            seconds = np.mean([r[2] for r in rows])
            print(f"| {name} | {len(paths)} | {detector} | {found / len(paths):.4f} | {faces} | "
                  f"{matched}/{total_ref} | {seconds:.4f} |", flush=True)
    if args.fit and pairs_raw:
        raw, ref = np.array(pairs_raw), np.array(pairs_ref)
        w, h = raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]
        cx, cy = (raw[:, 0] + raw[:, 2]) / 2, (raw[:, 1] + raw[:, 3]) / 2
        rx, ry = (ref[:, 0] + ref[:, 2]) / 2, (ref[:, 1] + ref[:, 3]) / 2
        side = ((ref[:, 2] - ref[:, 0]) + (ref[:, 3] - ref[:, 1])) / 2
        a = float(np.sum((rx - cx) * w) / np.sum(w * w))
        b = float(np.sum((ry - cy) * h) / np.sum(h * h))
        (c, d), *_ = np.linalg.lstsq(np.stack([w, h], axis=1), side, rcond=None)
        fitted = as_mmod_boxes(raw, (a, b, float(c), float(d)))
        overlap = np.diag(iou(fitted, ref))
        print(f"\nfit on {len(raw)} faces: MMOD_GEOMETRY = ({a:.4f}, {b:.4f}, {c:.4f}, {d:.4f}); "
              f"IoU with MMOD's box: median {np.median(overlap):.3f}, 5th percentile {np.percentile(overlap, 5):.3f}")


if __name__ == "__main__":
    main()
