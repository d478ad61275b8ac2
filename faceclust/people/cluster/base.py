"""The estimator every clusterer extends: the registry, parameter checks, the constraints applied
after each method's own algorithm (scikit-learn's contract: ``fit`` returns ``self``, state in
``labels_``)."""

from __future__ import annotations

import inspect

import numpy as np

from faceclust.people.cluster.constraints import (
    Constraints,
    merge_must_link,
    relabel_by_size,
    split_conflicts,
)
from faceclust.people.cluster.graph import ClusteringError, check_vectors, normalize_rows
from faceclust.registry import Registry

clusterers: Registry["Clusterer"] = Registry("clusterer")

DEFAULT_METHOD = "agglomerative"
# A person needs two photos; a face seen once goes to the unknown bucket.
DEFAULT_MIN_FACES = 2


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


