"""The default clusterer: agglomerative clustering, then merges whose threshold comes from the
clusters themselves, so a library of very varied photos of few people merges more freely than
one of many look-alikes.

Three steps, on unit descriptors (distances are Euclidean; every threshold is in the scale of
unit dlib descriptors and multiplied by the model's ``cluster_scale``, 1.6 for the fused one):

1. :class:`~faceclust.people.cluster.agglomerative.Agglomerative` at its settings: average
   linkage to ``threshold``, small clusters attached within ``attach_threshold``. Safe on every
   library, and short of recall on varied photos (a person split by age, make-up, pose).
2. Energy merges. For two clusters A and B of at least two faces, linked by a k-NN edge:
   ``d(A, B)`` is the mean distance over all pairs across them and ``w(C)`` the mean distance
   over the pairs inside C; ``e = d(A, B) - (w(A) + w(B)) / 2`` is half the energy distance
   (Székely & Rizzo). Two halves of one person look like one sample (small e) however spread
   that person's photos are; two people look like two. A and B merge when ``e`` is at most
   ``energy_threshold`` and ``d(A, B)`` at most ``merge_threshold`` (a cap, so a widened
   cluster cannot go on absorbing), closest first, each cluster at most once a round, until no
   pair qualifies. The spread makes it adapt: clusters of varied web photos are wide and merge
   at larger distances than clusters of uniform photos.
3. Single faces: a face alone joins the nearest cluster B of at least two faces among its k
   neighbours' clusters when its mean distance to B is within B's own radius (the largest mean
   distance of a member of B to the rest of B) plus ``margin_threshold``, and at least
   ``min_votes`` of its k nearest neighbours are in B: strong evidence when a person has many
   photos, rare in a library of people seen once or twice. Repeated ``attach_rounds`` times.

Two clusters holding conflicting faces (one photo, a cannot-link) never merge in any step.
Measured in benchmarks/bench_cluster.py and chosen in docs/clustering.md.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from faceclust.people.cluster.agglomerative import (
    Agglomerative,
    _conflicting_pairs,
    _mean_distances,
)
from faceclust.people.cluster.base import _positive, clusterers
from faceclust.people.cluster.constraints import Constraints

SPREAD_SAMPLE = 2000  # a cluster's spread and radius are measured on at most this many faces


@clusterers.register("adaptive")
class Adaptive(Agglomerative):
    """Agglomerative clustering, then energy merges and single-face attachment (see the module)."""

    def __init__(self, threshold: float = 0.35, *, attach_threshold: float | None = 0.40,
                 energy_threshold: float | None = 0.07, merge_threshold: float = 0.41,
                 margin_threshold: float | None = 0.075, min_votes: float = 0.6, attach_rounds: int = 3,
                 max_rounds: int = 50, linkage: str = "average", attach_ratio: float = 0.95, core_size: int = 6,
                 n_neighbors: int = 30, max_block: int = 8192, normalize: bool = True) -> None:
        super().__init__(threshold, linkage=linkage, attach_threshold=attach_threshold, attach_ratio=attach_ratio,
                         core_size=core_size, n_neighbors=n_neighbors, max_block=max_block, normalize=normalize)
        self.energy_threshold = energy_threshold
        self.merge_threshold = merge_threshold
        self.margin_threshold = margin_threshold
        self.min_votes = min_votes
        self.attach_rounds = attach_rounds
        self.max_rounds = max_rounds

    def _check_params(self) -> None:
        super()._check_params()
        if self.energy_threshold is not None:
            _positive("energy_threshold", self.energy_threshold)
        _positive("merge_threshold", self.merge_threshold)
        if self.margin_threshold is not None:
            _positive("margin_threshold", self.margin_threshold, minimum=0.0, inclusive=True)
        _positive("min_votes", self.min_votes, minimum=0.0, inclusive=True)
        _positive("attach_rounds", self.attach_rounds, integer=True, minimum=0, inclusive=True)
        _positive("max_rounds", self.max_rounds, integer=True, minimum=0, inclusive=True)

    def _fit_labels(self, x: np.ndarray, constraints: Constraints) -> np.ndarray:
        labels, neighbours = self._labels_and_neighbours(x, constraints)
        if len(x) < 3:
            return labels
        # A short k-NN list is padded with the face itself (it never votes for another cluster).
        neighbours = np.where(neighbours >= 0, neighbours, np.arange(len(x))[:, None])
        labels = _dense(labels)
        if self.energy_threshold is not None:
            labels = _energy_merges(x, labels, neighbours, constraints, self.energy_threshold,
                                    self.merge_threshold, self.max_rounds)
        if self.margin_threshold is not None:
            labels = _attach_single_faces(x, labels, neighbours, constraints, self.margin_threshold,
                                          self.min_votes, self.attach_rounds)
        return labels


def _dense(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _members(labels: np.ndarray) -> list[np.ndarray]:
    order, bounds = _grouped(labels)
    return [order[bounds[c]:bounds[c + 1]] for c in range(len(bounds) - 1)]


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs of two non-negative integer arrays, sorted by a then b, and how
    often each occurs: ``np.unique(np.stack([a, b]), axis=1, return_counts=True)`` through one
    integer key per pair (several times faster than unique over columns)."""
    width = int(b.max()) + 1 if len(b) else 1
    keys, counts = np.unique(a.astype(np.int64) * width + b, return_counts=True)
    return keys // width, keys % width, counts


def _grouped(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces sorted by cluster and where each cluster starts: cluster c is
    ``order[bounds[c]:bounds[c + 1]]``."""
    order = np.argsort(labels, kind="stable")
    return order, np.searchsorted(labels[order], np.arange(int(labels.max()) + 2))


# Distances are computed in blocks of at most this many face pairs (16 MB of float32).
CROSS_BLOCK = 1 << 22


def _cross_means(x: np.ndarray, order: np.ndarray, bounds: np.ndarray, a: np.ndarray, b: np.ndarray,
                 block: int = 0) -> np.ndarray:
    """Mean Euclidean distance over all pairs of faces across clusters ``a[t]`` and ``b[t]``,
    for every t (clusters as in :func:`_grouped`).

    Grouped by cluster: each cluster of ``a`` against all its partners at once, one matrix
    product per block of its faces, the column sums cut per partner. A large library has
    many clusters of a few faces each with many partners; a call per pair (Python overhead),
    or gathering both faces of every pair (memory traffic), was most of the time at a million.
    """
    block = block or CROSS_BLOCK
    out = np.empty(len(a), np.float64)
    if not len(a):
        return out
    squared = np.einsum("ij,ij->i", x, x)
    by = np.argsort(a, kind="stable")
    first = np.flatnonzero(np.r_[True, a[by][1:] != a[by][:-1]])
    for start, stop in zip(first.tolist(), np.r_[first[1:], len(by)].tolist()):
        pairs = by[start:stop]
        mine = order[bounds[a[pairs[0]]]:bounds[a[pairs[0]] + 1]]
        partners = b[pairs]
        sizes = bounds[partners + 1] - bounds[partners]
        theirs = np.concatenate([order[bounds[c]:bounds[c + 1]] for c in partners.tolist()])
        xa, xb, qb = x[mine], x[theirs], squared[theirs]
        column_sums = np.zeros(len(theirs))
        rows = max(1, block // len(theirs))
        for r in range(0, len(mine), rows):
            d = xa[r:r + rows] @ xb.T
            d *= -2.0
            d += squared[mine[r:r + rows], None]
            d += qb[None, :]
            np.maximum(d, 0.0, out=d)
            column_sums += np.sqrt(d, out=d).sum(axis=0)
        out[pairs] = np.add.reduceat(column_sums, np.r_[0, np.cumsum(sizes)[:-1]]) / (len(mine) * sizes)
    return out


def _means_within(means: np.ndarray, a: np.ndarray, b: np.ndarray, limit: float, chunk: int = 1 << 18) -> np.ndarray:
    """Which pairs (a[t], b[t]) of rows of ``means`` are at most ``limit`` apart (in chunks: a
    million faces link millions of pairs)."""
    squared = np.einsum("ij,ij->i", means, means)
    out = np.empty(len(a), bool)
    for start in range(0, len(a), chunk):
        i, j = a[start:start + chunk], b[start:start + chunk]
        d = squared[i] + squared[j] - 2.0 * np.einsum("ij,ij->i", means[i], means[j])
        out[start:start + chunk] = d <= limit * limit
    return out


def _spread(x: np.ndarray, members: np.ndarray) -> tuple[float, float]:
    """(mean distance over the pairs inside, radius: the largest mean distance of one member to
    the rest), on a fixed sample of a large cluster."""
    if len(members) > SPREAD_SAMPLE:
        members = np.random.default_rng(0).choice(members, SPREAD_SAMPLE, replace=False)
    per_member = _mean_distances(x[members], x[members]) * len(members) / (len(members) - 1)
    return float(per_member.mean()), float(per_member.max())


def _energy_merges(x: np.ndarray, labels: np.ndarray, neighbours: np.ndarray, constraints: Constraints,
                   energy: float, cap: float, max_rounds: int) -> np.ndarray:
    k = neighbours.shape[1]
    # Keyed by a cluster's members: clusters (and pairs of them) that a round left unchanged
    # are not measured again.
    spread: dict[bytes, float] = {}
    across: dict[tuple[bytes, bytes], float] = {}
    for _ in range(max_rounds):
        order, bounds = _grouped(labels)
        members = [order[bounds[c]:bounds[c + 1]] for c in range(len(bounds) - 1)]
        size = np.bincount(labels)
        src, dst = np.repeat(labels, k), labels[neighbours.reshape(-1)]
        linked = (src != dst) & (size[src] >= 2) & (size[dst] >= 2)
        if not linked.any():
            break
        a, b = _unique_pairs(np.minimum(src[linked], dst[linked]), np.maximum(src[linked], dst[linked]))[:2]
        allowed = ~_conflicting_pairs(a, b, labels, constraints)
        a, b = a[allowed], b[allowed]
        # The mean distance across two clusters is at least the distance between their means
        # (the norm is convex), so a pair whose means are farther apart than the cap can never
        # merge: not measured. At a million faces most k-NN links are such pairs.
        members_of = sparse.csr_matrix((np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))),
                                       shape=(len(size), len(labels)))
        means = (np.asarray(members_of @ x) / size[:, None]).astype(np.float32)
        close = _means_within(means, a, b, cap + 1e-4)
        a, b = a[close], b[close]
        if not len(a):
            break
        w = np.zeros(len(size))
        keys: dict[int, bytes] = {}
        for c in np.unique(np.r_[a, b]).tolist():
            key = keys[c] = members[c].tobytes()
            if key not in spread:
                spread[key] = _spread(x, members[c])[0]
            w[c] = spread[key]
        pair_keys = [(keys[i], keys[j]) for i, j in zip(a.tolist(), b.tolist())]
        d = np.array([across.get(key, np.nan) for key in pair_keys], np.float64)
        new = np.flatnonzero(np.isnan(d))
        d[new] = _cross_means(x, order, bounds, a[new], b[new])
        across = dict(zip(pair_keys, d.tolist()))  # only the pairs still linked stay cached
        e = d - 0.5 * (w[a] + w[b])
        go = np.flatnonzero((e <= energy) & (d <= cap))
        if not len(go):
            break
        used = np.zeros(len(size), bool)
        target = np.arange(len(size))
        for t in go[np.argsort(e[go], kind="stable")]:
            i, j = a[t], b[t]
            if not (used[i] or used[j]):
                used[i] = used[j] = True
                target[j] = i
        labels = _dense(target[labels])
    return labels


def _attach_single_faces(x: np.ndarray, labels: np.ndarray, neighbours: np.ndarray, constraints: Constraints,
                         margin: float, min_votes: float, rounds: int) -> np.ndarray:
    k = neighbours.shape[1]
    for _ in range(rounds):
        size = np.bincount(labels)
        faces = np.flatnonzero(size[labels] == 1)
        if not len(faces):
            break
        # (face, neighbouring cluster of >= 2 faces) with the number of the face's neighbours in it.
        face_rep = np.repeat(faces, k)
        cluster = labels[neighbours[faces].reshape(-1)]
        keep = size[cluster] >= 2
        if not keep.any():
            break
        face, cluster, votes = _unique_pairs(face_rep[keep], cluster[keep])
        members = _members(labels)
        mean = np.empty(len(face))
        for c in np.unique(cluster):
            rows = np.flatnonzero(cluster == c)
            mean[rows] = _mean_distances(x[face[rows]], x[members[c]])
        mean[_conflicting_pairs(labels[face], cluster, labels, constraints)] = np.inf
        order = np.lexsort((mean, face))
        best = order[np.r_[True, face[order][1:] != face[order][:-1]]]
        radius = {int(c): _spread(x, members[c])[1] for c in np.unique(cluster[best])}
        limit = np.array([radius[int(c)] for c in cluster[best]]) + margin
        go = best[(mean[best] <= limit) & (votes[best] >= min_votes * k)]
        if not len(go):
            break
        target = np.arange(len(size))
        target[labels[face[go]]] = cluster[go]
        labels = _dense(target[labels])
    return labels
