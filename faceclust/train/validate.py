"""Validation on held-out people: FaceNet's VAL at FAR, the best-threshold accuracy, the
threshold itself and the clustering it gives.

Distances are Euclidean between L2-normalised descriptors (chord distances), the space the
triplet loss trains and clustering works in.
"""

from __future__ import annotations

import numpy as np

FARS = (1e-3, 1e-2)


def pair_distances(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(same-person distances, different-person distances) over all pairs."""
    x = np.asarray(vectors, np.float64)
    sq = (x * x).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))
    i, j = np.triu_indices(len(x), 1)
    same = labels[i] == labels[j]
    return d[i, j][same], d[i, j][~same]


MAX_FACES = 4000  # all pairs of this many faces: 8M distances, ~130 MB at most


def validate(raw: np.ndarray, labels: np.ndarray, base: dict | None = None, max_faces: int = MAX_FACES) -> dict:
    """Figures for descriptors ``raw`` (not normalised) of held-out faces with ``labels``.

    ``base`` is the same dict for the starting model: it sets ``distance_scale``, how this
    model's best threshold compares with the starting model's, which scales the clustering
    thresholds (also used here, to cluster the held-out faces)."""
    from faceclust.evaluate.metrics import score_clustering, val_at_far_from_distances
    from faceclust.find.calibration import best_accuracy
    from faceclust.people import ClusterOptions
    from faceclust.people.cluster import cluster_faces

    labels = np.asarray(labels)
    if len(labels) > max_faces:  # a fixed subset, the same every epoch, so epochs compare
        keep = np.sort(np.random.default_rng(0).choice(len(labels), max_faces, replace=False))
        raw, labels = raw[keep], labels[keep]
    norms = np.linalg.norm(raw, axis=1)
    unit = (raw / np.maximum(norms[:, None], 1e-12)).astype(np.float32)
    row: dict = {"faces": int(len(unit)), "people": int(len(np.unique(labels))), "mean_norm": float(norms.mean())}
    same, different = pair_distances(unit, labels)
    for far, (val, threshold) in val_at_far_from_distances(same, different, FARS).items():
        row[f"val_at_far_{far:g}"] = val
        row[f"threshold_at_far_{far:g}"] = threshold
    row["accuracy"], row["threshold"] = best_accuracy(same, different)
    # How far apart this model puts faces compared with the starting one: the ratio of the
    # thresholds that accept 1% of different-person pairs (steadier than the accuracy optimum,
    # whose plateau is flat). Clustering thresholds scale by it, keeping their false-merge rate.
    scale = row["threshold_at_far_0.01"] / base["threshold_at_far_0.01"] if base else 1.0
    row["distance_scale"] = scale
    options = ClusterOptions(distance_scale=scale).clusterer_options() if scale != 1.0 else {}
    predicted = cluster_faces(unit, **options)
    scores = score_clustering(labels, predicted)
    row.update({f"cluster_{k}": v for k, v in scores.items() if isinstance(v, (int, float))})
    return row


def better(a: dict, b: dict) -> bool:
    """Is validation ``a`` better than ``b``: VAL at FAR=1e-3, then at 1e-2, then accuracy."""
    key = lambda r: tuple(r.get(k, float("-inf")) for k in ("val_at_far_0.001", "val_at_far_0.01", "accuracy"))  # noqa: E731
    return key(a) > key(b)
