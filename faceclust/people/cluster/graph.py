"""Input checks, distances and neighbour graphs every clusterer uses (k-NN through the FAISS index, never an
n x n matrix above a few thousand faces)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from faceclust.errors import FaceclustError


class ClusteringError(FaceclustError, ValueError):
    """Bad input or parameters for clustering (a ValueError, as scikit-learn's contract wants)."""


def check_vectors(vectors) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(n, d)`` array of finite numbers."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ClusteringError(f"expected face vectors of shape (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ClusteringError("face vectors contain NaN or infinity; re-embed those faces")
    return x


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _pairwise(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows, float32 (s, s), built in one buffer; only ever called
    on bounded blocks."""
    x = np.asarray(x, np.float32)
    squared = np.einsum("ij,ij->i", x, x)
    d = x @ x.T
    d *= -2.0
    d += squared[:, None]
    d += squared[None, :]
    np.maximum(d, 0.0, out=d)
    return np.sqrt(d, out=d)


def _knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from faceclust.catalog.index import knn_graph

    return knn_graph(x, max(1, min(k, len(x) - 1)) if len(x) > 1 else 1)


def _threshold_graph(distances: np.ndarray, neighbours: np.ndarray, threshold: float) -> sparse.csr_matrix:
    """Symmetric sparse graph of the k-NN edges no longer than ``threshold`` (weights = distance,
    nudged above 0 because sparse matrices drop stored zeros)."""
    n = len(distances)
    rows, slots = np.nonzero((neighbours >= 0) & (distances <= threshold))
    cols = neighbours[rows, slots]
    weights = np.maximum(distances[rows, slots].astype(np.float64), 1e-9)
    graph = sparse.coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()
    return graph.maximum(graph.T).tocsr()
