"""End-to-end scan benchmark on the labelled development sets, against face_recognition's pipeline.

In one run, on the same photos:
  * faceclust's scan at its defaults (and with --exact, --thorough, --detector hog): photos/s,
    share of photos with at least one face, where the time goes (decode, detect, landmarks,
    embed, SQL);
  * a second scan of the same folders (nothing is decoded again);
  * a scan killed half-way (SIGKILL) and restarted, compared face by face with an uninterrupted one;
  * the pipeline face_recognition runs (full decode, 1600 px cap, dlib HOG upsampled once, 5-point
    landmarks, dlib descriptors) on a sample: images/s and recall;
  * dlib's CNN detector at face_recognition's settings (cap 1600 px, upsampled once when the image
    is <= 800 px) on a sample: recall of photos with at least one face, and, on the same sample,
    each faceclust variant's photo recall and how many of dlib's faces it finds (IoU >= 0.5);
  * on the whole set, each variant's faces against the --exact scan's (dlib's rectangles).

    .venv/bin/python benchmarks/bench_scan.py [--shared-data ../shared/data] [--sample 150]
        [--variants default exact thorough hog]
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


def big_copies(folder: Path, count: int, size: tuple[int, int], out: Path) -> Path:
    """``count`` photos of ``folder`` (seeded) enlarged to ``size`` as JPEG q90 in ``out``: the
    size of a phone photo (the development sets are small web photos). Written under the
    benchmark's temporary folder, never into the project."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    chosen = sorted(random.Random(1).sample(photos_of(folder), count))
    for i, path in enumerate(chosen):
        target = out / path.parent.name / f"{i:04d}.jpg"
        target.parent.mkdir(exist_ok=True)
        Image.open(path).convert("RGB").resize(size, Image.Resampling.BICUBIC).save(target, quality=90)
    return out


def photos_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.jpg"))


def faceclust_scan(catalog: Path, roots: list[Path], *extra: str) -> dict:
    cmd = [sys.executable, "-m", "faceclust", "scan", *map(str, roots), "--catalog", str(catalog), "--json", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


VARIANTS = {"default": [], "exact": ["--exact"], "thorough": ["--thorough"], "hog": ["--detector", "hog"]}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (left, top, right, bottom; right/bottom exclusive)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    inter = w * h
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def matched(reference: dict[str, list], found: dict[str, list], paths=None) -> dict:
    """How many reference faces have a found face at IoU >= 0.5 (one to one, greedy)."""
    keys = list(reference) if paths is None else paths
    hits = total = extra = 0
    for key in keys:
        ref, got = reference.get(key, []), found.get(key, [])
        total += len(ref)
        if ref and got:
            iou = iou_matrix(ref, got)
            pairs = 0
            while iou.size and iou.max() >= 0.5:
                i, j = np.unravel_index(iou.argmax(), iou.shape)
                iou[i, :], iou[:, j] = -1, -1
                pairs += 1
            hits += pairs
            extra += len(got) - pairs
        else:
            extra += len(got)
    return {"reference_faces": total, "found": hits, "extra": extra}


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
        full = np.asarray(Image.open(path).convert("RGB"))
        img = cap_1600(full)
        upsample = 1 if max(img.shape[:2]) <= 800 else 0
        back = full.shape[1] / img.shape[1]
        found[os.path.abspath(path)] = [
            tuple(v * back for v in (d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1))
            for d in cnn(img, upsample)]
    seconds = time.perf_counter() - start
    return {"photos": len(paths), "seconds": seconds, "recall": float(np.mean([bool(v) for v in found.values()])),
            "found": found}


def run_set(name: str, folder: Path, sample: int, workdir: Path, kill: bool, variants=("default", "hog")) -> dict:
    paths = photos_of(folder)
    result: dict = {"set": name, "photos": len(paths), "variants": {}}
    for variant in variants:
        catalog = workdir / f"{name}-{variant}.sqlite"
        summary = faceclust_scan(catalog, [folder], *VARIANTS[variant])
        r = {k: summary[k] for k in ("photos_seen", "new", "errors", "faces_found", "photos_with_faces",
                                     "seconds", "timings")}
        r["recall"] = summary["photos_with_faces"] / max(1, summary["photos_seen"])
        r["photos_per_second"] = summary["new"] / summary["seconds"]
        result["variants"][variant] = r
        if variant == "default":
            t = time.perf_counter()
            again = faceclust_scan(catalog, [folder])
            result["second_scan"] = {"seconds": time.perf_counter() - t, "unchanged": again["unchanged"],
                                     "new": again["new"], "changed": again["changed"]}
            if kill:
                result["killed"] = killed_and_resumed([folder], catalog, workdir,
                                                      kill_after=summary["seconds"] / 2 + 3)
    faces = {v: catalog_faces(workdir / f"{name}-{v}.sqlite") for v in variants}
    if "exact" in faces:
        with_face = {v: {k for k, boxes in faces[v].items() if boxes} for v in variants}
        for v in variants:
            result["variants"][v]["against_exact"] = matched(faces["exact"], faces[v])
            result["variants"][v]["photos_missed_vs_exact"] = len(with_face["exact"] - with_face[v])
    rng = random.Random(0)
    chosen = sorted(rng.sample(paths, min(sample, len(paths))))
    result["face_recognition"] = face_recognition_pipeline(chosen)
    cnn = dlib_cnn_recall(chosen)
    keys = [os.path.abspath(p) for p in chosen]
    result["dlib_cnn_sample"] = {"photos": cnn["photos"], "seconds": cnn["seconds"], "recall": cnn["recall"]}
    for v in variants:
        result["variants"][v]["sample_recall"] = float(np.mean([bool(faces[v].get(k)) for k in keys]))
        result["variants"][v]["sample_against_dlib"] = matched(cnn["found"], faces[v], keys)
    return result


def markdown(results: list[dict], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             "| set | photos | pipeline | photos/s | recall (≥ 1 face) | faces | dlib CNN's faces found "
             "(sample) | exact's faces found (all) | time split (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name, d in r["variants"].items():
            split = ", ".join(f"{k} {v:.0f}" for k, v in sorted(d["timings"].items()))
            s = d["sample_against_dlib"]
            e = d.get("against_exact")
            exact = (f"{e['found']}/{e['reference_faces']} (+{e['extra']}); photos missed "
                     f"{d['photos_missed_vs_exact']}") if e else ""
            lines.append(f"| {r['set']} | {d['photos_seen']} | faceclust {name} | {d['photos_per_second']:.1f} | "
                         f"{d['recall']:.4f} (sample {d['sample_recall']:.4f}) | {d['faces_found']} | "
                         f"{s['found']}/{s['reference_faces']} (+{s['extra']}) | {exact} | {split} |")
        fr = r["face_recognition"]
        lines.append(f"| {r['set']} | {fr['photos']} (sample) | face_recognition (HOG ×2, dlib) | "
                     f"{fr['photos_per_second']:.2f} | {fr['recall']:.4f} | {fr['faces']} | | | |")
        c = r["dlib_cnn_sample"]
        lines.append(f"| {r['set']} | {c['photos']} (sample) | dlib CNN at fr settings | "
                     f"{c['photos'] / c['seconds']:.2f} | {c['recall']:.4f} | | | | |")
    lines.append("")
    for r in results:
        fr = r["face_recognition"]["photos_per_second"]
        ratios = ", ".join(f"{name} {d['photos_per_second'] / fr:.1f}×" for name, d in r["variants"].items())
        lines.append(f"- {r['set']}: images/s against face_recognition's: {ratios}")
        if "second_scan" in r:
            s = r["second_scan"]
            lines.append(f"- {r['set']}: second scan {s['seconds']:.1f} s ({s['unchanged']} unchanged, "
                         f"{s['new']} new, {s['changed']} changed)")
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
    parser.add_argument("--big", type=int, default=0, metavar="N",
                        help="also scan N celeba_train photos enlarged to 2048x1536 (phone-photo size)")
    parser.add_argument("--variants", nargs="+", default=["default", "exact", "thorough", "hog"],
                        choices=sorted(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: args.shared_data / name for name in args.sets}
        if args.big:
            folders["celeba_train_2048"] = big_copies(args.shared_data / "celeba_train", args.big, (2048, 1536),
                                                      Path(tmp) / "celeba_train_2048")
        for name, folder in folders.items():
            results.append(run_set(name, folder, args.sample, Path(tmp), not args.no_kill and name in args.sets,
                                   args.variants))
            print(json.dumps({k: v for k, v in results[-1].items()}, default=str), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(markdown(results, "python benchmarks/bench_scan.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
