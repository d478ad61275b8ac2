"""The constraints every clusterer obeys: two faces of one photo (or a pair the user kept apart)
are never one person, faces the user put together end in one cluster, small groups stay unknown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from faceclust.people.cluster.graph import ClusteringError, _knn, _pairwise


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
