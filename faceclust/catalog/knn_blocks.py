"""Every row's nearest rows in a large set: an inverted file searched by matrix products.

FAISS's inverted-file search compares each query with each vector of the lists it probes, one
query at a time; for a k-NN graph (every row a query) at a million rows that is memory-bound
(the lists are read again for every query) and took 20 minutes on two cores. Here the work is
turned around: for each list, every query that probes it is compared with all its rows at
once by one matrix product, so the list is read once per round and the products run at BLAS
speed. Which lists a row probes is the same as in an inverted file (its ``probes`` nearest
centres), so the recall is an inverted file's; a candidate only costs work when it beats the
row's current k-th nearest (the row's own list is searched first, so that bound is tight).

The coarse centres come from :mod:`faceclust.catalog.index` (FAISS's k-means); this module
only needs torch.
"""

from __future__ import annotations

import numpy as np

# A row's probes are visited in rounds, nearest lists first, so its k-th distance shrinks early
# and later, farther lists rarely hold a better candidate.
ROUND_EDGES = (1, 4, 12, 32, 64)
# Distances computed at once, at most (64 MB of float32): a list of many identical faces (a
# backup's copies) cannot be split by k-means, and its block must not grow with its square.
BLOCK = 1 << 24


def blocked_knn(x: np.ndarray, near: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows among the rows of the lists it probes: (squared
    distances float32 (n, k), row numbers int64 (n, k)), nearest first, the row itself
    included; ``inf`` and -1 where fewer rows were seen.

    ``near[i]`` are the lists row i probes, its own list (the nearest centre) first; a row
    belongs to its own list only.
    """
    import torch

    from faceclust.cpu import threads

    torch.set_num_threads(threads())
    n, probes = near.shape
    nlist = int(near.max()) + 1 if n else 0
    own = near[:, 0]
    order = np.argsort(own, kind="stable")  # position in list order -> row
    bounds = np.searchsorted(own[order], np.arange(nlist + 1))
    vectors = torch.from_numpy(np.ascontiguousarray(x[order], dtype=np.float32))
    squared = (vectors * vectors).sum(1)
    near_sorted = near[order]
    best_d = torch.full((n, k), float("inf"))
    best_i = torch.full((n, k), -1, dtype=torch.int64)
    with torch.no_grad():
        for lst in range(nlist):  # each row's own list: all its pairs, in blocks of rows
            a, b = int(bounds[lst]), int(bounds[lst + 1])
            kk, step = min(k, b - a), max(1, BLOCK // max(1, b - a))
            for r in range(a, b, step):
                z = min(b, r + step)
                block = torch.addmm(squared[a:b][None, :], vectors[r:z], vectors[a:b].T, alpha=-2.0)
                block += squared[r:z][:, None]
                values, where = torch.topk(block, kk, dim=1, largest=False)
                best_d[r:z, :kk] = values
                best_i[r:z, :kk] = where + a
        edges = sorted({e for e in ROUND_EDGES if e < probes} | {probes})
        for lo, hi in zip(edges[:-1], edges[1:]):
            _probe_round(vectors, squared, bounds, near_sorted[:, lo:hi], best_d, best_i)
    distances = best_d.clamp_min_(0).numpy()
    rows = best_i.numpy()
    out_d = np.empty_like(distances)
    out_i = np.empty_like(rows)
    out_d[order] = distances
    out_i[order] = np.where(rows >= 0, order[np.maximum(rows, 0)], -1)
    return out_d, out_i


def _probe_round(vectors, squared, bounds: np.ndarray, lists: np.ndarray, best_d, best_i) -> None:
    """Compare every row with the rows of the lists in its slice of probes, list by list,
    keeping each row's ``k`` best (in place)."""
    import torch

    n, width = lists.shape
    flat = lists.ravel()
    by_list = np.argsort(flat, kind="stable")
    queries = (by_list // width).astype(np.int64)
    starts = np.searchsorted(flat[by_list], np.arange(len(bounds)))
    k = best_d.shape[1]
    for lst in range(len(bounds) - 1):
        qa, qz = int(starts[lst]), int(starts[lst + 1])
        a, b = int(bounds[lst]), int(bounds[lst + 1])
        if a == b:
            continue
        step = max(1, BLOCK // (b - a))
        for start in range(qa, qz, step):
            q = torch.from_numpy(queries[start:min(qz, start + step)])
            block = torch.addmm(squared[a:b][None, :], vectors[q], vectors[a:b].T, alpha=-2.0)
            block += squared[q][:, None]
            better = (block < best_d[q, k - 1:k]).any(1)
            if not bool(better.any()):
                continue
            hit = better.nonzero().squeeze(1)
            rows = q[hit]
            values = torch.cat([best_d[rows], block[hit]], 1)
            ids = torch.cat([best_i[rows], torch.arange(a, b).expand(len(hit), b - a)], 1)
            values, where = torch.topk(values, k, dim=1, largest=False)
            best_d[rows] = values
            best_i[rows] = torch.gather(ids, 1, where)
