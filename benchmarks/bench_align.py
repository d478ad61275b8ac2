"""Where the five ArcFace points for SFace come from, on YuNet's faces: dlib's 68-point predictor
(started from YuNet's box mapped onto MMOD's square, as scans do today) or YuNet's own five
points. VAL of each descriptor part, on the same labelled faces, beside MMOD's faces.

    .venv/bin/python benchmarks/bench_align.py --mmod CACHE_M --yunet CACHE_Y [--every 1]

CACHE_M and CACHE_Y hold ``SET.sqlite`` catalogs of the three development sets scanned with the
default model by the mmod and the yunet detector (``benchmarks/dev_catalogs.py [--detector
yunet] --cache DIR``). For every labelled photo (the face ``calibrate`` picks on MMOD's catalog)
whose face YuNet's catalog also holds (IoU >= 0.4), descriptors are compared:

- ``mmod``: the stored fused descriptor of MMOD's face (dlib chip from dlib's 5 points, SFace
  chip from dlib's 68 points, both started from MMOD's box);
- ``yunet, 68 pts``: the stored fused descriptor of YuNet's face (the same, from YuNet's box);
- ``yunet, own 5 pts``: the dlib part as stored, SFace from the five points YuNet gives
  with its box (the photo decoded and searched again, as a scan does).

Each fused descriptor is split back into its unit parts (dlib, SFace) and recombined.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_SHARED_DATA = Path(os.environ.get("FACECLUST_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETS = ("lfw_dev", "celeba_train", "celeb25_web")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def parts(fused: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dlib's and SFace's unit descriptors from fused ones ([dlib, w SFace] renormalised)."""
    return unit(fused[:, :128].astype(np.float64)), unit(fused[:, 128:].astype(np.float64))


def stored(catalog, model_id: str) -> dict[int, tuple[str, np.ndarray, np.ndarray]]:
    """face id -> (photo path, box, descriptor) of every face with a descriptor."""
    return {f[0]: (f[1], np.array(f[2:6], np.float64), np.frombuffer(f[7], "<f4"))
            for f in catalog.iter_faces(model_id) if f[7] is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmod", type=Path, required=True, help="folder of the mmod catalogs")
    parser.add_argument("--yunet", type=Path, required=True, help="folder of the yunet catalogs")
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--every", type=int, default=1, help="use every n-th labelled photo")
    args = parser.parse_args()

    from bench_yunet import iou

    from faceclust.catalog import Catalog
    from faceclust.evaluate.metrics import val_at_far
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.faces.detect import DetectOptions
    from faceclust.faces.embed import catalog_model, embedders
    from faceclust.faces.finder import FaceFinder
    from faceclust.faces.yunet import as_mmod_boxes
    from faceclust.find.calibration import labelled_faces
    from faceclust.photos.decode import load_image

    finder = FaceFinder.create(DetectOptions(detector="yunet"), "dlib-resnet")
    sface = embedders.create("sface")
    print("| set | faces | points for SFace | dlib VAL 1e-3 / 1e-2 | SFace VAL 1e-3 / 1e-2 | fused VAL 1e-3 / 1e-2 |")
    print("|---|---|---|---|---|---|")
    for name in args.sets:
        folder = args.shared_data / name
        with Catalog(args.mmod / f"{name}.sqlite") as cm, Catalog(args.yunet / f"{name}.sqlite") as cy:
            chosen = labelled_faces(cm, folder, catalog_model(cm).model_id)
            m_faces = stored(cm, catalog_model(cm).model_id)
            y_faces = stored(cy, catalog_model(cy).model_id)
        by_photo: dict[str, list[int]] = {}
        for face_id, (path, _box, _v) in y_faces.items():
            by_photo.setdefault(path, []).append(face_id)
        rows = []
        for i, (face_id, label) in enumerate(zip(chosen.face_ids.tolist(), chosen.labels.tolist())):
            if i % args.every:
                continue
            path, box, m_vec = m_faces[face_id]
            candidates = by_photo.get(path, [])
            if not candidates:
                continue
            overlap = iou(box[None], np.stack([y_faces[c][1] for c in candidates]))[0]
            if overlap.max() < 0.4:
                continue
            y_box, y_vec = y_faces[candidates[int(overlap.argmax())]][1:]
            image = load_image(Path(path), finder.scale_policy())
            scale = finder.options.detection_scale(image.original_width, image.original_height,
                                                   finder.detector.window) / image.scale
            boxes, _scores, points = finder.detector.raw(image.pixels, scale)
            if not len(boxes):
                continue
            near = iou(y_box[None] * image.scale, as_mmod_boxes(boxes))[0]
            if near.max() < 0.9:  # not the stored face (should not happen: same pixels, same net)
                continue
            chip = ArcFaceAligner.chips(image.pixels, points[int(near.argmax())][None])
            rows.append((label, m_vec, y_vec, chip[0]))
        labels = np.array([r[0] for r in rows])
        m_dlib, m_sface = parts(np.stack([r[1] for r in rows]))
        y_dlib, y_sface = parts(np.stack([r[2] for r in rows]))
        y5_sface = unit(sface.embed(np.stack([r[3] for r in rows])).astype(np.float64))
        for title, dlib, sf in (("mmod: dlib 68 pts", m_dlib, m_sface), ("yunet: dlib 68 pts", y_dlib, y_sface),
                                ("yunet: its own 5 pts", y_dlib, y5_sface)):
            cells = []
            for v in (dlib, sf, unit(np.hstack([dlib, 0.5 * sf]))):
                val = val_at_far(v.astype(np.float32), labels)
                cells.append(f"{val[1e-3][0]:.4f} / {val[1e-2][0]:.4f}")
            print(f"| {name} | {len(rows)} | {title} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
