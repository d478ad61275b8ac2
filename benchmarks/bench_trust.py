"""What the safety work costs a scan: this checkout against an earlier commit, in one run.

The safety changes of issue 10 sit on the scan's hot path: every photo is read on a reader
thread (so that a hung share cannot block the scan), paths go through a lossless text
factory, writes through a lock. This times a full scan (real models, default options) of the
same photos with this checkout and with ``--ref`` (checked out into a temporary git worktree),
alternating, in fresh catalogs, and prints the ratio of the medians; a re-scan of the
unchanged library too.

    .venv/bin/python benchmarks/bench_trust.py --ref 76bcbc6 --photos 600 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(code_dir: Path, photos: Path, catalog: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "faceclust", "scan", str(photos), "--catalog", str(catalog), "--quiet",
                    "--no-index"], check=True, env=env, cwd=code_dir, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="76bcbc6", help="the commit to compare with (before issue 10)")
    parser.add_argument("--set", default=str(ROOT.parent / "shared" / "data" / "lfw_dev"))
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        sources = sorted(Path(args.set).rglob("*.jpg"))[: args.photos]
        for i, source in enumerate(sources):  # links: the same bytes, read through the filesystem
            target = photos / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source, target)
        old = tmp / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.ref], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            times = {"this": [], "ref": [], "this rescan": [], "ref rescan": []}
            for r in range(args.rounds):
                for name, code in (("this", ROOT), ("ref", old)) if r % 2 == 0 else (("ref", old), ("this", ROOT)):
                    catalog = tmp / f"{name}-{r}.sqlite"
                    times[name].append(timed(code, photos, catalog))
                    times[f"{name} rescan"].append(timed(code, photos, catalog))
                    for extra in tmp.glob(f"{name}-{r}.sqlite*"):
                        extra.unlink()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
            shutil.rmtree(old, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{len(sources)} photos of {Path(args.set).name}, {args.rounds} alternating rounds, median seconds "
          "(process start-up and model loading included)")
    print("| scan | this checkout | " + args.ref + " | ratio (this / ref) |")
    print("|---|---|---|---|")
    for kind in ("", " rescan"):
        this, ref = med["this" + kind], med["ref" + kind]
        label = "full scan" if not kind else "re-scan, nothing changed"
        print(f"| {label} | {this:.2f} s ({len(sources) / this:.1f} photos/s) | {ref:.2f} s | {this / ref:.3f} |")


if __name__ == "__main__":
    main()
