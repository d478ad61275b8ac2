"""The FAISS index over the catalog's embeddings: the only module that imports faiss.

Exact (flat L2) search for small libraries, an inverted-file index when large. The index is
saved next to the catalog (``CATALOG.faiss`` plus ``CATALOG.faiss.json``) and rebuilt when
the catalog's faces or model changed since it was built.
"""

from __future__ import annotations

import json
import os
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

        index_file, meta_file = index_paths(catalog_path)
        tmp = index_file.with_name(index_file.name + ".tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, index_file)
        meta_tmp = meta_file.with_name(meta_file.name + ".tmp")
        meta_tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "kind": self.kind, "count": self.count}))
        os.replace(meta_tmp, meta_file)

    @classmethod
    def load(cls, catalog_path: Path) -> "FaceIndex | None":
        """The saved index, or None when there is none or it cannot be read."""
        import faiss

        index_file, meta_file = index_paths(catalog_path)
        if not index_file.exists() or not meta_file.exists():
            return None
        try:
            meta = json.loads(meta_file.read_text())
            index = faiss.read_index(str(index_file))
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
