"""Clustering quality against known identities: BCubed, pairwise, NMI, counts, VAL@FAR.

Every score takes ``labels_true`` (any hashable labels: identity names or ids) and
``labels_pred`` (cluster ids, ``-1`` = not assigned). A face left unassigned is scored as a
cluster of its own, never as a member of one big "noise" cluster: putting a face aside costs
recall, it does not earn precision.

Scores are computed from the non-empty cells of the (cluster, identity) contingency table, so
they are linear in the number of faces; ``tests/test_metrics.py`` checks each against a plain
loop over faces or pairs.

>>> bcubed(["a", "a", "b"], [0, 0, 0]).precision  # doctest: +ELLIPSIS
0.555...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "PRF", "bcubed", "pairwise", "nmi", "cluster_counts", "val_at_far", "val_at_far_from_distances", "assign_labels",
    "noise_as_singletons", "score_clustering",
]


@dataclass(frozen=True)
class PRF:
    """Precision, recall and their harmonic mean."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 0.0 if total == 0 else 2 * self.precision * self.recall / total


def noise_as_singletons(labels_pred: Sequence[int] | np.ndarray) -> np.ndarray:
    """``labels_pred`` with every ``-1`` replaced by a fresh cluster id of its own."""
    labels = np.asarray(labels_pred, dtype=np.int64).copy()
    noise = labels < 0
    start = labels.max() + 1 if len(labels) else 0
    labels[noise] = max(start, 0) + np.arange(noise.sum())
    return labels


def _cells(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-empty contingency cells as (cluster index, identity index, count) plus the sizes of
    every cluster and every identity."""
    truth = np.asarray(labels_true)
    pred = np.asarray(labels_pred)
    if truth.shape != pred.shape or truth.ndim != 1:
        raise ValueError(f"labels_true and labels_pred must be 1-D of the same length, "
                         f"got shapes {truth.shape} and {pred.shape}")
    _, identity = np.unique(truth, return_inverse=True)
    _, cluster = np.unique(noise_as_singletons(pred), return_inverse=True)
    pairs, counts = np.unique(np.stack([cluster, identity]), axis=1, return_counts=True)
    return pairs[0], pairs[1], counts, np.bincount(cluster), np.bincount(identity)


def bcubed(labels_true, labels_pred) -> PRF:
    """BCubed precision and recall (Amigó et al. 2009), averaged over faces.

    A face's precision is the share of its cluster (itself included) with its identity; its
    recall is the share of its identity (itself included) in its cluster.
    """
    if len(labels_true) == 0:
        return PRF(1.0, 1.0)
    cluster, identity, counts, cluster_sizes, identity_sizes = _cells(labels_true, labels_pred)
    # Every face of a cell shares the same precision count/|cluster|; summing over the cell's
    # faces gives count²/|cluster|.
    n = cluster_sizes.sum()
    precision = np.sum(counts.astype(np.float64) ** 2 / cluster_sizes[cluster]) / n
    recall = np.sum(counts.astype(np.float64) ** 2 / identity_sizes[identity]) / n
    return PRF(float(precision), float(recall))


def _pairs(sizes: np.ndarray) -> float:
    sizes = sizes.astype(np.float64)
    return float(np.sum(sizes * (sizes - 1) / 2))


def pairwise(labels_true, labels_pred) -> PRF:
    """Pairwise precision (share of same-cluster pairs that are the same person) and recall
    (share of same-person pairs put in the same cluster). With no pair to judge, a score is 1."""
    if len(labels_true) == 0:
        return PRF(1.0, 1.0)
    _, _, counts, cluster_sizes, identity_sizes = _cells(labels_true, labels_pred)
    together, predicted, actual = _pairs(counts), _pairs(cluster_sizes), _pairs(identity_sizes)
    return PRF(together / predicted if predicted else 1.0, together / actual if actual else 1.0)


def _entropy(sizes: np.ndarray, n: float) -> float:
    p = sizes[sizes > 0].astype(np.float64) / n
    return float(-np.sum(p * np.log(p)))


def nmi(labels_true, labels_pred) -> float:
    """Normalised mutual information, I(T;C) / mean(H(T), H(C)) (scikit-learn's default
    "arithmetic" normalisation). 1 when both partitions are the same; defined as 1 when both
    are a single group."""
    if len(labels_true) == 0:
        return 1.0
    cluster, identity, counts, cluster_sizes, identity_sizes = _cells(labels_true, labels_pred)
    n = float(cluster_sizes.sum())
    h_true, h_pred = _entropy(identity_sizes, n), _entropy(cluster_sizes, n)
    if h_true == 0 and h_pred == 0:
        return 1.0
    counts = counts.astype(np.float64)
    mutual = np.sum(counts / n * np.log(counts * n / (cluster_sizes[cluster] * identity_sizes[identity])))
    # Rounding can push I a hair above H; clip so identical partitions give exactly 1.
    return float(min(1.0, max(0.0, mutual / ((h_true + h_pred) / 2))))


def cluster_counts(labels_true, labels_pred) -> dict[str, int]:
    """How many people were found among scored faces (clusters other than ``-1``), how many
    identities there are, and how many faces were left unassigned."""
    pred = np.asarray(labels_pred, dtype=np.int64)
    return {
        "people": int(len(np.unique(pred[pred >= 0]))),
        "identities": int(len(np.unique(np.asarray(labels_true)))),
        "unassigned": int(np.sum(pred < 0)),
    }


def val_at_far(vectors: np.ndarray, labels, fars: Sequence[float] = (1e-3, 1e-2),
               max_faces: int = 8000, seed: int = 0) -> dict[float, tuple[float, float]]:
    """FaceNet's validation rate at a false-accept rate: ``{far: (VAL, threshold)}``.

    Over all pairs of faces, a pair is accepted when its Euclidean distance is below the
    threshold. The threshold is the largest that accepts at most ``far`` of the different-person
    pairs; VAL is the share of same-person pairs it accepts. Above ``max_faces`` faces a seeded
    random subset is used, so memory stays bounded (pair distances are computed in blocks).
    """
    x = np.asarray(vectors, dtype=np.float32)
    truth = np.unique(np.asarray(labels), return_inverse=True)[1]
    if x.ndim != 2 or len(x) != len(truth):
        raise ValueError(f"vectors must be (n, d) with one label per row, got {x.shape} and {len(truth)} labels")
    if len(x) > max_faces:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_faces, replace=False))
        x, truth = x[keep], truth[keep]
    same_parts, diff_parts = [], []
    block = 1024
    for start in range(0, len(x), block):
        rows = slice(start, start + block)
        d = np.sqrt(np.maximum(
            np.sum(x[rows] ** 2, 1)[:, None] + np.sum(x ** 2, 1)[None, :] - 2 * x[rows] @ x.T, 0))
        i, j = np.nonzero(np.arange(start, start + len(d))[:, None] < np.arange(len(x))[None, :])
        same = truth[start + i] == truth[j]
        same_parts.append(d[i, j][same])
        diff_parts.append(d[i, j][~same])
    same = np.concatenate(same_parts) if same_parts else np.zeros(0, np.float32)
    diff = np.concatenate(diff_parts) if diff_parts else np.zeros(0, np.float32)
    return val_at_far_from_distances(same, diff, fars)


def val_at_far_from_distances(same: np.ndarray, different: np.ndarray,
                              fars: Sequence[float] = (1e-3, 1e-2)) -> dict[float, tuple[float, float]]:
    """:func:`val_at_far` from the pair distances already computed: same-person, different-person."""
    same = np.asarray(same)
    diff = np.sort(np.asarray(different))
    out: dict[float, tuple[float, float]] = {}
    for far in fars:
        allowed = int(np.floor(far * len(diff)))
        # Accepting d < diff[allowed] lets through at most `allowed` different-person pairs.
        threshold = float(diff[allowed]) if allowed < len(diff) else float("inf")
        val = float(np.mean(same < threshold)) if len(same) else float("nan")
        out[far] = (val, threshold)
    return out


def assign_labels(groups, photo_labels, labels_pred, face_sizes) -> np.ndarray:
    """Which face of each labelled photo carries the photo's label: a boolean mask over faces.

    Labels belong to photos, not faces. Of a photo's faces, the label goes to the one whose
    cluster holds the most *other* photos of that label; ties go to the largest face, then to
    the first. The other faces are bystanders: clustered, not scored. A photo whose label is
    ``None`` or ``""`` is not labelled.

    ``groups`` is the photo of each face, ``photo_labels`` the label of each face's photo
    (repeated for every face of it), ``labels_pred`` the clusters (``-1`` = unassigned, which
    holds no other photo), ``face_sizes`` the face areas.
    """
    photo = np.asarray(groups)
    raw = np.asarray(photo_labels, dtype=object)
    cluster = np.asarray(labels_pred, dtype=np.int64)
    size = np.asarray(face_sizes, dtype=np.float64)
    n = len(photo)
    if not (len(raw) == len(cluster) == len(size) == n):
        raise ValueError("groups, photo_labels, labels_pred and face_sizes must have one entry per face")
    labelled = np.asarray((raw != None) & (raw != ""), dtype=bool)  # noqa: E711 (elementwise)
    if not labelled.any():
        return np.zeros(n, dtype=bool)
    label = np.full(n, -1, np.int64)
    label[labelled] = np.unique(raw[labelled].astype(str), return_inverse=True)[1]
    photo_idx = np.unique(photo, return_inverse=True)[1]

    # Photos of each (cluster, label), each photo counted once however many faces it has there.
    member = labelled & (cluster >= 0)
    triples = np.unique(np.stack([cluster[member], label[member], photo_idx[member]]), axis=1)
    cells, photos_in_cell = np.unique(triples[:2], axis=1, return_counts=True)
    score = np.zeros(n, np.int64)
    if cells.size:
        # Look each face's (cluster, label) up among the cells; its own photo is one of them.
        key_cells = cells[0] * (label.max() + 1) + cells[1]
        key_faces = cluster * (label.max() + 1) + label
        at = np.searchsorted(key_cells, key_faces)
        at = np.minimum(at, len(key_cells) - 1)
        found = member & (key_cells[at] == key_faces)
        score[found] = photos_in_cell[at[found]] - 1

    # Best face per photo: highest score, then largest, then first.
    order = np.lexsort((np.arange(n), -size, -score, photo_idx))
    order = order[labelled[order]]
    _, first = np.unique(photo_idx[order], return_index=True)
    mask = np.zeros(n, dtype=bool)
    mask[order[first]] = True
    return mask


def score_clustering(labels_true, labels_pred) -> dict[str, float]:
    """The benchmark's row: BCubed P/R/F1, pairwise P/R/F1, NMI and the counts."""
    b, p = bcubed(labels_true, labels_pred), pairwise(labels_true, labels_pred)
    return {
        "bcubed_precision": b.precision, "bcubed_recall": b.recall, "bcubed_f1": b.f1,
        "pairwise_precision": p.precision, "pairwise_recall": p.recall, "pairwise_f1": p.f1,
        "nmi": nmi(labels_true, labels_pred), **cluster_counts(labels_true, labels_pred),
    }
