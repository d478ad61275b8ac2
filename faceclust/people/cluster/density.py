"""HDBSCAN: density clustering, noise left unknown."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from faceclust.people.cluster.base import Clusterer, _positive, clusterers
from faceclust.people.cluster.constraints import Constraints
from faceclust.people.cluster.graph import ClusteringError, _knn, _pairwise


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
