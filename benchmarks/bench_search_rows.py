"""What a search pays to read the catalog rows of its matches, at 100k faces: every row (as
searches did before ``Catalog.faces_by_id``) against only the rows the index returns.

    python benchmarks/bench_search_rows.py [--faces 100000] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from faceclust.catalog import Catalog
    from faceclust.catalog.index import open_index
    from faceclust.find.search import FaceRows, match_vectors
    from faceclust.records import FaceArrays, PhotoResult

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    n = args.faces
    rng = np.random.default_rng(0)
    vectors = np.repeat(rng.normal(size=(n // 10 + 1, 128)), 10, 0)[:n] + rng.normal(scale=0.3, size=(n, 128))
    vectors = (1.4 * vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    path = args.workdir / f"search_rows_{n}.sqlite"
    if not path.exists():
        with Catalog(path) as cat:
            results = []
            for start in range(0, n, 4):
                chunk = vectors[start:start + 4]
                boxes = np.array([[10 + 100 * j, 10, 90 + 100 * j, 90] for j in range(len(chunk))], np.float32)
                results.append(PhotoResult("faces", f"/synthetic/{start:07d}.jpg", 1, 1, f"h{start}", 800, 600,
                                           FaceArrays(boxes, np.ones(len(chunk), np.float32),
                                                      np.zeros((len(chunk), 5, 2), np.float32), chunk)))
            for start in range(0, len(results), 2000):
                cat.write_results(results[start:start + 2000], "synthetic:1", "det", None)
    with Catalog(path) as cat:
        index = open_index(cat, "synthetic:1")
        queries = vectors[rng.choice(n, 20, replace=False)] + rng.normal(scale=0.02, size=(20, 128)).astype(np.float32)
        every, matched = [], []
        for q in queries:
            t = time.perf_counter()
            # What FaceRows did before: every face's row, box rounded, and the people's names.
            {int(r[1]): (r[2], [round(float(v), 1) for v in r[3:7]], r[0]) for r in cat.person_faces()}
            {p["id"]: p["name"] for p in cat.people()}
            every.append(time.perf_counter() - t)
            t = time.perf_counter()
            match_vectors(index, FaceRows(cat), q[None], 10, 0.6)
            matched.append(time.perf_counter() - t)
    print(f"{n} faces: reading every face row {1000 * np.median(every):.1f} ms (median of 20); "
          f"rows of the index's matches only, with the match itself, {1000 * np.median(matched):.2f} ms")


if __name__ == "__main__":
    main()
