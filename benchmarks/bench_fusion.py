"""Which descriptor: dlib's ResNet, SFace, or the two fused, on the three development sets.

    .venv/bin/python benchmarks/bench_fusion.py [--sets lfw_dev celeba_train celeb25_web]

Each set is scanned with the default detector and the dlib embedder into a catalog kept in
``--cache`` (a second run reuses it). One face per labelled photo (as ``calibrate`` picks it);
for those faces, SFace descriptors are computed from the same boxes (ArcFace-aligned from
dlib's 68 points). VAL at FAR 1e-3 and 1e-2 on unit descriptors for: dlib, SFace, and their
concatenation with SFace weighted by w (renormalised) for a few w. The same pairs for all.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sface_descriptors(catalog, face_ids: np.ndarray) -> np.ndarray:
    from faceclust import embedders
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.photos.decode import load_image, max_side_policy

    rows = {r[0]: r for r in catalog.faces_by_id(face_ids)}
    aligner, embedder = ArcFaceAligner(), embedders.create("sface")
    chips = []
    for face in face_ids.tolist():
        _, path, left, top, right, bottom, _ = rows[face]
        image = load_image(Path(path), max_side_policy(1600))
        box = np.array([[left, top, right, bottom]], np.float64) * image.scale
        chips.append(aligner.chips(image.pixels, aligner.landmarks(image.pixels, box))[0])
    return embedder.embed(np.stack(chips))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["lfw_dev", "celeba_train", "celeb25_web"])
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/faceclust-bench-fusion"))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.5])
    args = parser.parse_args()
    from faceclust.catalog import Catalog
    from faceclust.evaluate.metrics import val_at_far
    from faceclust.faces.embed import catalog_model
    from faceclust.find.calibration import labelled_faces
    from faceclust.scan.scanner import scan_library

    args.cache.mkdir(parents=True, exist_ok=True)
    print("| set | faces | descriptor | VAL@FAR=1e-3 | VAL@FAR=1e-2 |")
    print("|---|---|---|---|---|")
    for name in args.sets:
        folder = args.shared_data / name
        path = args.cache / f"{name}.sqlite"
        started = time.perf_counter()
        scan_library(path, [folder])
        with Catalog(path) as catalog:
            faces = labelled_faces(catalog, folder, catalog_model(catalog).model_id)
            sface = sface_descriptors(catalog, faces.face_ids)
        dlib = unit(faces.vectors.astype(np.float64))
        sf = unit(sface.astype(np.float64))
        candidates = {"dlib ResNet": dlib, "SFace": sf}
        for w in args.weights:
            candidates[f"concat, SFace weight {w:g}"] = unit(np.hstack([dlib, w * sf]))
        for label, vectors in candidates.items():
            val = val_at_far(vectors.astype(np.float32), faces.labels)
            print(f"| {name} | {len(faces)} | {label} | {val[1e-3][0]:.4f} | {val[1e-2][0]:.4f} |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
