"""Switching a catalog's detector keeps its people: a copy of a catalog is clustered, scanned
again with another detector (every photo detected again, same bytes), and each face that had a
person is looked up at its place among the new faces.

    .venv/bin/python benchmarks/bench_switch.py --catalog /tmp/devcat-mmod/celeb25_web.sqlite --detector yunet

The catalog (made by ``benchmarks/dev_catalogs.py --detector mmod``) is copied to a temporary
folder; the commands run are the CLI's own (``faceclust cluster``, ``faceclust scan ROOT
--detector NAME``). "kept": the new face at the old face's place (box IoU >= 0.3) has the same
person; "lost": it has nobody; "other": another person; "no face there": no new face overlaps.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def faces(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("""SELECT p.path, f.left, f.top, f.right, f.bottom, a.person_id FROM faces f
                             JOIN photos p ON p.id = f.photo_id LEFT JOIN assignments a ON a.face_id = f.id
                             WHERE p.status = 'ok'""").fetchall()
    finally:
        db.close()


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--detector", default="yunet")
    args = parser.parse_args()
    faceclust = [sys.executable, "-m", "faceclust"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "c.sqlite"
        source = sqlite3.connect(args.catalog)
        target = sqlite3.connect(work)
        source.backup(target)  # consistent, WAL included
        source.close()
        target.close()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run([*faceclust, "cluster", "--catalog", str(work), "--quiet"], check=True, env=env)
        before = faces(work)
        root = os.path.commonpath(sorted({row[0] for row in before}))
        subprocess.run([*faceclust, "scan", root, "--catalog", str(work), "--detector", args.detector, "--quiet",
                        "--no-index"], check=True, env=env)
        after: dict[str, list[tuple]] = {}
        for row in faces(work):
            after.setdefault(row[0], []).append(row)
    counts = dict.fromkeys(("kept", "lost", "other", "no face there"), 0)
    for path, *box, person in before:
        if person is None:
            continue
        overlap, new_person = max(((iou(box, r[1:5]), r[5]) for r in after.get(path, [])),
                                  default=(0.0, None), key=lambda c: c[0])
        key = ("no face there" if overlap < 0.3 else "kept" if new_person == person
               else "lost" if new_person is None else "other")
        counts[key] += 1
    total = sum(counts.values())
    print(f"{args.catalog.name} scanned again with {args.detector}: {total} faces had a person; "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
