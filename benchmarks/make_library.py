"""Make a NAS-like photo library from the development sets (issue 14, step 4): N photos in
dated folders, as a phone and its backups leave them.

    .venv/bin/python benchmarks/make_library.py --out /tmp/library --photos 100000 --distinct 10000
    .venv/bin/python benchmarks/make_library.py --out /tmp/camera --photos 0 --big 300

* ``--distinct D`` photos are new files: a development photo, cropped a little (0-8% a side),
  resized to a long side of 200-400 px and saved as JPEG at quality 75-92, each with its own
  EXIF DateTimeOriginal (five years, in order), under ``YYYY/YYYY-MM-DD/IMG_nnnnnn.jpg``, the
  file time set to the capture time. Every one of them has to be detected.
* the other ``N - D`` are byte copies of those (backups of the same phone folders, under
  ``Backup/YYYY-MM-DD/``): a scan recognises them by content and copies their faces.
* ``--big M`` adds M phone-size photos (4032x3024, JPEG quality 92, a development photo
  enlarged) under ``Camera/YYYY-MM-DD/PXL_nnnn.jpg``, for throughput figures.

The sources are read from ../shared/data, never changed; the library goes to ``--out`` only.
It refuses to start when the estimated size would leave less than 10% of the disk free.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SETS = ("lfw_dev", "celeba_train", "celeb25_web")
START = datetime(2020, 1, 1, 8, 0, 0)
SPAN = timedelta(days=5 * 365)
SMALL_BYTES, BIG_BYTES = 25_000, 2_600_000  # measured means, for the disk check


def sources(data: Path) -> list[Path]:
    found = []
    for name in SETS:
        found += sorted(p for p in (data / name).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        sys.exit(f"no development photos under {data}")
    return found


def when(i: int, n: int) -> datetime:
    return START + SPAN * (i / max(1, n))


def _exif(taken: datetime) -> bytes:
    exif = Image.Exif()
    exif[0x8769] = {0x9003: taken.strftime("%Y:%m:%d %H:%M:%S")}  # Exif IFD: DateTimeOriginal
    return exif.tobytes()


def _save(image: Image.Image, path: Path, quality: int, taken: datetime) -> int:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=_exif(taken))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    stamp = taken.timestamp()
    os.utime(path, (stamp, stamp))
    return buffer.tell()


def small_photo(job: tuple) -> tuple[str, int]:
    i, source, out, seed, n = job
    rng = np.random.default_rng([seed, i])
    with Image.open(source) as image:
        image = image.convert("RGB")
    w, h = image.size
    left, top, right, bottom = rng.uniform(0, 0.08, 4)
    image = image.crop((int(left * w), int(top * h), w - int(right * w), h - int(bottom * h)))
    side = int(rng.integers(200, 401))
    scale = side / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.LANCZOS)
    taken = when(i, n)
    path = out / f"{taken:%Y}" / f"{taken:%Y-%m-%d}" / f"IMG_{i:06d}.jpg"
    return str(path), _save(image, path, int(rng.integers(75, 93)), taken)


def big_photo(job: tuple) -> tuple[str, int]:
    k, source, out, seed, n = job
    with Image.open(source) as image:
        image = image.convert("RGB")
    # Fill 4032x3024 around the photo's centre (a phone's landscape frame).
    scale = max(4032 / image.width, 3024 / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    x0, y0 = (image.width - 4032) // 2, (image.height - 3024) // 2
    image = image.crop((x0, y0, x0 + 4032, y0 + 3024))
    taken = when(k, n) + timedelta(hours=3)
    path = out / "Camera" / f"{taken:%Y-%m-%d}" / f"PXL_{k:04d}.jpg"
    return str(path), _save(image, path, 92, taken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=int, default=100_000, help="small photos in all (new + copies)")
    parser.add_argument("--distinct", type=int, default=None, help="of which new files (default: all)")
    parser.add_argument("--big", type=int, default=0, help="4032x3024 photos to add")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    distinct = args.photos if args.distinct is None else min(args.distinct, args.photos)
    if args.photos and distinct < 1:
        sys.exit("--distinct must be at least 1")
    estimate = args.photos * SMALL_BYTES + args.big * BIG_BYTES
    args.out.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(args.out)
    if disk.free - estimate < 0.1 * disk.total:
        sys.exit(f"the library would take about {estimate / 1e9:.1f} GB and leave less than 10% of the disk free")
    found = sources(args.data)
    started = time.perf_counter()
    paths, total = [], 0
    with Pool(args.workers) as pool:
        jobs = [(i, found[i % len(found)], args.out, args.seed, distinct) for i in range(distinct)]
        for path, size in pool.imap(small_photo, jobs, chunksize=64):
            paths.append(path)
            total += size
        big = [(k, found[(k * 7919) % len(found)], args.out, args.seed, args.big) for k in range(args.big)]
        for _path, size in pool.imap(big_photo, big, chunksize=4):
            total += size
    for j in range(distinct, args.photos):
        original = Path(paths[j % distinct])
        taken = when(j % distinct, distinct)
        copy = args.out / "Backup" / f"{taken:%Y-%m-%d}" / f"IMG_{j:06d}.jpg"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(original, copy)
        total += original.stat().st_size
    print(f"{args.photos} small photos ({distinct} new, {args.photos - distinct} copies) and {args.big} "
          f"of 4032x3024 in {args.out}: {total / 1e9:.2f} GB, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
