"""Catalogs of the labelled development sets, with every descriptor the benchmarks compare.

    .venv/bin/python benchmarks/dev_catalogs.py [--sets lfw_dev celeba_train celeb25_web] [--cache DIR] [--detector NAME]

Each set of ``../shared/data`` is scanned once with the default detector and dlib's ResNet, then
the same faces are embedded again (no second detection) with the fused descriptor, so every
benchmark compares descriptors and clusterings on exactly the same faces. A second run reuses
the catalogs in ``--cache``. Other benchmarks import :func:`dev_catalog`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETS = ("lfw_dev", "celeba_train", "celeb25_web")
SHARED = ROOT.parent / "shared" / "data"
CACHE = Path("/tmp/faceclust-dev-catalogs")
EMBEDDERS = ("dlib-resnet", "fused")  # scanned in this order; the last is the catalog's model


def dev_catalog(name: str, shared: Path = SHARED, cache: Path = CACHE, log=print, detector: str | None = None) -> Path:
    """The catalog of one development set holding an embedding from each of EMBEDDERS per face
    (faces found by ``detector``, default: the default detector)."""
    from faceclust.faces.detect import DetectOptions
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}.sqlite"
    for embedder in EMBEDDERS:
        # A scan of an up-to-date catalog reads nothing; one made with other detection settings
        # (a changed default) is detected again, so the catalogs always hold today's faces.
        start = time.perf_counter()
        detect = DetectOptions() if detector is None else DetectOptions(detector=detector)
        summary = scan_library(path, [shared / name], ScanOptions(embedder=embedder, update_index=False, detect=detect))
        log(f"{name}: {embedder}: {summary} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--shared-data", type=Path, default=SHARED)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--detector", default=None, help="a registered detector (default: the default's)")
    args = parser.parse_args()
    for name in args.sets:
        print(dev_catalog(name, args.shared_data, args.cache, detector=args.detector))


if __name__ == "__main__":
    main()
