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
Only :mod:`faceclust.catalog.index` imports faiss; k-NN graphs come from its :func:`knn_graph`.

One module per method (``agglomerative``, ``kmeans``, ``density`` for HDBSCAN,
``chinese_whispers``), each one registered class; ``constraints`` and ``graph`` are shared.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# The methods register themselves with ``clusterers`` when imported.
from faceclust.people.cluster import adaptive, agglomerative, chinese_whispers, density, kmeans  # noqa: F401
from faceclust.people.cluster.base import (
    DEFAULT_METHOD,
    DEFAULT_MIN_FACES,
    Clusterer,
    ClusteringError,
    _positive,
    clusterers,
)
from faceclust.people.cluster.constraints import (
    Constraints,
    _must_link_ids,
    drop_small_clusters,
    merge_must_link,
    relabel_by_size,
    split_conflicts,
)
from faceclust.people.cluster.graph import normalize_rows

__all__ = [
    "clusterers", "cluster_faces", "Clusterer", "ClusteringError", "Constraints",
    "DEFAULT_METHOD", "DEFAULT_MIN_FACES", "merge_must_link", "split_conflicts",
    "drop_small_clusters", "relabel_by_size", "normalize_rows",
]


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
