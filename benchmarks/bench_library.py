"""A NAS-size library end to end (issue 14, step 4): every command as a whole process on a
library made by benchmarks/make_library.py, with its wall time and peak RSS (os.wait4).

    .venv/bin/python benchmarks/make_library.py --out /tmp/library --photos 100000 --distinct 25000
    .venv/bin/python benchmarks/bench_library.py --library /tmp/library --work /tmp/library-work

Steps: a full scan (its plain progress lines are timed: the ETA each one gave against when the
scan really ended), cluster, status, people, albums, report; an unchanged rescan; then 1% of
the photos are changed (re-encoded in place: new bytes, new file time), rescanned, clustered
and albums written again; and albums once more with nothing changed. The library is changed
only in that step and only under --library (a benchmark library, never a user's photos).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VENV_BIN = Path(sys.executable).parent


def run(args: list[str], log: list, name: str, env: dict, eta: bool = False) -> float:
    """Run ``faceclust args``; record (name, seconds, peak RSS MB, ETA error notes)."""
    started = time.perf_counter()
    process = subprocess.Popen([str(VENV_BIN / "faceclust"), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    import threading

    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()), daemon=True)
    reader.start()  # stdout is drained meanwhile: a long listing must not fill the pipe and stall
    etas = []  # (seconds since start, done, total, predicted seconds left)
    for line in process.stderr:
        m = re.match(r"scan: (\d+)/(\d+) photos.*ETA (?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", line)
        if eta and m:
            h, mi, s = (int(v) if v else 0 for v in m.groups()[2:])
            etas.append((time.perf_counter() - started, int(m[1]), int(m[2]), h * 3600 + mi * 60 + s))
    reader.join()
    out = "".join(chunks)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        sys.exit(f"faceclust {' '.join(args)} failed ({status}):\n{out[-2000:]}")
    notes = ""
    if etas:
        # The scan ends after the last photo; ETA is for the photos, so compare with the time
        # the final progress line came (the photos' end), not the process's.
        end = etas[-1][0] if etas[-1][1] == etas[-1][2] else seconds
        picks = []
        for share in (0.1, 0.25, 0.5, 0.75):
            at = next((e for e in etas if e[1] >= share * e[2]), None)
            if at:
                actual = end - at[0]
                picks.append(f"at {share:.0%}: said {at[3]:.0f} s, took {actual:.0f} s")
        notes = "; ".join(picks)
    log.append((name, seconds, usage.ru_maxrss / 1024, notes))
    print(f"{name}: {seconds:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB {notes}", flush=True)
    return seconds


def change_photos(library: Path, share: float, seed: int) -> int:
    """Re-encode ``share`` of the library's photos in place (a slight turn: new bytes, new faces)."""
    from PIL import Image

    photos = sorted(library.rglob("*.jpg"))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(photos), size=max(1, int(share * len(photos))), replace=False)
    for i in chosen:
        path = photos[i]
        with Image.open(path) as image:
            exif = image.info.get("exif", b"")
            image = image.convert("RGB").rotate(0.5, resample=Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=88, exif=exif)
        stat = path.stat()
        path.write_bytes(buffer.getvalue())
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="catalog, albums and report go here")
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--catalog-ready", action="store_true",
                        help="the full scan was done before into --work's catalog: start after it")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    catalog = args.work / "catalog.sqlite"
    if catalog.exists() != args.catalog_ready:
        sys.exit(f"{catalog} {'exists: give a new --work folder' if catalog.exists() else 'is missing'}")
    env = dict(os.environ, FACECLUST_CACHE=str(args.work / "cache"))
    files = sum(1 for p in args.library.rglob("*.jpg"))
    print(f"{files} photos in {args.library}", flush=True)
    log: list = []
    c = ["--catalog", str(catalog)]
    albums, report = str(args.work / "albums"), str(args.work / "report.html")
    if not args.catalog_ready:
        run(["scan", str(args.library), *c], log, "scan (full)", env, eta=True)
        run(["cluster", *c], log, "cluster", env)
    run(["status", *c], log, "status", env)
    run(["people", *c], log, "people", env)
    run(["albums", albums, *c], log, "albums (first)", env)
    run(["report", report, *c], log, "report", env)
    run(["scan", str(args.library), *c], log, "scan (nothing changed)", env)
    changed = change_photos(args.library, args.change, seed=1)
    print(f"changed {changed} photos", flush=True)
    run(["scan", str(args.library), *c], log, f"scan ({changed} photos changed)", env, eta=True)
    run(["cluster", *c], log, f"cluster (after {changed} changed)", env)
    run(["albums", albums, *c], log, f"albums (after {changed} changed)", env)
    run(["albums", albums, *c], log, "albums (nothing changed)", env)
    print("\n| step | wall s | peak RSS MB | notes |\n|---|---|---|---|")
    for name, seconds, rss, notes in log:
        print(f"| {name} | {seconds:.1f} | {rss:.0f} | {notes} |")


if __name__ == "__main__":
    main()
