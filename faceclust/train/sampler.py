"""P x K batch sampler: P identities with K faces each, plus optional random extra faces.

Plain Python and numpy, no torch, so it can be used and tested without a model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np


class PKSampler:
    """Yield batches of face indices: ``p`` identities x ``k`` distinct faces, then ``extras`` random faces.

    ``negatives_of`` maps an identity to faces known not to be it (faces the user rejected from
    that person); when the identity is in a batch, up to ``k`` of them join it as negatives.

    Identities with fewer than ``k`` faces are skipped as batch identities (they can still appear
    among the extras). Sampling them with replacement would put the same face twice in a batch: the
    anchor-positive pair made of a face and its copy has distance 0, so it teaches nothing and only
    inflates the count of satisfied triplets. Every batch identity therefore has ``k`` *distinct*
    faces. The extras are drawn without replacement from the faces not already in the batch, of any
    identity; they mostly serve as additional negatives.

    >>> batches = list(PKSampler([0, 0, 1, 1, 2, 2], p=2, k=2, num_batches=3, seed=0))
    >>> [len(b) for b in batches]
    [4, 4, 4]
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, p: int, k: int, extras: int = 0,
                 num_batches: int = 100, seed: int | None = None,
                 negatives_of: Mapping[int, Sequence[int]] | None = None):
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(f"labels must be one label per face (1-D), got shape {labels.shape}")
        for name, value, low in (("p", p, 1), ("k", k, 2), ("extras", extras, 0),
                                 ("num_batches", num_batches, 1)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        identities, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        eligible = np.flatnonzero(counts >= k)
        if len(eligible) < p:
            raise ValueError(f"p={p} identities with at least k={k} faces are needed, but only "
                             f"{len(eligible)} have that many; lower p or k, or label more faces")
        if p * k + extras > len(labels):
            raise ValueError(f"a batch of p*k + extras = {p * k + extras} faces needs that many "
                             f"faces, there are {len(labels)}; lower extras")
        self.labels = labels
        self.p, self.k, self.extras, self.num_batches, self.seed = p, k, extras, num_batches, seed
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)])
        self._faces_of = [order[starts[i]:starts[i + 1]] for i in eligible]
        negatives_of = negatives_of or {}
        self._negatives_of = [np.asarray(negatives_of.get(identities[i].item(), ()), np.int64) for i in eligible]

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        # A fresh generator per iteration: iterating twice gives the same batches when seeded.
        rng = np.random.default_rng(self.seed)
        n = len(self.labels)
        for _ in range(self.num_batches):
            chosen = rng.choice(len(self._faces_of), size=self.p, replace=False)
            batch = np.concatenate([rng.choice(self._faces_of[i], size=self.k, replace=False)
                                    for i in chosen])
            known = [rng.choice(self._negatives_of[i], size=min(self.k, len(self._negatives_of[i])), replace=False)
                     for i in chosen if len(self._negatives_of[i])]
            if known:
                batch = np.concatenate([batch, np.setdiff1d(np.concatenate(known), batch)])
            if self.extras:
                rest = np.setdiff1d(np.arange(n), batch, assume_unique=True)
                batch = np.concatenate([batch, rng.choice(rest, size=self.extras, replace=False)])
            yield batch.tolist()
