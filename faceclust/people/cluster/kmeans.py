"""k-means (scikit-learn), for a known number of people."""

from __future__ import annotations

import numpy as np

from faceclust.people.cluster.base import Clusterer, _positive, clusterers
from faceclust.people.cluster.constraints import Constraints
from faceclust.people.cluster.graph import ClusteringError


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
