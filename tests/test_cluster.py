"""Clusterers: the contract every registered one keeps, the constraints on every output, and the
vectorised pieces checked against plain loops on a few points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from faceclust.catalog.index import knn_graph
from faceclust.errors import FaceclustError, UnknownNameError
from faceclust.people.cluster import (
    DEFAULT_METHOD,
    ClusteringError,
    Constraints,
    cluster_faces,
    clusterers,
    drop_small_clusters,
    merge_must_link,
    relabel_by_size,
)
from faceclust.people.cluster.agglomerative import _attach_stragglers, _dense_linkage
from faceclust.people.cluster.chinese_whispers import _heaviest_label
from faceclust.people.cluster.graph import _pairwise

METHODS = clusterers.names()
# Options that make each method see the blobs' five people; None = its defaults.
FOR_BLOBS = {"kmeans": {"n_clusters": 5}}


def blobs(n_per: int = 12, people: int = 5, dim: int = 128, seed: int = 0, spread: float = 0.25):
    """Unit-norm "faces" of a few people: same-person distances ~``spread``, others ~1.4."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x, y = make_blobs(n_samples=[n_per] * people, centers=centres, cluster_std=spread / np.sqrt(2 * dim),
                      random_state=seed)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y


def same_photo_pairs_apart(labels, groups) -> bool:
    """Plain check over every pair: faces of one photo never share a cluster."""
    for i, j in itertools.combinations(range(len(labels)), 2):
        if groups[i] == groups[j] and labels[i] >= 0 and labels[i] == labels[j]:
            return False
    return True


# -- the contract, for every registered clusterer ---------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_contract(method):
    x, _ = blobs()
    model = clusterers.create(method, **FOR_BLOBS.get(method, {}))
    assert model.fit(x) is model
    labels = model.labels_
    assert labels.dtype == np.int64 and labels.shape == (len(x),)
    assert labels.min() >= -1
    assigned = np.unique(labels[labels >= 0])
    assert assigned.tolist() == list(range(len(assigned)))  # consecutive ids, -1 for the rest
    again = clusterers.create(method, **FOR_BLOBS.get(method, {})).fit(x).labels_
    assert np.array_equal(labels, again)  # deterministic


@pytest.mark.parametrize("method", METHODS)
def test_blobs_recovered(method):
    x, y = blobs()
    labels = clusterers.create(method, **FOR_BLOBS.get(method, {})).fit(x).labels_
    assert adjusted_rand_score(y, labels) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_tiny_inputs(method):
    empty = clusterers.create(method).fit(np.zeros((0, 8), np.float32)).labels_
    assert empty.dtype == np.int64 and empty.shape == (0,)
    one = clusterers.create(method).fit(np.ones((1, 8), np.float32)).labels_
    assert one.shape == (1,) and one[0] in (-1, 0)


@pytest.mark.parametrize("method", METHODS)
def test_same_photo_never_one_person(method):
    # Each photo holds two faces of the same person, so every method's first answer breaks it.
    x, y = blobs(n_per=10, people=4, seed=1)
    groups = np.arange(len(x)) // 2
    labels = clusterers.create(method, **FOR_BLOBS.get(method, {})).fit(x, groups).labels_
    assert same_photo_pairs_apart(labels, groups)


@pytest.mark.parametrize("method", METHODS)
def test_cannot_link_and_must_link(method):
    x, y = blobs(n_per=10, people=3, seed=2)
    a, b = np.nonzero(y == 0)[0][:2]
    c = np.nonzero(y == 1)[0][0]
    labels = clusterers.create(method, **FOR_BLOBS.get(method, {})).fit(
        x, cannot_link=[(a, b)], must_link=[[a, c]]).labels_
    assert labels[a] != labels[b] or labels[a] < 0
    assert labels[a] == labels[c] and labels[a] >= 0


def test_bad_input_and_parameters():
    with pytest.raises(ClusteringError):
        clusterers.create("agglomerative").fit(np.zeros(5))
    with pytest.raises(ClusteringError, match="NaN"):
        clusterers.create("agglomerative").fit(np.full((3, 4), np.nan))
    model = clusterers.create("agglomerative", threshold=-1)  # stored, not checked, in __init__
    assert model.threshold == -1
    with pytest.raises(ValueError, match="threshold"):
        model.fit(blobs()[0])
    with pytest.raises(ClusteringError, match="n_clusters"):
        clusterers.create("kmeans", n_clusters=100).fit(blobs(n_per=2)[0])
    with pytest.raises(UnknownNameError, match="agglomerative"):
        cluster_faces(blobs()[0], method="nope")
    with pytest.raises(ClusteringError, match="options are"):
        cluster_faces(blobs()[0], threshhold=0.3)
    with pytest.raises(ClusteringError, match="groups"):
        clusterers.create("agglomerative").fit(blobs()[0], groups=[1, 2])
    with pytest.raises(ClusteringError, match="must_link"):  # a contradiction in manual decisions
        clusterers.create("agglomerative").fit(blobs()[0], groups=[0, 0] + list(range(2, 60)),
                                               must_link=[[0, 1]])
    assert issubclass(ClusteringError, FaceclustError) and issubclass(ClusteringError, ValueError)


# -- cluster_faces: the library default and min_faces ----------------------------------------------


def test_cluster_faces_default_and_min_faces():
    x, y = blobs(n_per=6, people=3, seed=3)
    pair, _ = blobs(n_per=2, people=1, seed=4)
    x = np.vstack([x, pair])
    labels = cluster_faces(x)
    assert clusterers.create(DEFAULT_METHOD) is not None
    assert (labels[-2:] >= 0).all() and labels[-2] == labels[-1]  # min_faces=2 keeps a pair
    labels = cluster_faces(x, min_faces=3)
    assert (labels[-2:] == -1).all()
    assert adjusted_rand_score(y, labels[:-2]) == 1.0
    kept = cluster_faces(x, min_faces=3, must_link=[[len(x) - 2, len(x) - 1]])
    assert kept[-2] == kept[-1] >= 0  # a person the user confirmed stays


def test_options_of_none_fall_back_to_defaults():
    x, _ = blobs()
    assert np.array_equal(cluster_faces(x, threshold=None), cluster_faces(x))


def test_split_keeps_each_face_with_its_nearest_members():
    # Person A (10 faces) and, in A's first photo, a bystander close enough to join A's cluster.
    x, _ = blobs(n_per=10, people=1, seed=5, spread=0.2)
    bystander = x[0] + 0.15 * np.random.default_rng(0).normal(size=x.shape[1]).astype(np.float32) / np.sqrt(128)
    x = np.vstack([x, bystander / np.linalg.norm(bystander)])
    groups = np.r_[np.arange(10), 0]
    alone = clusterers.create("agglomerative", threshold=0.5).fit(x).labels_
    assert len(set(alone.tolist())) == 1  # without the photo, the bystander joins A
    labels = clusterers.create("agglomerative", threshold=0.5).fit(x, groups).labels_
    assert len(set(labels[:10].tolist())) == 1 and labels[10] != labels[0]


# -- vectorised pieces against plain loops ---------------------------------------------------------


def linkage_loop(dist, threshold, conflict, linkage):
    """Textbook agglomeration: merge the closest allowed pair of clusters until none is within
    the threshold; a pair holding a conflicting pair of points is never merged."""
    clusters = [[i] for i in range(len(dist))]

    def between(a, b):
        values = [dist[i][j] for i in a for j in b]
        if any(conflict[i][j] for i in a for j in b):
            return np.inf
        return {"average": np.mean, "complete": np.max, "single": np.min}[linkage](values)

    while len(clusters) > 1:
        best = min(((between(a, b), ia, ib) for (ia, a), (ib, b) in
                    itertools.combinations(enumerate(clusters), 2)), key=lambda t: t[0])
        if not best[0] <= threshold:
            break
        _, ia, ib = best
        clusters[ia] = clusters[ia] + clusters[ib]
        del clusters[ib]
    labels = np.empty(len(dist), np.int64)
    for k, members in enumerate(clusters):
        labels[members] = k
    return labels


@pytest.mark.parametrize("linkage", ["average", "complete", "single"])
@pytest.mark.parametrize("seed", range(4))
def test_dense_linkage_matches_loop(linkage, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(14, 3)).astype(np.float32)
    dist = _pairwise(x)
    conflict = np.zeros((14, 14), bool)
    a, b = rng.choice(14, 2, replace=False)
    conflict[a, b] = conflict[b, a] = True
    threshold = float(np.median(dist))
    got = _dense_linkage(dist, threshold, conflict, linkage)
    want = linkage_loop(dist.astype(np.float64), threshold, conflict, linkage)
    assert adjusted_rand_score(want, got) == 1.0


def test_agglomerative_is_exact_average_linkage():
    # With the whole neighbourhood in the k-NN graph, the component split loses nothing.
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    x, _ = blobs(n_per=8, people=6, seed=6, spread=0.9)
    want = fcluster(linkage(pdist(x), "average"), 0.6, "distance")
    got = clusterers.create("agglomerative", threshold=0.6, attach_threshold=None,
                            n_neighbors=len(x)).fit(x).labels_
    assert adjusted_rand_score(want, got) == 1.0


def test_agglomerative_blocks_larger_than_max_block():
    x, y = blobs(n_per=30, people=2, seed=7)
    labels = clusterers.create("agglomerative", max_block=16, attach_threshold=None).fit(x).labels_
    assert np.bincount(labels).max() <= 16  # an oversized component is cut: a person may split
    assert not set(labels[y == 0].tolist()) & set(labels[y == 1].tolist())


def test_hdbscan_matches_the_package_on_a_complete_graph():
    import hdbscan

    x, _ = blobs(n_per=10, people=4, seed=8, spread=0.6)
    noise = np.random.default_rng(8).normal(size=(6, x.shape[1])).astype(np.float32)
    x = np.vstack([x, noise / np.linalg.norm(noise, axis=1, keepdims=True)])
    want = hdbscan.HDBSCAN(min_cluster_size=3, min_samples=2).fit(x).labels_
    got = clusterers.create("hdbscan", min_cluster_size=3, min_samples=2, n_neighbors=len(x) - 1).fit(x).labels_
    assert adjusted_rand_score(want, got) == 1.0 and np.array_equal(want < 0, got < 0)


def heaviest_label_loop(n, src, neighbour_label, weight):
    out = list(range(n))
    for node in range(n):
        totals = {}
        for s, lab, w in zip(src, neighbour_label, weight):
            if s == node:
                totals[lab] = totals.get(lab, 0.0) + w
        if totals:
            out[node] = min(totals, key=lambda lab: (-totals[lab], lab))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_heaviest_label_matches_loop(seed):
    rng = np.random.default_rng(seed)
    n, m = 10, 40
    src, labels = rng.integers(0, n, m), rng.integers(0, 4, m)
    weight = rng.integers(1, 3, m).astype(float)
    assert _heaviest_label(n, src, labels, weight).tolist() == heaviest_label_loop(n, src, labels, weight)


def test_chinese_whispers_is_seeded():
    x, y = blobs(seed=9)
    a = clusterers.create("chinese-whispers", seed=1).fit(x).labels_
    b = clusterers.create("chinese-whispers", seed=1).fit(x).labels_
    assert np.array_equal(a, b) and adjusted_rand_score(y, a) == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_constraint_functions_match_loops(seed):
    rng = np.random.default_rng(seed)
    n = 16
    labels = rng.integers(-1, 5, n)
    groups = rng.integers(0, 10, n)
    pairs = [tuple(p) for p in rng.choice(n, size=(3, 2), replace=False)]
    constraints = Constraints.build(n, groups, pairs)
    want = sorted({int(labels[i]) for i, j in itertools.combinations(range(n), 2)
                   if labels[i] >= 0 and labels[i] == labels[j]
                   and (groups[i] == groups[j] or (i, j) in pairs or (j, i) in pairs)})
    assert constraints.violating_clusters(labels).tolist() == want
    members = rng.choice(n, 8, replace=False)
    matrix = constraints.conflict_matrix(members)
    for (p, i), (q, j) in itertools.combinations(enumerate(members), 2):
        expected = groups[i] == groups[j] or (i, j) in pairs or (j, i) in pairs
        assert matrix[p, q] == matrix[q, p] == expected

    sizes = {c: int(np.sum(labels == c)) for c in set(labels.tolist()) if c >= 0}
    dropped = drop_small_clusters(labels, 3)
    assert dropped.tolist() == [c if c >= 0 and sizes[c] >= 3 else -1 for c in labels.tolist()]

    must = [[0, 1], [1, 2], [5, 6]]
    merged = merge_must_link(labels, Constraints.build(n, must_link=must).must_id)
    for i, j in itertools.combinations(range(n), 2):  # same cluster after iff linked by clusters or groups
        linked = (labels[i] >= 0 and labels[i] == labels[j]) or any(i in g and j in g for g in must)
        if linked:
            assert merged[i] == merged[j] >= 0


def attach_loop(x, labels, neighbours, groups, threshold, ratio, core_size):
    """One small cluster at a time: its candidate people are the big clusters among its faces'
    neighbours; it joins the nearest one it shares no photo with, if near and clearly nearest."""
    labels = labels.tolist()
    out = list(labels)
    sizes = {c: labels.count(c) for c in set(labels)}
    for unit in sorted(c for c in sizes if sizes[c] < core_size):
        faces = [i for i in range(len(x)) if labels[i] == unit]
        candidates = {labels[j] for i in faces for j in neighbours[i] if j >= 0 and sizes[labels[j]] >= core_size}
        if not candidates:
            continue
        mean = {}
        for c in candidates:
            members = [j for j in range(len(x)) if labels[j] == c]
            mean[c] = np.mean([np.linalg.norm(x[i].astype(np.float64) - x[j]) for i in faces for j in members])
        allowed = [c for c in candidates
                   if not {groups[i] for i in faces} & {groups[j] for j in range(len(x)) if labels[j] == c}]
        if not allowed:
            continue
        best = min(allowed, key=lambda c: (mean[c], c))
        second = min([mean[c] for c in candidates if c != best], default=np.inf)
        if mean[best] <= threshold and mean[best] <= ratio * second:
            for i in faces:
                out[i] = best
    return out


@pytest.mark.parametrize("seed", range(4))
def test_attach_stragglers_matches_loop(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.sort(rng.integers(0, 7, 24))
    groups = rng.integers(0, 18, 24)
    _, neighbours = knn_graph(x, 5)
    constraints = Constraints.build(24, groups)
    got = _attach_stragglers(x, labels, neighbours, constraints, 1.3, 0.95, 4)
    want = attach_loop(x, labels, neighbours, groups, 1.3, 0.95, 4)
    assert got.tolist() == want


def test_relabel_by_size():
    assert relabel_by_size(np.array([7, 3, 3, -1, 7, 3, 9])).tolist() == [1, 0, 0, -1, 1, 0, 2]


def test_knn_graph_matches_brute_force():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    x[7] = x[3]  # a duplicate comes back before the row itself in some orders
    distances, neighbours = knn_graph(x, 4)
    full = np.sqrt(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    for i in range(len(x)):
        others = [j for j in np.argsort(full[i], kind="stable") if j != i][:4]
        assert i not in neighbours[i]
        assert np.allclose(distances[i], full[i, others], atol=1e-5)
    approximate_d, approximate_n = knn_graph(x, 4, exact_limit=10)  # the inverted-file path
    assert approximate_d.shape == (40, 4) and (approximate_n != np.arange(40)[:, None]).all()
    few_d, few_n = knn_graph(x[:3], 5)  # fewer rows than k: padded
    assert (few_n[:, 2:] == -1).all() and np.isinf(few_d[:, 2:]).all()


def test_blocked_knn_is_exact_when_every_list_is_probed(monkeypatch):
    """The list-by-list search finds exactly the nearest rows among the lists probed: with
    every list probed it is brute force (ties aside)."""
    from faceclust.catalog.knn_blocks import blocked_knn

    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    centres = x[rng.choice(600, 23, replace=False)]
    to_centre = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    near = np.argsort(to_centre, axis=1, kind="stable").astype(np.int32)  # own list first
    full = ((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    for probes, k in ((23, 9), (23, 1), (23, 40)):
        squared, rows = blocked_knn(x, near[:, :probes], k)
        np.testing.assert_allclose(squared, np.sort(full, axis=1)[:, :k], atol=1e-4)
        np.testing.assert_allclose(np.take_along_axis(full, rows, axis=1), squared, atol=1e-4)
        assert (rows[:, 0] == np.arange(600)).all()  # each row nearest to itself
    # Blocks of a few rows at a time (what bounds the memory of a huge list): the same.
    from faceclust.catalog import knn_blocks

    monkeypatch.setattr(knn_blocks, "BLOCK", 70)
    squared, rows = blocked_knn(x, near, 9)
    np.testing.assert_allclose(squared, np.sort(full, axis=1)[:, :9], atol=1e-4)
    # Fewer lists probed: only rows of those lists, still the nearest among them.
    squared, rows = blocked_knn(x, near[:, :3], 5)
    own = near[:, 0]
    for i in range(0, 600, 37):
        allowed = np.flatnonzero(np.isin(own, near[i, :3]))
        np.testing.assert_allclose(squared[i], np.sort(full[i, allowed])[:5], atol=1e-4)


def test_knn_graph_above_the_exact_limit_finds_nearly_all_true_neighbours():
    x, _ = make_blobs(n_samples=4000, centers=60, n_features=16, cluster_std=1.5, random_state=2)
    x = x.astype(np.float32)
    distances, neighbours = knn_graph(x, 10, exact_limit=500)
    exact_d, exact_n = knn_graph(x, 10)
    assert (neighbours >= 0).all() and (neighbours != np.arange(4000)[:, None]).all()
    assert all(len(set(row)) == 10 for row in neighbours.tolist())
    assert (np.diff(distances, axis=1) >= -1e-5).all()  # nearest first
    np.testing.assert_allclose(distances, np.linalg.norm(x[:, None, :] - x[neighbours], axis=2), atol=1e-3)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(neighbours.tolist(), exact_n.tolist())])
    assert recall >= 0.97, recall
    # A backup's copies: hundreds of identical faces, a list no k-means can cut.
    copies = np.vstack([x, np.repeat(x[:1], 700, axis=0)])
    distances, neighbours = knn_graph(copies, 10, exact_limit=500)
    same = np.r_[0, np.arange(4000, 4700)]  # row 0 and its copies
    assert np.isin(neighbours[4000:], same).all() and (neighbours[4000:] != np.arange(4000, 4700)[:, None]).all()
    assert (distances[4000:] < 0.05).all()  # zero, but for float32 rounding at these norms (~23)


# -- the adaptive clusterer's own steps ---------------------------------------------------------------


def _person(rng, centre, n, spread):
    x = centre + rng.normal(size=(n, len(centre))) * spread / np.sqrt(2 * len(centre))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _unit(v):
    return v / np.linalg.norm(v)


def _mean(a, b):
    from faceclust.people.cluster.agglomerative import _mean_distances

    return float(_mean_distances(a, b).mean())


def test_energy_merges_follow_each_clusters_spread():
    """Two halves of one varied person merge; two uniform people as far apart do not: the
    decision is relative to the clusters' own spread, not one distance."""
    from faceclust.people.cluster.adaptive import _energy_merges
    from faceclust.people.cluster.constraints import Constraints

    rng = np.random.default_rng(3)
    dim = 32
    p, q, v = (_unit(rng.normal(size=dim)) for _ in range(3))
    wide = _person(rng, p, 40, 0.34)
    axis = np.linalg.svd(wide - wide.mean(0))[2][0]
    half = (wide - wide.mean(0)) @ axis > 0  # split across its main axis
    d_halves = _mean(wide[half], wide[~half])
    tight_q = _person(rng, q, 20, 0.12)
    # A second uniform person placed so the two are as far apart as the halves.
    step = min(np.linspace(0.05, 0.6, 111), key=lambda t: abs(_mean(tight_q, _person(
        np.random.default_rng(4), _unit(q + t * v), 20, 0.12)) - d_halves))
    tight_r = _person(np.random.default_rng(4), _unit(q + step * v), 20, 0.12)
    assert abs(_mean(tight_q, tight_r) - d_halves) < 0.01 and d_halves < 0.41  # the premise

    x = np.vstack([wide[half], wide[~half], tight_q, tight_r])
    labels = np.repeat([0, 1, 2, 3], [half.sum(), (~half).sum(), 20, 20])
    _, neighbours = knn_graph(x, 30)
    merged = _energy_merges(x, labels, neighbours, Constraints.build(len(x)), 0.07, 0.41, 50)
    assert len(np.unique(merged[labels <= 1])) == 1  # the halves are one person again
    assert merged[labels == 2][0] != merged[labels == 3][0]  # the two people stay two
    # A photo holding a face of each half keeps them apart.
    groups = np.arange(len(x))
    groups[np.flatnonzero(labels == 1)[0]] = np.flatnonzero(labels == 0)[0]
    apart = _energy_merges(x, labels, neighbours, Constraints.build(len(x), groups), 0.07, 0.41, 50)
    assert len(np.unique(apart[labels <= 1])) == 2
    # The cap: at a merge threshold below their distance, even the halves stay apart.
    capped = _energy_merges(x, labels, neighbours, Constraints.build(len(x)), 0.07, d_halves - 0.01, 50)
    assert len(np.unique(capped[labels <= 1])) == 2


def _plain_energy_merges(x, labels, neighbours, energy, cap, rounds):
    """The energy merges as the module describes them, without caching or pruning: every
    linked pair of clusters of two or more faces measured every round."""
    from scipy.spatial.distance import cdist, pdist

    x = x.astype(np.float64)
    for _ in range(rounds):
        size = np.bincount(labels)
        pairs = sorted({(min(labels[i], labels[j]), max(labels[i], labels[j])) for i in range(len(x))
                        for j in neighbours[i] if labels[i] != labels[j] and size[labels[i]] >= 2
                        and size[labels[j]] >= 2})
        spread = {c: pdist(x[labels == c]).mean() for c in range(len(size)) if size[c] >= 2}
        scored = []
        for a, b in pairs:
            d = cdist(x[labels == a], x[labels == b]).mean()
            e = d - (spread[a] + spread[b]) / 2
            if e <= energy and d <= cap:
                scored.append((e, a, b))
        if not scored:
            break
        used, target = set(), np.arange(len(size))
        for _, a, b in sorted(scored):
            if a not in used and b not in used:
                used |= {a, b}
                target[b] = a
        labels = np.unique(target[labels], return_inverse=True)[1]
    return labels


def test_energy_merges_match_a_plain_reading_of_the_rule():
    """Caching the measured pairs and skipping pairs whose means are farther apart than the cap
    (they can never merge) change nothing: same labels as measuring every linked pair."""
    from faceclust.people.cluster.adaptive import _energy_merges
    from faceclust.people.cluster.constraints import Constraints

    rng = np.random.default_rng(1)
    dim = 8
    people = [_person(rng, _unit(rng.normal(size=dim)), int(m), float(s))
              for m, s in zip(rng.integers(6, 30, 10), rng.uniform(0.15, 0.33, 10))]
    x = np.vstack(people).astype(np.float32)
    # Every person cut in two across its main axis: merges to make (some between halves whose
    # means are 0.2 apart), and links between people.
    labels = []
    for p, faces in enumerate(people):
        axis = np.linalg.svd(faces - faces.mean(0))[2][0]
        labels.append(2 * p + ((faces - faces.mean(0)) @ axis > 0))
    labels = np.unique(np.concatenate(labels), return_inverse=True)[1]
    _, neighbours = knn_graph(x, 8)
    expected = _plain_energy_merges(x, labels, neighbours, 0.07, 0.41, 50)
    got = _energy_merges(x, labels, neighbours, Constraints.build(len(x)), 0.07, 0.41, 50)
    assert len(np.unique(expected)) < len(np.unique(labels))  # merges happened
    assert adjusted_rand_score(expected, got) == 1.0
    # The case the pruning is for exists here: linked clusters whose means are beyond the cap.
    size = np.bincount(labels)
    means = np.stack([x[labels == c].mean(0) for c in range(len(size))])
    linked = {(labels[i], labels[j]) for i in range(len(x)) for j in neighbours[i] if labels[i] != labels[j]}
    assert any(np.linalg.norm(means[a] - means[b]) > 0.41 for a, b in linked if size[a] >= 2 and size[b] >= 2)


def test_cross_cluster_means_match_a_plain_loop():
    """The mean distance across two clusters, measured for many pairs at once (each cluster
    against all its partners by matrix products in blocks), equals the plain double loop."""
    from faceclust.people.cluster import adaptive

    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    labels = np.r_[np.zeros(20, np.int64), rng.integers(1, 9, 40)]  # one big cluster, eight small
    assert set(labels.tolist()) == set(range(9))
    order, bounds = adaptive._grouped(labels)
    a, b = (np.array(v) for v in zip(*itertools.combinations(range(9), 2)))
    plain = [np.mean([np.linalg.norm(x[i].astype(np.float64) - x[j]) for i in np.flatnonzero(labels == p)
                      for j in np.flatnonzero(labels == q)]) for p, q in zip(a, b)]
    np.testing.assert_allclose(adaptive._cross_means(x, order, bounds, a, b), plain, rtol=1e-5)
    # Blocks small enough that a cluster's faces are taken a few rows at a time, and one row.
    for block in (150, 30):
        np.testing.assert_allclose(adaptive._cross_means(x, order, bounds, a, b, block=block), plain, rtol=1e-5)
    # Pairs in any order, a cluster on either side.
    shuffle = rng.permutation(len(a))
    np.testing.assert_allclose(adaptive._cross_means(x, order, bounds, b[shuffle], a[shuffle]),
                               np.array(plain)[shuffle], rtol=1e-5)
    assert len(adaptive._cross_means(x, order, bounds, a[:0], b[:0])) == 0


def test_unique_pairs_match_numpys_unique_over_columns():
    from faceclust.people.cluster.adaptive import _unique_pairs

    rng = np.random.default_rng(8)
    a, b = rng.integers(0, 7, 300), rng.integers(0, 5, 300)
    expected, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    got_a, got_b, got_counts = _unique_pairs(a, b)
    np.testing.assert_array_equal(np.stack([got_a, got_b]), expected)
    np.testing.assert_array_equal(got_counts, counts)


def test_a_single_face_joins_the_cluster_its_neighbours_are_in():
    from faceclust.people.cluster.adaptive import _attach_single_faces, _spread
    from faceclust.people.cluster.constraints import Constraints

    rng = np.random.default_rng(5)
    dim = 32
    p, q = (_unit(rng.normal(size=dim)) for _ in range(2))
    person, other = _person(rng, p, 40, 0.3), _person(rng, q, 40, 0.3)
    _, radius = _spread(person, np.arange(40))
    # A lone face just outside the person's radius, nearest to that person.
    noise = rng.normal(size=dim) * 0.3 / np.sqrt(2 * dim)
    lone = next(u for u in (_unit(p + f * noise).astype(np.float32) for f in np.linspace(1, 3, 201))
                if radius + 0.02 < _mean(u[None], person) < radius + 0.05)
    x = np.vstack([person, other, lone[None]])
    labels = np.repeat([0, 1, 2], [40, 40, 1])
    assert radius < _mean(x[-1:], person) < radius + 0.075  # the premise: inside the margin only
    _, neighbours = knn_graph(x, 30)
    joined = _attach_single_faces(x, labels, neighbours, Constraints.build(len(x)), 0.075, 0.6, 3)
    assert joined[-1] == joined[0] and joined[40] != joined[0]
    # Without the margin it stays alone; a photo shared with one of the person's faces forbids it.
    assert _attach_single_faces(x, labels, neighbours, Constraints.build(len(x)), 0.0, 0.6, 3)[-1] != joined[0]
    groups = np.arange(len(x))
    groups[-1] = 0
    assert _attach_single_faces(x, labels, neighbours, Constraints.build(len(x), groups), 0.075, 0.6, 3)[-1] != joined[0]
