"""The FAISS index over the catalog's embeddings: the only module that imports faiss.

Exact (flat L2) search for small libraries, an inverted-file index when large. The index is
saved next to the catalog (``CATALOG.faiss`` plus ``CATALOG.faiss.json``) and rebuilt when
the catalog's faces or model changed since it was built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceclust.errors import IndexError_

EXACT_LIMIT = 50_000  # below this, exact search is fast enough and has perfect recall


@dataclass
class Neighbours:
    """k-NN results: Euclidean distances (not squared), face ids (-1 where fewer than k)."""

    distances: np.ndarray  # float32 (q, k)
    face_ids: np.ndarray  # int64 (q, k)


def index_paths(catalog_path: Path) -> tuple[Path, Path]:
    catalog_path = Path(catalog_path)
    return catalog_path.with_name(catalog_path.name + ".faiss"), catalog_path.with_name(catalog_path.name + ".faiss.json")


class FaceIndex:
    def __init__(self, index, kind: str, fingerprint: str, count: int) -> None:
        self._index = index
        self.kind = kind
        self.fingerprint = fingerprint
        self.count = count

    @classmethod
    def build(cls, face_ids: np.ndarray, vectors: np.ndarray, fingerprint: str,
              exact_limit: int = EXACT_LIMIT) -> "FaceIndex":
        import faiss

        from faceclust.cpu import apply_to_faiss

        apply_to_faiss()

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n = len(face_ids)
        dim = vectors.shape[1] if n else 128
        if n <= exact_limit:
            index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
            kind = "flat"
        else:
            # ~4·sqrt(n) lists; probing 1/16 of them keeps recall@10 high on face embeddings.
            nlist = int(4 * np.sqrt(n))
            quantizer = faiss.IndexFlatL2(dim)
            ivf = faiss.IndexIVFFlat(quantizer, dim, nlist)
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(n, size=min(n, nlist * 64), replace=False)]
            ivf.train(sample)
            ivf.nprobe = max(8, nlist // 16)
            index = faiss.IndexIDMap2(ivf)
            kind = f"ivf{nlist}"
        if n:
            index.add_with_ids(vectors, np.ascontiguousarray(face_ids, dtype=np.int64))
        return cls(index, kind, fingerprint, n)

    def search(self, queries: np.ndarray, k: int = 10) -> Neighbours:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.count == 0 or len(queries) == 0:
            return Neighbours(np.full((len(queries), k), np.inf, np.float32),
                              np.full((len(queries), k), -1, np.int64))
        squared, ids = self._index.search(queries, k)
        distances = np.sqrt(np.maximum(squared, 0)).astype(np.float32)
        distances[ids < 0] = np.inf
        return Neighbours(distances, ids.astype(np.int64))

    def save(self, catalog_path: Path) -> None:
        import faiss

        from faceclust.cpu import apply_to_faiss

        apply_to_faiss()

        from faceclust.files import atomic_file, atomic_write

        index_file, meta_file = index_paths(catalog_path)
        # Serialised here and written through a fresh temporary file (never through a name a
        # symlink could have been planted at); the metadata last, so a kill in between leaves
        # an index whose fingerprint does not match and is rebuilt.
        with atomic_file(index_file) as handle:  # the serialised array as it is: no copy
            handle.write(memoryview(faiss.serialize_index(self._index)))
        atomic_write(meta_file, json.dumps({"fingerprint": self.fingerprint, "kind": self.kind, "count": self.count}))

    @classmethod
    def load(cls, catalog_path: Path) -> "FaceIndex | None":
        """The saved index, or None when there is none or it cannot be read."""
        import faiss

        from faceclust.cpu import apply_to_faiss

        apply_to_faiss()

        index_file, meta_file = index_paths(catalog_path)
        if not index_file.exists() or not meta_file.exists():
            return None
        try:
            meta = json.loads(meta_file.read_text())
            index = faiss.deserialize_index(np.fromfile(index_file, dtype=np.uint8))
        except (OSError, ValueError, RuntimeError):
            return None
        return cls(index, meta.get("kind", "?"), meta.get("fingerprint", ""), int(meta.get("count", 0)))


def open_index(catalog, model_id: str, *, save: bool = True) -> FaceIndex:
    """The index for ``catalog``'s embeddings from ``model_id``: loaded when fresh, else rebuilt
    (and saved next to the catalog)."""
    fingerprint = catalog.fingerprint(model_id)
    index = FaceIndex.load(catalog.path)
    if index is not None and index.fingerprint == fingerprint:
        return index
    face_ids, vectors = catalog.embeddings(model_id)
    try:
        index = FaceIndex.build(face_ids, vectors, fingerprint)
        if save:
            index.save(catalog.path)
    except (RuntimeError, OSError) as exc:
        raise IndexError_(f"cannot build the face index next to {catalog.path}: {exc}") from exc
    return index


def knn_graph(vectors: np.ndarray, k: int, *, exact_limit: int = EXACT_LIMIT,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: (Euclidean distances float32 (n, k), row indices
    int64 (n, k)), nearest first; ``inf`` and ``-1`` pad rows with fewer than ``k`` others.

    Exact (flat) search up to ``exact_limit`` rows, an inverted file above it searched list by
    list with matrix products (:mod:`faceclust.catalog.knn_blocks`), so the cost grows like
    n·sqrt(n) and no n×n matrix is ever built.
    """
    import faiss

    from faceclust.cpu import apply_to_faiss

    apply_to_faiss()

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be 2-D (n, d), got shape {x.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n, dim = x.shape
    if n == 0:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    want = min(k + 1, n)
    if n <= exact_limit:
        index = faiss.IndexFlatL2(dim)
        index.add(x)
        squared, found = index.search(x, want)
    else:
        from faceclust.catalog.knn_blocks import blocked_knn

        # ~4·sqrt(n) lists, each row probing 1/64 of them: ~99% of the 10 nearest at 100k
        # face-like vectors, ~96% at a million (benchmarks/bench_knn.py).
        nlist = min(n, int(4 * np.sqrt(n)))
        near = _probe_lists(x, nlist, max(16, nlist // 64), seed)
        squared, found = blocked_knn(x, near, want)
    found = found.astype(np.int64)
    # Drop each row itself. A duplicate may come back before it, so look for its index rather
    # than dropping column 0; where it is missing (a miss in the approximate index), drop the last.
    own = found == np.arange(n)[:, None]
    missing = ~own.any(axis=1)
    own[missing, want - 1] = True
    keep = ~own
    distances = np.sqrt(np.maximum(squared[keep], 0)).reshape(n, want - 1).astype(np.float32)
    neighbours = found[keep].reshape(n, want - 1)
    if want - 1 < k:
        pad = k - (want - 1)
        distances = np.hstack([distances, np.full((n, pad), np.inf, np.float32)])
        neighbours = np.hstack([neighbours, np.full((n, pad), -1, np.int64)])
    unfilled = neighbours < 0
    distances[unfilled] = np.inf
    return distances, neighbours


def _probe_lists(x: np.ndarray, nlist: int, probes: int, seed: int) -> np.ndarray:
    """Each row's ``probes`` nearest list centres (int32 (n, probes), its own list first).

    Centres by k-means (FAISS) on a sample, then every list holding more than twice the mean
    is cut by a k-means of its own into lists of about the mean size: a person with
    thousands of faces is one dense list otherwise, and since its rows also probe it, the
    work of such a list grows with the square of its size (balanced, the work halves at a
    million faces, at the same recall).
    """
    import faiss

    n, dim = x.shape
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, nlist * 40), replace=False)]
    # 40 points per centre is what FAISS asks for; more only slows training.
    kmeans = faiss.Kmeans(dim, nlist, niter=10, seed=seed, min_points_per_centroid=1, max_points_per_centroid=40)
    kmeans.train(sample)
    own = kmeans.index.search(x, 1)[1][:, 0]
    sizes = np.bincount(own, minlength=nlist)
    target = n / nlist
    centres = [kmeans.centroids[sizes <= 2 * target]]
    order = np.argsort(own, kind="stable")
    bounds = np.searchsorted(own[order], np.arange(nlist + 1))
    for lst in np.flatnonzero(sizes > 2 * target).tolist():
        members = x[order[bounds[lst]:bounds[lst + 1]]]
        cut = faiss.Kmeans(dim, int(np.ceil(len(members) / target)), niter=10, seed=seed,
                           min_points_per_centroid=1, max_points_per_centroid=len(members))
        cut.train(members)
        centres.append(cut.centroids)
    index = faiss.IndexFlatL2(dim)
    index.add(np.ascontiguousarray(np.vstack(centres), dtype=np.float32))
    near = index.search(x, min(probes, index.ntotal))[1]
    return near.astype(np.int32)


def nearest_rows(queries: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """For each query row, the ``k`` nearest rows of ``base`` (exact, float32), nearest first:
    int64 (n, k), -1 where ``base`` has fewer rows. No n x m matrix is kept."""
    import faiss

    from faceclust.cpu import apply_to_faiss

    apply_to_faiss()

    q = np.ascontiguousarray(queries, dtype=np.float32)
    b = np.ascontiguousarray(base, dtype=np.float32)
    if len(q) == 0 or len(b) == 0:
        return np.full((len(q), k), -1, np.int64)
    index = faiss.IndexFlatL2(b.shape[1])
    index.add(b)
    return index.search(q, k)[1]
