"""Photo formats (issue 15): faces found in RAW (DNG) files against the JPEGs of the same
shots, face tags imported from XMP sidecars, and what reading sidecars adds to a scan.

    .venv/bin/python benchmarks/bench_formats.py --set celeba_train --photos 120

1. A library of N development photos (JPEG) is scanned; for every face found, a sidecar in
   MWG form is made with exiftool (the region a fifth larger than the box, as other programs
   draw it, named by the photo's identity).
2. The same photos with their sidecars are scanned into a new catalog with tag import on and
   off (``--no-import``), alternately, twice each: the import's cost, and how many tags named a
   face. Every tag names its photo's person, so a tag on the wrong face is a wrong name: counted.
3. A DNG is made from each photo (tests/test_raw.py's writer) and scanned: photos with a face,
   faces, and per photo the number of faces against the JPEG's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
FACECLUST = str(Path(sys.executable).parent / "faceclust")


def scan(library: Path, catalog: Path, *more: str) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run([FACECLUST, "scan", str(library), "--catalog", str(catalog), "--json", "--no-index", *more],
                         capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if out.returncode not in (0, 3):
        sys.exit(out.stderr[-2000:])
    return seconds, json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="celeba_train")
    parser.add_argument("--photos", type=int, default=120)
    args = parser.parse_args()
    from PIL import Image
    from test_raw import write_dng

    from faceclust.catalog import Catalog

    exiftool = shutil.which("exiftool")
    if exiftool is None:
        sys.exit("exiftool is needed (libimage-exiftool-perl)")
    sources = sorted((ROOT.parent / "shared" / "data" / args.set).rglob("*.jpg"))[::7][: args.photos]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jpegs, raws = tmp / "jpeg", tmp / "raw"
        jpegs.mkdir()
        raws.mkdir()
        identity = {}
        for i, source in enumerate(sources):
            name = f"{i:04d}.jpg"
            shutil.copy(source, jpegs / name)
            identity[name] = source.parent.name.replace("_", " ")
            with Image.open(source) as im:
                write_dng(np.asarray(im.convert("RGB")), raws / f"{i:04d}.dng")
        first = tmp / "first.sqlite"
        base_seconds, base = scan(jpegs, first, "--no-import")
        with Catalog(first) as cat:
            rows = cat.db.execute("SELECT p.path, p.width, p.height, f.left, f.top, f.right, f.bottom FROM faces f "
                                  "JOIN photos p ON p.id = f.photo_id ORDER BY p.path, f.score DESC").fetchall()
            per_photo_jpeg = {}
            for path, *_ in rows:
                per_photo_jpeg[Path(path).stem] = per_photo_jpeg.get(Path(path).stem, 0) + 1
        tagged, made = set(), 0
        for path, w, h, left, top, right, bottom in rows:
            if path in tagged:
                continue  # the most confident face: the photo's person
            tagged.add(path)
            cx, cy = (left + right) / 2 / w, (top + bottom) / 2 / h
            bw, bh = 1.2 * (right - left) / w, 1.2 * (bottom - top) / h
            info = (f"-RegionInfo={{AppliedToDimensions={{W={w},H={h},Unit=pixel}},RegionList=[{{Area={{X={cx},"
                    f"Y={cy},W={bw},H={bh},Unit=normalized}},Name={identity[Path(path).name]},Type=Face}}]}}")
            subprocess.run([exiftool, "-q", "-o", path + ".xmp", info], check=True)
            made += 1
        runs: dict[str, list] = {"import": [], "no import": []}
        summaries = {}
        for r in range(4):
            kind = ("import", "no import")[r % 2]
            seconds, summary = scan(jpegs, tmp / f"c{r}.sqlite", *(("--no-import",) if kind == "no import" else ()))
            runs[kind].append(seconds)
            summaries[kind] = (summary, tmp / f"c{r}.sqlite")
        summary, catalog = summaries["import"]
        wrong = 0
        with Catalog(catalog) as cat:
            for face, (name, source) in cat.imported_faces().items():
                photo = cat.db.execute("SELECT p.path FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.id=?",
                                       (face,)).fetchone()[0]
                wrong += name != identity[Path(photo).name]
        raw_seconds, raw = scan(raws, tmp / "raw.sqlite", "--no-import")
        with Catalog(tmp / "raw.sqlite") as cat:
            per_photo_raw = {}
            for (path,) in cat.db.execute("SELECT p.path FROM faces f JOIN photos p ON p.id = f.photo_id"):
                per_photo_raw[Path(path).stem] = per_photo_raw.get(Path(path).stem, 0) + 1
    stems = [f"{i:04d}" for i in range(len(sources))]
    same = sum(per_photo_jpeg.get(s, 0) == per_photo_raw.get(s, 0) for s in stems)
    print(f"{len(sources)} photos of {args.set} (every 7th), 2 cores\n")
    print("| | photos with a face | faces | scan s |")
    print("|---|---|---|---|")
    print(f"| JPEG | {base['photos_with_faces']} | {base['faces_found']} | {base_seconds:.1f} |")
    print(f"| DNG of the same shots | {raw['photos_with_faces']} | {raw['faces_found']} | {raw_seconds:.1f} |")
    print(f"\nphotos whose DNG gave as many faces as the JPEG: {same} / {len(sources)}")
    imp, no = np.median(runs["import"]), np.median(runs["no import"])
    print(f"\nsidecars made: {made}; faces named from them: {summary['tags_imported']}; "
          f"tags on no face: {summary['tags_unmatched']}; named wrongly: {wrong}")
    print(f"scan with tag import {imp:.2f} s, without {no:.2f} s (median of 2 each): "
          f"{imp - no:+.2f} s, {100 * (imp / no - 1):+.1f}%")


if __name__ == "__main__":
    main()
