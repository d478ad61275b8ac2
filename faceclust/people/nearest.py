"""Nearest-neighbour searches of the incremental clustering: a new face's nearest assigned
faces among the faces of its nearest people (a library of a million), and the unknown faces
near the new ones. Unit vectors; exact within what is searched."""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Rows scaled to unit length (a new array, or ``x`` itself with ``in_place``)."""
    norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", x, x)), 1e-12)[:, None]
    if in_place:
        x /= norms
        return x
    return x / norms


def nearest_among_people(known: np.ndarray, people: np.ndarray, queries: np.ndarray, k: int,
                         candidates: int = 20, batch: int = 32, rows: np.ndarray | None = None):
    """Each query's ``k`` nearest rows of ``known`` (unit vectors, person of each in ``people``)
    among the faces of its ``candidates`` people with the nearest mean descriptor: a
    :class:`~faceclust.catalog.index.Neighbours` of row numbers, nearest first (``inf`` / -1
    pad). Exact within those people; a face of a person whose mean is farther is not seen (the
    price of not comparing every query with every face). ``rows``: the known faces are these
    rows of ``known`` (numbers returned are positions in ``rows``), so a large table is not
    copied."""
    from scipy.sparse import csr_matrix

    from faceclust.catalog.index import Neighbours, nearest_rows

    if known.dtype != np.float32:
        known = known.astype(np.float32)
    rows = np.arange(len(known)) if rows is None else np.asarray(rows, np.int64)
    queries = np.ascontiguousarray(queries, np.float32)
    order = np.argsort(people, kind="stable")
    labels, starts, counts = np.unique(people[order], return_index=True, return_counts=True)
    person_of_row = np.empty(len(rows), np.int64)
    person_of_row[order] = np.repeat(np.arange(len(labels)), counts)
    # Each person's mean by one sparse product (no copy of the faces in person order).
    members = csr_matrix((np.ones(len(rows), np.float32), (person_of_row, rows)), shape=(len(labels), len(known)))
    means = np.asarray(members @ known, np.float32)
    means = unit_rows(means, in_place=True)
    take = min(candidates, len(labels))
    # The nearest people of every query at once (FAISS: matrix products and a heap per query).
    nearest_people = nearest_rows(queries, means, take)
    distances = np.full((len(queries), k), np.inf, np.float32)
    rows_out = np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(queries), batch):
        q = queries[start:start + batch]
        top = nearest_people[start:start + batch]
        chosen = np.unique(top[top >= 0])
        picked = np.concatenate([order[starts[c]:starts[c] + counts[c]] for c in chosen.tolist()])
        # Which of the chosen people each query may look at, then its distances to their faces.
        allowed = np.zeros((len(q), len(chosen)), bool)
        valid = top >= 0
        allowed[np.nonzero(valid)[0], np.searchsorted(chosen, top[valid])] = True
        d = np.sqrt(np.maximum(2 - 2 * (q @ known[rows[picked]].T), 0))
        d[~allowed[:, np.searchsorted(chosen, person_of_row[picked])]] = np.inf
        kk = min(k, len(picked))
        near = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < len(picked) else np.tile(np.arange(len(picked)), (len(q), 1))
        nd = np.take_along_axis(d, near, axis=1)
        sort = np.argsort(nd, axis=1, kind="stable")
        near, nd = np.take_along_axis(near, sort, axis=1), np.take_along_axis(nd, sort, axis=1)
        distances[start:start + len(q), :kk] = nd
        rows_out[start:start + len(q), :kk] = np.where(np.isfinite(nd), picked[near], -1)
    return Neighbours(distances, rows_out)


def near_any_of(vectors: np.ndarray, rows: np.ndarray, others: np.ndarray, k: int) -> np.ndarray:
    """Those of ``others`` (row numbers) among the ``k`` nearest others of any of ``rows``."""
    if not len(rows) or len(others) <= k:
        return others
    from faceclust.catalog.index import nearest_rows

    found = nearest_rows(unit_rows(vectors[rows]), unit_rows(vectors[others]), k)
    return others[np.unique(found[found >= 0])]
