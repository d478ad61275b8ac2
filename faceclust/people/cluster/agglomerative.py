"""Agglomerative clustering with a distance threshold on a k-NN graph (the default for dlib's
descriptors, and the first step of ``adaptive``), with stragglers attached to their nearest
cluster."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from faceclust.people.cluster.base import Clusterer, _positive, clusterers
from faceclust.people.cluster.constraints import Constraints
from faceclust.people.cluster.graph import ClusteringError, _knn, _pairwise, _threshold_graph


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
        pointed = alive & ((row_arg == i) | (row_arg == j))
        pointed[i] = True
        stale = np.flatnonzero(pointed)
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
        return self._labels_and_neighbours(x, constraints)[0]

    def _labels_and_neighbours(self, x: np.ndarray, constraints: Constraints) -> tuple[np.ndarray, np.ndarray]:
        """The labels, and the k-NN lists they were built from (-1 pads a short list)."""
        n = len(x)
        if n == 1:
            return np.zeros(1, np.int64), np.full((1, 1), -1, np.int64)
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
        return labels, neighbours


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
