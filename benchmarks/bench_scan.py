"""End-to-end scan benchmark on the labelled development sets, against face_recognition's pipeline.

In one run, on the same photos:
  * faceclust's scan at its defaults (and with --detector hog): photos/s, share of photos with at
    least one face, where the time goes (decode, detect, landmarks, embed, SQL);
  * a second scan of the same folders (nothing is decoded again);
  * a scan killed half-way (SIGKILL) and restarted, compared face by face with an uninterrupted one;
  * the pipeline face_recognition runs (full decode, 1600 px cap, dlib HOG upsampled once, 5-point
    landmarks, dlib descriptors) on a sample: images/s and recall;
  * dlib's CNN detector at face_recognition's settings (cap 1600 px, upsampled once when the image
    is <= 800 px) on a sample: recall of photos with at least one face, and our recall on the same
    sample.

    .venv/bin/python benchmarks/bench_scan.py [--shared-data ../shared/data] [--sample 150]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def photos_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.jpg"))


def faceclust_scan(catalog: Path, roots: list[Path], *extra: str) -> dict:
    cmd = [sys.executable, "-m", "faceclust", "scan", *map(str, roots), "--catalog", str(catalog), "--json", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def catalog_faces(catalog: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(catalog)
    rows = db.execute("SELECT p.path, f.left, f.top, f.right, f.bottom FROM faces f JOIN photos p ON p.id=f.photo_id "
                      "WHERE p.status='ok' ORDER BY p.path, f.left, f.top").fetchall()
    out: dict[str, list[tuple]] = {}
    for path, *box in rows:
        out.setdefault(path, []).append(tuple(round(v, 1) for v in box))
    return out


def killed_and_resumed(roots: list[Path], reference: Path, workdir: Path, kill_after: float) -> dict:
    catalog = workdir / f"{reference.stem}-killed.sqlite"
    cmd = [sys.executable, "-m", "faceclust", "scan", *map(str, roots), "--catalog", str(catalog), "--quiet"]
    proc = subprocess.Popen(cmd)
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(catalog)
    committed = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    db.close()
    resumed = faceclust_scan(catalog, roots)
    a, b = catalog_faces(reference), catalog_faces(catalog)
    return {"photos_committed_before_kill": committed, "resumed_new": resumed["new"],
            "same_faces_as_uninterrupted": a == b, "faces": sum(len(v) for v in b.values())}


def cap_1600(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= 1600:
        return img
    s = 1600 / max(h, w)
    return np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR))


def face_recognition_pipeline(paths: list[Path]) -> dict:
    """face_recognition's encode path: full decode, HOG upsampled once, 5-point, descriptors."""
    import dlib
    from PIL import Image

    from faceclust.models.files import EMBEDDER_FILE, LANDMARKS_FILE, model_path

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_path(LANDMARKS_FILE)))
    encoder = dlib.face_recognition_model_v1(str(model_path(EMBEDDER_FILE)))
    with_face = faces = 0
    start = time.perf_counter()
    for path in paths:
        img = cap_1600(np.asarray(Image.open(path).convert("RGB")))
        rects = hog(img, 1)
        for rect in rects:
            encoder.compute_face_descriptor(img, predictor(img, rect), 1)
        with_face += bool(rects)
        faces += len(rects)
    seconds = time.perf_counter() - start
    return {"photos": len(paths), "seconds": seconds, "photos_per_second": len(paths) / seconds,
            "recall": with_face / len(paths), "faces": faces}


def dlib_cnn_recall(paths: list[Path]) -> dict:
    import dlib
    from PIL import Image

    from faceclust.models.files import DETECTOR_FILE, model_path

    cnn = dlib.cnn_face_detection_model_v1(str(model_path(DETECTOR_FILE)))
    found = {}
    start = time.perf_counter()
    for path in paths:
        img = cap_1600(np.asarray(Image.open(path).convert("RGB")))
        upsample = 1 if max(img.shape[:2]) <= 800 else 0
        found[str(path)] = len(cnn(img, upsample))
    seconds = time.perf_counter() - start
    return {"photos": len(paths), "seconds": seconds, "recall": np.mean([v > 0 for v in found.values()]),
            "found": found}


def run_set(name: str, folder: Path, sample: int, workdir: Path, kill: bool, detectors=("mmod", "hog")) -> dict:
    paths = photos_of(folder)
    result: dict = {"set": name, "photos": len(paths)}
    for detector in detectors:
        catalog = workdir / f"{name}-{detector}.sqlite"
        summary = faceclust_scan(catalog, [folder], "--detector", detector)
        result[detector] = {k: summary[k] for k in ("photos_seen", "new", "errors", "faces_found",
                                                    "photos_with_faces", "seconds", "timings")}
        result[detector]["recall"] = summary["photos_with_faces"] / max(1, summary["photos_seen"])
        result[detector]["photos_per_second"] = summary["new"] / summary["seconds"]
        if detector == "mmod":
            t = time.perf_counter()
            again = faceclust_scan(catalog, [folder])
            result["second_scan"] = {"seconds": time.perf_counter() - t, "unchanged": again["unchanged"],
                                     "new": again["new"], "changed": again["changed"]}
            if kill:
                result["killed"] = killed_and_resumed([folder], catalog, workdir,
                                                      kill_after=summary["seconds"] / 2 + 3)
    rng = random.Random(0)
    chosen = sorted(rng.sample(paths, min(sample, len(paths))))
    result["face_recognition"] = face_recognition_pipeline(chosen)
    cnn = dlib_cnn_recall(chosen)
    faces = catalog_faces(workdir / f"{name}-mmod.sqlite")
    ours = np.mean([bool(faces.get(os.path.abspath(p))) for p in chosen])
    result["dlib_cnn_sample"] = {"photos": cnn["photos"], "seconds": cnn["seconds"], "recall": cnn["recall"],
                                 "faceclust_recall_same_sample": ours}
    return result


def markdown(results: list[dict], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             "| set | photos | detector | photos/s | recall (≥1 face) | faces | time split (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for det in [d for d in ("mmod", "hog") if d in r]:
            d = r[det]
            split = ", ".join(f"{k} {v:.0f}" for k, v in sorted(d["timings"].items()))
            lines.append(f"| {r['set']} | {d['photos_seen']} | faceclust {det} | {d['photos_per_second']:.1f} | "
                         f"{d['recall']:.4f} | {d['faces_found']} | {split} |")
        fr = r["face_recognition"]
        lines.append(f"| {r['set']} | {fr['photos']} (sample) | face_recognition (HOG ×2, dlib) | "
                     f"{fr['photos_per_second']:.2f} | {fr['recall']:.4f} | {fr['faces']} | |")
        c = r["dlib_cnn_sample"]
        lines.append(f"| {r['set']} | {c['photos']} (sample) | dlib CNN at fr settings | "
                     f"{c['photos'] / c['seconds']:.2f} | {c['recall']:.4f} (ours on it: "
                     f"{c['faceclust_recall_same_sample']:.4f}) | | |")
    lines.append("")
    for r in results:
        ratio = r["mmod"]["photos_per_second"] / r["face_recognition"]["photos_per_second"]
        s = r["second_scan"]
        lines.append(f"- {r['set']}: faceclust mmod is {ratio:.1f}× face_recognition's images/s; "
                     f"second scan {s['seconds']:.1f} s ({s['unchanged']} unchanged, {s['new']} new, "
                     f"{s['changed']} changed)")
        if "killed" in r:
            k = r["killed"]
            lines.append(f"- {r['set']}: killed after {k['photos_committed_before_kill']} photos committed, "
                         f"resumed {k['resumed_new']} new; same faces as uninterrupted: {k['same_faces_as_uninterrupted']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", nargs="+", default=["lfw_dev", "celeba_train"])
    parser.add_argument("--sample", type=int, default=150, help="photos for the dlib references")
    parser.add_argument("--no-kill", action="store_true")
    parser.add_argument("--detectors", nargs="+", default=["mmod", "hog"])
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            results.append(run_set(name, args.shared_data / name, args.sample, Path(tmp), not args.no_kill,
                                   args.detectors))
            print(json.dumps({k: v for k, v in results[-1].items()}, default=str), file=sys.stderr, flush=True)
    if args.json:
        for r in results:
            r["dlib_cnn_sample"].pop("found", None)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(markdown(results, "python benchmarks/bench_scan.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
