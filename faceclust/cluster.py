"""Grouping faces into people: registered clusterers and the constraints every one of them obeys.

    labels = cluster_faces(vectors, groups=photo_ids)             # the library's default
    model = clusterers.create("hdbscan").fit(vectors, photo_ids)  # one method, its own defaults
    model.labels_                                                 # int64, -1 = not assigned

This module takes an ``(n, d)`` array and returns labels; it knows nothing about photos beyond
the ``groups`` it is given. Every clusterer follows scikit-learn's estimator contract
(``__init__`` stores parameters, ``fit`` validates them and returns ``self``, fitted state ends
in ``_``) and obeys three constraints, applied after its own algorithm by :class:`Clusterer`:

* ``groups`` (the photo of each face): two faces of one photo are never one person. A cluster
  that breaks this is split, each face staying with its nearest members.
* ``cannot_link`` (pairs of face indices): the same rule for pairs a user said differ.
* ``must_link`` (groups of face indices): each group ends in one cluster (a user said "same person").

:func:`cluster_faces` then moves clusters smaller than ``min_faces`` to the unknown bucket (-1).

Descriptors are L2-normalised first (``normalize=True``), so thresholds are chord distances on
the unit sphere: dlib's same-person 0.6 on raw descriptors (norm ~1.4) is about 0.42 here. The
default method and thresholds were chosen by ``benchmarks/bench_cluster.py`` (see its tables).
Only :mod:`faceclust.index` imports faiss; k-NN graphs come from :func:`faceclust.index.knn_graph`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from faceclust.errors import FaceclustError
from faceclust.registry import Registry

__all__ = [
    "clusterers", "cluster_faces", "Clusterer", "ClusteringError", "Constraints",
    "DEFAULT_METHOD", "DEFAULT_MIN_FACES", "merge_must_link", "split_conflicts",
    "drop_small_clusters", "relabel_by_size", "normalize_rows",
]

clusterers: Registry["Clusterer"] = Registry("clusterer")

DEFAULT_METHOD = "agglomerative"
# A person needs two photos; a face seen once goes to the unknown bucket.
DEFAULT_MIN_FACES = 2


class ClusteringError(FaceclustError, ValueError):
    """Bad input or parameters for clustering (a ValueError, as scikit-learn's contract wants)."""


# -- input and constraints -------------------------------------------------------------------


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


@dataclass(frozen=True)
class Constraints:
    """Who may not, and who must, share a cluster.

    Conflicts are stored as (face, key) rows: two faces conflict when they share a key. A photo
    with several faces is one key; each cannot-link pair is one more key. ``must_id`` names the
    must-link group of each face (-1 for none); overlapping groups are merged.
    """

    n: int
    key_face: np.ndarray  # int64 (m,)
    key: np.ndarray  # int64 (m,)
    must_id: np.ndarray  # int64 (n,)
    face_start: np.ndarray  # int64 (n + 1,): face f's keys are keys_by_face[face_start[f]:face_start[f + 1]]
    keys_by_face: np.ndarray  # int64 (m,)

    @classmethod
    def build(cls, n: int, groups=None, cannot_link=None, must_link=None) -> "Constraints":
        faces: list[np.ndarray] = []
        keys: list[np.ndarray] = []
        next_key = 0
        if groups is not None:
            g = np.asarray(groups)
            if g.shape != (n,):
                raise ClusteringError(f"groups must give one photo per face: expected shape ({n},), got {g.shape}")
            codes = np.unique(g, return_inverse=True)[1].reshape(-1).astype(np.int64)
            shared = np.bincount(codes)[codes] > 1 if n else np.zeros(0, bool)
            faces.append(np.nonzero(shared)[0])
            keys.append(codes[shared])
            next_key = int(codes.max()) + 1 if n else 0
        if cannot_link is not None:
            pairs = _face_indices(cannot_link, n, "cannot_link")
            if pairs.size == 0:
                pairs = pairs.reshape(0, 2)
            if pairs.ndim != 2 or pairs.shape[1] != 2:
                raise ClusteringError(f"cannot_link must be pairs of face indices, shape (m, 2); got {pairs.shape}")
            if np.any(pairs[:, 0] == pairs[:, 1]):
                raise ClusteringError("cannot_link pairs a face with itself")
            faces.append(pairs.reshape(-1))
            keys.append(np.repeat(next_key + np.arange(len(pairs), dtype=np.int64), 2))
        key_face = np.concatenate(faces) if faces else np.zeros(0, np.int64)
        key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        must_id = _must_link_ids(n, must_link)
        key_face, key = key_face.astype(np.int64), key.astype(np.int64)
        by_face = np.argsort(key_face, kind="stable")
        face_start = np.searchsorted(key_face[by_face], np.arange(n + 1))
        constraints = cls(n, key_face, key, must_id, face_start, key[by_face])
        constraints._check_must_link()
        return constraints

    @property
    def any_conflict(self) -> bool:
        return len(self.key) > 0

    def _check_must_link(self) -> None:
        linked = self.must_id[self.key_face] >= 0
        rows = np.stack([self.must_id[self.key_face[linked]], self.key[linked]])
        if rows.shape[1] and np.unique(rows, axis=1).shape[1] < rows.shape[1]:
            raise ClusteringError("a must_link group holds two faces that cannot be together "
                                  "(same photo or a cannot_link pair); fix the manual decisions")

    def violating_clusters(self, labels: np.ndarray) -> np.ndarray:
        """Cluster ids holding two faces that share a conflict key."""
        cluster = labels[self.key_face]
        assigned = cluster >= 0
        rows = np.stack([cluster[assigned], self.key[assigned]])
        if not rows.shape[1]:
            return np.zeros(0, np.int64)
        uniq, counts = np.unique(rows, axis=1, return_counts=True)
        return np.unique(uniq[0, counts > 1])

    def key_rows(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``faces``, key) for every conflict key of ``faces``; O(len(faces))."""
        faces = np.asarray(faces, np.int64)
        start = self.face_start[faces]
        counts = self.face_start[faces + 1] - start
        position = np.repeat(np.arange(len(faces)), counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return position, self.keys_by_face[np.repeat(start, counts) + offset]

    def conflict_matrix(self, members: np.ndarray) -> np.ndarray:
        """Boolean (s, s): which of ``members`` may not share a cluster."""
        s = len(members)
        position, keys = self.key_rows(members)
        if not len(keys):
            return np.zeros((s, s), bool)
        _, key_index = np.unique(keys, return_inverse=True)
        incidence = sparse.csr_matrix((np.ones(len(keys)), (position, key_index.reshape(-1))),
                                      shape=(s, int(key_index.max()) + 1))
        together = (incidence @ incidence.T).toarray() > 0
        np.fill_diagonal(together, False)
        return together

    def keys_of(self, faces: np.ndarray) -> list[set[int]]:
        """The conflict keys of each of ``faces``, as sets."""
        out: list[set[int]] = [set() for _ in range(len(faces))]
        for p, k in zip(*(a.tolist() for a in self.key_rows(faces))):
            out[p].add(k)
        return out


def _face_indices(values, n: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ClusteringError(f"{what} must hold face indices (integers), got {array.dtype}")
    array = array.astype(np.int64)
    bad = array[(array < 0) | (array >= n)]
    if bad.size:
        raise ClusteringError(f"{what} refers to face {int(bad[0])}, but faces are numbered 0 to {n - 1}")
    return array


def _must_link_ids(n: int, must_link: Iterable[Sequence[int]] | None) -> np.ndarray:
    """One id per connected must-link group (overlapping groups merge), -1 elsewhere."""
    must_id = np.full(n, -1, np.int64)
    if must_link is None:
        return must_id
    groups = [_face_indices(list(g), n, "must_link") for g in must_link]
    groups = [g for g in groups if len(g) > 1]
    if not groups:
        return must_id
    # Star edges from each group's first face; components then merge overlapping groups.
    heads = np.concatenate([np.full(len(g) - 1, g[0]) for g in groups])
    tails = np.concatenate([g[1:] for g in groups])
    graph = sparse.coo_matrix((np.ones(len(heads)), (heads, tails)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    linked = np.zeros(n, bool)
    linked[np.concatenate(groups)] = True
    must_id[linked] = np.unique(component[linked], return_inverse=True)[1].reshape(-1)
    return must_id


# -- constraint functions, shared by every clusterer ---------------------------------------------


def merge_must_link(labels: np.ndarray, must_id: np.ndarray) -> np.ndarray:
    """Clusters touched by one must-link group become one cluster (unassigned members join it)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not (must_id >= 0).any():
        return labels.copy()
    n = len(labels)
    n_clusters = int(labels.max()) + 1 if n else 0
    assigned = np.nonzero(labels >= 0)[0]
    linked = np.nonzero(must_id >= 0)[0]
    # Nodes: faces, then clusters, then must-link groups; a face joins its cluster and its group.
    rows = np.concatenate([assigned, linked])
    cols = np.concatenate([n + labels[assigned], n + n_clusters + must_id[linked]])
    size = n + n_clusters + int(must_id.max()) + 1
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))
    _, component = connected_components(graph, directed=False)
    out = np.full(n, -1, np.int64)
    placed = (labels >= 0) | (must_id >= 0)
    out[placed] = component[:n][placed]
    return out


_DENSE_SPLIT = 4096  # a cluster to split bigger than this uses the k-NN graph, not all pairs


class _ConflictUnion:
    """Union-find whose sets carry conflict keys; a union of sets sharing a key is refused."""

    def __init__(self, keys: list[set[int]]) -> None:
        self.parent = list(range(len(keys)))
        self.keys = keys

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int, *, force: bool = False) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not force and not self.keys[ra].isdisjoint(self.keys[rb]):
            return False
        if len(self.keys[ra]) < len(self.keys[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.keys[ra] |= self.keys[rb]
        self.keys[rb] = set()
        return True

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], np.int64)


def _split_one(x: np.ndarray, members: np.ndarray, constraints: Constraints, k: int = 10) -> np.ndarray:
    """Split one cluster into as few conflict-free parts as a greedy pass finds: nearest pairs
    are joined first (Kruskal over each face's k nearest members), so every face stays with its
    nearest allowed members; parts left apart are then joined by centroid distance if allowed."""
    s = len(members)
    union = _ConflictUnion(constraints.keys_of(members))
    must = constraints.must_id[members]
    for group in np.unique(must[must >= 0]):
        faces = np.nonzero(must == group)[0]
        for f in faces[1:]:
            union.union(int(faces[0]), int(f), force=True)  # checked conflict-free up front
    kk = min(k, s - 1)
    if s <= _DENSE_SPLIT:
        dist = _pairwise(x[members])
        np.fill_diagonal(dist, np.inf)
        near = np.argpartition(dist, kk - 1, axis=1)[:, :kk] if kk > 0 else np.zeros((s, 0), np.int64)
        near_dist = np.take_along_axis(dist, near, axis=1)
    else:
        near_dist, near = _knn(x[members], kk)
    valid = (near >= 0).reshape(-1)
    rows = np.repeat(np.arange(s), near.shape[1])[valid]
    cols = near.reshape(-1)[valid]
    weights = near_dist.reshape(-1)[valid]
    for e in np.argsort(weights, kind="stable"):
        union.union(int(rows[e]), int(cols[e]))
    roots = union.roots()
    parts = np.unique(roots)
    if len(parts) > 1:
        # Second pass over the parts themselves, nearest centroids first.
        index = np.searchsorted(parts, roots)
        centroids = np.stack([x[members[index == p]].mean(axis=0) for p in range(len(parts))])
        between = _pairwise(centroids)
        a, b = np.triu_indices(len(parts), 1)
        for e in np.argsort(between[a, b], kind="stable"):
            union.union(int(parts[a[e]]), int(parts[b[e]]))
        roots = union.roots()
    return np.unique(roots, return_inverse=True)[1].reshape(-1)


def split_conflicts(x: np.ndarray, labels: np.ndarray, constraints: Constraints) -> np.ndarray:
    """Labels where no cluster holds two conflicting faces (same photo or cannot-link)."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    if not constraints.any_conflict:
        return labels
    next_label = int(labels.max()) + 1 if len(labels) else 0
    for cluster in constraints.violating_clusters(labels):
        members = np.nonzero(labels == cluster)[0]
        parts = _split_one(x, members, constraints)
        # Part 0 keeps the old id; the others get fresh ones.
        labels[members] = np.where(parts == 0, cluster, next_label + parts - 1)
        next_label += int(parts.max())
    return labels


def drop_small_clusters(labels: np.ndarray, min_faces: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Clusters with fewer than ``min_faces`` faces become -1, except those holding a face of
    ``keep`` (a boolean mask: a person the user confirmed stays whatever its size)."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    assigned = labels >= 0
    if not assigned.any() or min_faces <= 1:
        return labels
    sizes = np.bincount(labels[assigned])
    small = sizes < min_faces
    if keep is not None and keep.any():
        kept = labels[keep & assigned]
        small[kept] = False
    labels[assigned & small[np.where(assigned, labels, 0)]] = -1
    return labels


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Consecutive ids, the largest cluster first (ties: the cluster seen first); -1 stays."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(len(labels), -1, np.int64)
    assigned = labels >= 0
    if not assigned.any():
        return out
    ids, first, inverse, counts = np.unique(labels[assigned], return_index=True, return_inverse=True,
                                            return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids))
    out[assigned] = rank[inverse.reshape(-1)]
    return out


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


# -- the estimator base ------------------------------------------------------------------------


class Clusterer:
    """Base of every clusterer: checks input, runs the subclass's ``_fit_labels``, then applies
    the must-link and cannot-link constraints and numbers clusters by size.

    A subclass stores its parameters in ``__init__`` (nothing else), checks them in
    ``_check_params`` and writes one method, ``_fit_labels(x, constraints) -> labels``.
    """

    normalize: bool = True

    def fit(self, X, groups=None, *, cannot_link=None, must_link=None) -> "Clusterer":
        """Cluster ``X`` (n, d); ``groups`` is the photo of each face. Returns ``self``."""
        self._check_params()
        x = check_vectors(X)
        constraints = Constraints.build(len(x), groups, cannot_link, must_link)
        if self.normalize:
            x = normalize_rows(x)
        if len(x) == 0:
            labels = np.zeros(0, np.int64)
        else:
            labels = np.asarray(self._fit_labels(x, constraints), dtype=np.int64)
        labels = merge_must_link(labels, constraints.must_id)
        labels = split_conflicts(x, labels, constraints)
        self.labels_ = relabel_by_size(labels)
        self.n_clusters_ = int(self.labels_.max()) + 1 if len(self.labels_) else 0
        return self

    def fit_predict(self, X, groups=None, **constraints) -> np.ndarray:
        return self.fit(X, groups, **constraints).labels_

    def get_params(self) -> dict:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_params(self) -> None:
        pass

    def _fit_labels(self, x: np.ndarray, constraints: Constraints) -> np.ndarray:
        raise NotImplementedError


def _positive(name: str, value, *, integer: bool = False, minimum: float = 0.0, inclusive: bool = False) -> None:
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type:
        raise ClusteringError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if (value < minimum) if inclusive else (value <= minimum):
        raise ClusteringError(f"{name} must be {'at least' if inclusive else 'greater than'} {minimum}, got {value!r}")


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


# -- agglomerative -------------------------------------------------------------------------------


def _dense_linkage(dist: np.ndarray, threshold: float, conflict: np.ndarray | None, linkage: str,
                   *, overwrite: bool = False) -> np.ndarray:
    """Agglomerative clustering of one block of distances: merge the closest pair while it is
    within ``threshold``; a pair of clusters holding a ``conflict`` pair is never merged.

    Keeps each row's nearest column, so a merge costs O(s) work instead of a full O(s²) search:
    with average, complete or single linkage a merged cluster is never nearer to a third than
    the nearer of its parts was (reducibility), so only rows that pointed at a merged cluster
    need a fresh search. ``overwrite=True`` lets it work in ``dist`` (float32) without a copy.
    """
    s = len(dist)
    d = dist if overwrite and dist.dtype == np.float32 else np.array(dist, dtype=np.float32)
    blocked = None
    if conflict is not None and conflict.any():
        blocked = np.array(conflict, dtype=bool)
        d[blocked] = np.inf
    np.fill_diagonal(d, np.inf)
    size = np.ones(s, np.float32)
    alive = np.ones(s, bool)
    parent = np.arange(s)
    row_min = d.min(axis=1)
    row_arg = d.argmin(axis=1)
    while True:
        i = int(np.argmin(row_min))
        if not row_min[i] <= threshold:
            break
        j = int(row_arg[i])
        if linkage == "average":
            merged = (size[i] * d[i] + size[j] * d[j]) / (size[i] + size[j])
        elif linkage == "complete":
            merged = np.maximum(d[i], d[j])
        else:
            merged = np.minimum(d[i], d[j])
        alive[j] = False
        merged[~alive] = np.inf
        merged[i] = np.inf
        if blocked is not None:
            blocked[i] |= blocked[j]
            blocked[:, i] = blocked[i]
            merged[blocked[i]] = np.inf
        d[i], d[:, i] = merged, merged
        d[j], d[:, j] = np.inf, np.inf
        size[i] += size[j]
        parent[j] = i
        row_min[j] = np.inf
        stale = np.union1d(np.nonzero(alive & ((row_arg == i) | (row_arg == j)))[0], [i])
        row_min[stale] = d[stale].min(axis=1)
        row_arg[stale] = d[stale].argmin(axis=1)
        nearer = alive & (merged < row_min)
        row_min[nearer] = merged[nearer]
        row_arg[nearer] = i
    while True:  # follow merges to the surviving cluster
        up = parent[parent]
        if np.array_equal(up, parent):
            break
        parent = up
    return np.unique(parent, return_inverse=True)[1].reshape(-1)


def _size_capped_parts(graph: sparse.csr_matrix, members: np.ndarray, cap: int) -> np.ndarray:
    """Cut one oversized component into parts of at most ``cap`` faces along its minimum
    spanning tree, keeping the shortest edges (the parts are its tightest regions)."""
    sub = graph[members][:, members]
    tree = minimum_spanning_tree(sub).tocoo()
    order = np.argsort(tree.data, kind="stable")
    parent = np.arange(len(members))
    size = np.ones(len(members), np.int64)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for e in order:
        a, b = find(int(tree.row[e])), find(int(tree.col[e]))
        if a != b and size[a] + size[b] <= cap:
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a
            size[a] += size[b]
    return np.array([find(i) for i in range(len(members))], np.int64)


@clusterers.register("agglomerative")
class Agglomerative(Clusterer):
    """Agglomerative clustering (average linkage by default) under a distance threshold, then
    stragglers attached to the person they clearly belong to.

    Scales through the k-NN graph: faces are first split into the connected components of the
    graph of k-NN edges within ``threshold`` (an average-linkage cluster never spans two), and
    each component is clustered exactly from its own distance block; a component larger than
    ``max_block`` faces is first cut into parts along its minimum spanning tree (so one person
    with more faces than that can end up as a few large clusters; the cut is approximate).

    Conflicting faces (same photo, cannot-link) are separated afterwards like for every method,
    each face staying with its nearest members. ``refuse_conflicting_merges=True`` instead
    refuses any merge of two clusters holding conflicting faces; measured, that loses recall (one
    wrongly placed face blocks two halves of a person from joining) and gains no precision.

    Stragglers: a cluster of fewer than ``core_size`` faces joins the nearest cluster of at
    least ``core_size`` faces (nearest by mean distance over the k-NN candidates) when that mean
    is within ``attach_threshold`` and at most ``attach_ratio`` times the mean distance to the
    second nearest: a face is given to a person only when one person is clearly nearest.
    ``attach_threshold=None`` turns this off.

    Why these defaults (``benchmarks/bench_cluster.py``): merging freely up to 0.35 stays below
    the distance at which different people start to pass (FAR=1e-3 is reached at 0.36-0.38 on
    both development sets), so lookalikes rarely merge; the faces that leaves apart are mostly
    single odd photos of someone (profile, blur, small face), which the straggler step gives to
    the person they clearly resemble up to 0.40 (between FAR 1e-3 and 1e-2). Plain average
    linkage peaks near 0.39-0.40 on both sets and loses to this two-step form on both; F1 stays
    above every reference for threshold 0.35-0.37, attach_threshold 0.39-0.42 and core_size 5-8.
    """

    def __init__(self, threshold: float = 0.35, *, linkage: str = "average",
                 attach_threshold: float | None = 0.40, attach_ratio: float = 0.95, core_size: int = 6,
                 n_neighbors: int = 30, max_block: int = 8192, refuse_conflicting_merges: bool = False,
                 normalize: bool = True) -> None:
        self.threshold = threshold
        self.linkage = linkage
        self.attach_threshold = attach_threshold
        self.attach_ratio = attach_ratio
        self.core_size = core_size
        self.n_neighbors = n_neighbors
        self.max_block = max_block
        self.refuse_conflicting_merges = refuse_conflicting_merges
        self.normalize = normalize

    def _check_params(self) -> None:
        _positive("threshold", self.threshold)
        if self.linkage not in ("average", "complete", "single"):
            raise ClusteringError(f"linkage must be 'average', 'complete' or 'single', got {self.linkage!r}")
        if self.attach_threshold is not None:
            _positive("attach_threshold", self.attach_threshold)
            _positive("attach_ratio", self.attach_ratio)
        _positive("core_size", self.core_size, integer=True, minimum=1, inclusive=True)
        _positive("n_neighbors", self.n_neighbors, integer=True, minimum=1, inclusive=True)
        _positive("max_block", self.max_block, integer=True, minimum=2, inclusive=True)

    def _fit_labels(self, x: np.ndarray, constraints: Constraints) -> np.ndarray:
        n = len(x)
        if n == 1:
            return np.zeros(1, np.int64)
        distances, neighbours = _knn(x, self.n_neighbors)
        graph = _threshold_graph(distances, neighbours, self.threshold)
        _, component = connected_components(graph, directed=False)
        labels = component.astype(np.int64)  # singletons keep their component id
        next_label = int(labels.max()) + 1
        order = np.argsort(component, kind="stable")
        bounds = np.flatnonzero(np.diff(component[order])) + 1
        for members in np.split(order, bounds):
            if len(members) < 2:
                continue
            blocks = [members]
            if len(members) > self.max_block:
                parts = _size_capped_parts(graph, members, self.max_block)
                blocks = [members[parts == p] for p in np.unique(parts)]
            for block in blocks:
                conflict = constraints.conflict_matrix(block) if self.refuse_conflicting_merges else None
                sub = _dense_linkage(_pairwise(x[block]), self.threshold, conflict, self.linkage, overwrite=True)
                labels[block] = next_label + sub
                next_label += int(sub.max()) + 1
        if self.attach_threshold is not None:
            labels = _attach_stragglers(x, labels, neighbours, constraints, self.attach_threshold,
                                        self.attach_ratio, self.core_size)
        return labels


def _attach_stragglers(x: np.ndarray, labels: np.ndarray, neighbours: np.ndarray, constraints: Constraints,
                       threshold: float, ratio: float, core_size: int) -> np.ndarray:
    """Move each small cluster into the core cluster it is clearly nearest to (see
    :class:`Agglomerative`). Candidates are the core clusters among its faces' k-NN lists;
    distances are exact means over all pairs of faces."""
    labels = np.asarray(labels, dtype=np.int64)
    sizes = np.bincount(labels)
    is_core = sizes >= core_size
    faces = np.nonzero(~is_core[labels])[0]
    if not len(faces) or not is_core.any():
        return labels
    nb = neighbours[faces]
    valid = nb >= 0
    cand = np.where(valid, labels[np.where(valid, nb, 0)], -1)
    ok = valid & (cand >= 0) & is_core[np.maximum(cand, 0)]
    unit = np.repeat(labels[faces], nb.shape[1])[ok.reshape(-1)]
    core = cand[ok]
    if not len(unit):
        return labels
    pairs = np.unique(np.stack([unit, core]), axis=1)
    unit, core = pairs[0], pairs[1]
    mean = np.empty(len(unit), np.float64)
    by_label = np.argsort(labels, kind="stable")
    label_start = np.searchsorted(labels[by_label], np.arange(len(sizes) + 1))

    def faces_of(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces of clusters ``ids`` and, for each, the position of its cluster in ``ids``."""
        counts = label_start[ids + 1] - label_start[ids]
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return by_label[np.repeat(label_start[ids], counts) + offset], np.repeat(np.arange(len(ids)), counts)

    # Exact mean distance per (unit, core) pair, one core at a time (a matrix product each).
    by_core = np.argsort(core, kind="stable")
    bounds = np.flatnonzero(np.diff(core[by_core])) + 1
    for rows in np.split(by_core, bounds):
        core_faces, _ = faces_of(core[rows[:1]])
        unit_faces, which = faces_of(unit[rows])
        block = _mean_distances(x[unit_faces], x[core_faces])
        mean[rows] = np.bincount(which, weights=block, minlength=len(rows)) / np.bincount(which, minlength=len(rows))
    allowed_mean = np.where(_conflicting_pairs(unit, core, labels, constraints), np.inf, mean)
    # Per unit: the nearest allowed core, and the nearest other core (allowed or not).
    order = np.lexsort((allowed_mean, unit))
    first = np.r_[True, unit[order][1:] != unit[order][:-1]]
    best = order[first]
    best_unit = unit[best]
    masked = mean.copy()
    masked[best] = np.inf
    second = np.full(int(labels.max()) + 1, np.inf)
    np.minimum.at(second, unit, masked)
    d1 = allowed_mean[best]
    go = (d1 <= threshold) & (d1 <= ratio * second[best_unit])
    target = np.arange(int(labels.max()) + 1)
    target[best_unit[go]] = core[best[go]]
    return target[labels]


def _mean_distances(a: np.ndarray, b: np.ndarray, rows: int = 1024) -> np.ndarray:
    """Mean Euclidean distance from each row of ``a`` to all rows of ``b``, in row blocks so a
    large cluster never needs a |a|×|b| matrix at once."""
    b_squared = np.einsum("ij,ij->i", b, b)
    out = np.empty(len(a), np.float64)
    for start in range(0, len(a), rows):
        part = a[start:start + rows]
        d = part @ b.T
        d *= -2.0
        d += np.einsum("ij,ij->i", part, part)[:, None]
        d += b_squared[None, :]
        np.maximum(d, 0.0, out=d)
        out[start:start + rows] = np.sqrt(d, out=d).mean(axis=1)
    return out


def _conflicting_pairs(unit: np.ndarray, core: np.ndarray, labels: np.ndarray, constraints: Constraints) -> np.ndarray:
    """For (unit cluster, core cluster) pairs: would joining them put conflicting faces together?"""
    if not constraints.any_conflict:
        return np.zeros(len(unit), bool)
    # Cluster × key incidence; two clusters conflict when they share a key.
    owner = labels[constraints.key_face]
    placed = owner >= 0
    if not placed.any():
        return np.zeros(len(unit), bool)
    _, key_index = np.unique(constraints.key[placed], return_inverse=True)
    width = int(labels.max()) + 1
    incidence = sparse.csr_matrix((np.ones(int(placed.sum())), (owner[placed], key_index.reshape(-1))),
                                  shape=(width, int(key_index.max()) + 1))
    shared = (incidence @ incidence.T).tocsr()
    return np.asarray(shared[unit, core]).reshape(-1) > 0


# -- k-means ---------------------------------------------------------------------------------------


@clusterers.register("kmeans")
class KMeans(Clusterer):
    """k-means (scikit-learn), for when the number of people is known.

    ``n_clusters=None`` guesses sqrt(n/2), a rough rule of thumb: k-means has no notion of
    "too far to be the same person", so pass the number when you know it.
    """

    def __init__(self, n_clusters: int | None = None, *, max_iter: int = 100, seed: int = 0,
                 normalize: bool = True) -> None:
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.seed = seed
        self.normalize = normalize

    def _check_params(self) -> None:
        if self.n_clusters is not None:
            _positive("n_clusters", self.n_clusters, integer=True, minimum=1, inclusive=True)
        _positive("max_iter", self.max_iter, integer=True, minimum=1, inclusive=True)

    def _fit_labels(self, x: np.ndarray, constraints: Constraints) -> np.ndarray:
        from sklearn.cluster import KMeans as SKKMeans

        k = self.n_clusters if self.n_clusters is not None else max(1, int(round(np.sqrt(len(x) / 2))))
        if k > len(x):
            raise ClusteringError(f"n_clusters={k} but there are only {len(x)} faces; pass fewer clusters")
        model = SKKMeans(n_clusters=k, n_init=1, max_iter=self.max_iter, random_state=self.seed)
        return model.fit(x).labels_


# -- HDBSCAN ---------------------------------------------------------------------------------------


@clusterers.register("hdbscan")
class HDBSCAN(Clusterer):
    """HDBSCAN (the ``hdbscan`` package's cluster tree and selection) over the k-NN graph.

    The mutual-reachability minimum spanning tree is built from the k-NN graph rather than from
    all pairs, which keeps 100k faces well under a minute (the package's own tree search is
    slow in 128 dimensions); components the graph leaves apart are joined above every real
    edge. Faces it calls noise are -1.
    """

    def __init__(self, min_cluster_size: int = 3, min_samples: int = 1, *,
                 cluster_selection_method: str = "eom", cluster_selection_epsilon: float = 0.0,
                 n_neighbors: int = 15, normalize: bool = True) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.n_neighbors = n_neighbors
        self.normalize = normalize

    def _check_params(self) -> None:
        _positive("min_cluster_size", self.min_cluster_size, integer=True, minimum=2, inclusive=True)
        _positive("min_samples", self.min_samples, integer=True, minimum=1, inclusive=True)
        if self.cluster_selection_method not in ("eom", "leaf"):
            raise ClusteringError("cluster_selection_method must be 'eom' or 'leaf', "
                                  f"got {self.cluster_selection_method!r}")
        _positive("cluster_selection_epsilon", self.cluster_selection_epsilon, inclusive=True)
        _positive("n_neighbors", self.n_neighbors, integer=True, minimum=1, inclusive=True)
        if self.n_neighbors < self.min_samples:
            raise ClusteringError(f"n_neighbors ({self.n_neighbors}) must be at least min_samples "
                                  f"({self.min_samples})")

    def _fit_labels(self, x: np.ndarray, constraints: Constraints) -> np.ndarray:
        try:
            from hdbscan._hdbscan_linkage import label as single_linkage_from_mst
            from hdbscan.hdbscan_ import _tree_to_labels
        except ImportError as exc:  # the private API moved: say what works
            raise ClusteringError(f"this hdbscan version is not supported ({exc}); "
                                  "pip install 'hdbscan>=0.8.33,<0.9'") from exc
        n = len(x)
        if n < self.min_cluster_size:
            return np.full(n, -1, np.int64)
        distances, neighbours = _knn(x, self.n_neighbors)
        # Core distance as the hdbscan package computes it in many dimensions: the distance to
        # the min_samples-th nearest other face.
        core = distances[:, min(self.min_samples, distances.shape[1]) - 1].astype(np.float64)
        valid = neighbours >= 0
        rows = np.repeat(np.arange(n), neighbours.shape[1])[valid.reshape(-1)]
        cols = neighbours[valid]
        reach = np.maximum.reduce([distances[valid].astype(np.float64), core[rows], core[cols]])
        graph = sparse.coo_matrix((np.maximum(reach, 1e-9), (rows, cols)), shape=(n, n)).tocsr()
        graph = graph.maximum(graph.T)
        tree = minimum_spanning_tree(graph).tocoo()
        edges = np.stack([tree.row, tree.col, tree.data], axis=1).astype(np.float64)
        n_parts, part = connected_components(graph, directed=False)
        if n_parts > 1:
            edges = np.vstack([edges, _component_links(x, part, n_parts, core)])
        edges = edges[np.argsort(edges[:, 2], kind="stable")]
        linkage = single_linkage_from_mst(edges)
        labels = _tree_to_labels(None, linkage, self.min_cluster_size, self.cluster_selection_method,
                                 False, False, self.cluster_selection_epsilon)[0]
        return labels.astype(np.int64)


def _component_links(x: np.ndarray, part: np.ndarray, n_parts: int, core: np.ndarray,
                     dense_limit: int = 4096) -> np.ndarray:
    """Edges (a, b, weight) joining the k-NN graph's components into one tree.

    A clump of near-duplicates keeps all its k nearest neighbours to itself, so the k-NN graph
    falls apart; joining the parts above every real edge would make each part a cluster of its
    own at once (HDBSCAN's selection would keep a whole part). Instead each part is represented
    by its member nearest its centroid and parts are joined by a minimum spanning tree over the
    representatives' mutual reachability: an upper bound of the true joining distance, on the
    right scale.
    """
    sums = np.zeros((n_parts, x.shape[1]))
    np.add.at(sums, part, x)
    centroids = sums / np.bincount(part, minlength=n_parts)[:, None]
    off = np.linalg.norm(x - centroids[part], axis=1)
    order = np.lexsort((off, part))
    reps = order[np.r_[True, part[order][1:] != part[order][:-1]]]
    if n_parts <= dense_limit:
        d = _pairwise(x[reps]).astype(np.float64)
        a, b = np.triu_indices(n_parts, 1)
        w = np.maximum.reduce([d[a, b], core[reps[a]], core[reps[b]]])
    else:
        dist, nb = _knn(x[reps], 15)
        valid = nb >= 0
        a = np.repeat(np.arange(n_parts), nb.shape[1])[valid.reshape(-1)]
        b = nb[valid]
        w = np.maximum.reduce([dist[valid].astype(np.float64), core[reps[a]], core[reps[b]]])
    tree = minimum_spanning_tree(sparse.coo_matrix((np.maximum(w, 1e-9), (a, b)), shape=(n_parts, n_parts))).tocoo()
    links = [np.stack([reps[tree.row], reps[tree.col], tree.data], axis=1)]
    n_left, left = connected_components(tree, directed=False)
    if n_left > 1:  # only when even the representatives' k-NN graph falls apart
        heads = reps[np.unique(left, return_index=True)[1]]
        top = float(tree.data.max() if tree.nnz else 1.0) * 2 + 1
        links.append(np.stack([heads[:-1], heads[1:], np.full(n_left - 1, top)], axis=1))
    return np.vstack(links).astype(np.float64)


# -- Chinese whispers -----------------------------------------------------------------------------


def _heaviest_label(n: int, src: np.ndarray, neighbour_label: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """For every node, the label carrying the most edge weight among its neighbours (ties: the
    smallest label)."""
    key = src * n + neighbour_label
    uniq, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse.reshape(-1), weights=weight)
    node, label = uniq // n, uniq % n
    order = np.lexsort((label, -total, node))
    first = order[np.r_[True, node[order][1:] != node[order][:-1]]]
    proposal = np.arange(n)
    proposal[node[first]] = label[first]
    return proposal


def chinese_whispers(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray | None = None,
                     max_iter: int = 100, seed: int = 0) -> np.ndarray:
    """Chinese whispers (Biemann 2006) on a graph given as directed edge arrays.

    Every node starts with a label of its own and repeatedly takes the label heaviest among its
    neighbours. Updating all nodes at once can flip-flop forever (two nodes swapping labels), so
    each round updates a seeded random half of the nodes whose label would change; it stops when
    no node would change.
    """
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    weight = np.ones(len(src)) if weight is None else np.asarray(weight, np.float64)
    labels = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        proposal = _heaviest_label(n, src, labels[dst], weight)
        changing = proposal != labels
        if not changing.any():
            break
        move = changing & (rng.random(n) < 0.5)
        labels[move] = proposal[move]
    return labels


@clusterers.register("chinese-whispers")
class ChineseWhispers(Clusterer):
    """dlib's face-clustering method: Chinese whispers on the graph joining faces closer than
    ``threshold`` (here the k-NN edges within it, plus each face's own vote, as dlib counts it).

    dlib's raw 0.5 is about 0.35 on normalised descriptors. Deterministic for a given ``seed``.
    """

    def __init__(self, threshold: float = 0.35, *, n_neighbors: int = 30, max_iter: int = 100,
                 seed: int = 0, normalize: bool = True) -> None:
        self.threshold = threshold
        self.n_neighbors = n_neighbors
        self.max_iter = max_iter
        self.seed = seed
        self.normalize = normalize

    def _check_params(self) -> None:
        _positive("threshold", self.threshold)
        _positive("n_neighbors", self.n_neighbors, integer=True, minimum=1, inclusive=True)
        _positive("max_iter", self.max_iter, integer=True, minimum=1, inclusive=True)

    def _fit_labels(self, x: np.ndarray, constraints: Constraints) -> np.ndarray:
        n = len(x)
        if n == 1:
            return np.zeros(1, np.int64)
        distances, neighbours = _knn(x, self.n_neighbors)
        graph = _threshold_graph(distances, neighbours, self.threshold).tocoo()
        # Strictly below the threshold, as dlib; plus self-loops.
        strict = graph.data < self.threshold
        src = np.concatenate([graph.row[strict], np.arange(n)])
        dst = np.concatenate([graph.col[strict], np.arange(n)])
        return chinese_whispers(n, src, dst, max_iter=self.max_iter, seed=self.seed)


# -- the library entry point ---------------------------------------------------------------------


def cluster_faces(vectors, groups=None, method: str | None = None, min_faces: int | None = None, *,
                  cannot_link: Sequence[tuple[int, int]] | np.ndarray | None = None,
                  must_link: Iterable[Sequence[int]] | None = None, **options) -> np.ndarray:
    """Cluster face descriptors into people: int64 labels, -1 for the unknown bucket.

    ``groups`` is the photo of each face (two faces of a photo are never one person);
    ``method`` a registered clusterer (default :data:`DEFAULT_METHOD`); clusters with fewer
    than ``min_faces`` faces (default :data:`DEFAULT_MIN_FACES`) go to -1, except those holding
    a ``must_link`` face; ``options`` go to the clusterer (``None`` values are dropped, so the
    library's defaults apply).

    >>> import numpy as np
    >>> x = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99], [-1, 0]], np.float32)
    >>> cluster_faces(x).tolist()
    [0, 0, 1, 1, -1]
    >>> cluster_faces(x, groups=[0, 0, 1, 2, 3]).tolist()  # faces 0 and 1 share a photo
    [-1, -1, 0, 0, -1]
    """
    method = DEFAULT_METHOD if method is None else method
    min_faces = DEFAULT_MIN_FACES if min_faces is None else min_faces
    _positive("min_faces", min_faces, integer=True, minimum=1, inclusive=True)
    options = {k: v for k, v in options.items() if v is not None}
    try:
        model = clusterers.create(method, **options)
    except TypeError as exc:
        known = ", ".join(clusterers.create(method).get_params())
        raise ClusteringError(f"clusterer {method!r} does not take {sorted(options)}; its options are: {known}") from exc
    labels = model.fit(vectors, groups, cannot_link=cannot_link, must_link=must_link).labels_
    keep = _must_link_ids(len(labels), must_link) >= 0
    return relabel_by_size(drop_small_clusters(labels, min_faces, keep))
