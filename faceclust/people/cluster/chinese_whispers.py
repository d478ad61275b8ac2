"""Chinese whispers on a distance-threshold graph (dlib's face clustering)."""

from __future__ import annotations

import numpy as np

from faceclust.people.cluster.base import Clusterer, _positive, clusterers
from faceclust.people.cluster.constraints import Constraints
from faceclust.people.cluster.graph import _knn, _threshold_graph


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
