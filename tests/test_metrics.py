"""Clustering metrics: hand-computed values on a tiny example, and every vectorised metric
checked against a plain loop over faces or pairs on small random inputs."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from faceclust.evaluate.metrics import (
    PRF,
    assign_labels,
    bcubed,
    cluster_counts,
    nmi,
    noise_as_singletons,
    pairwise,
    score_clustering,
    val_at_far,
)

# -- plain-loop versions ---------------------------------------------------------------------------


def singletons_loop(pred):
    out, fresh = [], max([p for p in pred if p >= 0], default=-1) + 1
    for p in pred:
        if p < 0:
            out.append(fresh)
            fresh += 1
        else:
            out.append(p)
    return out


def bcubed_loop(truth, pred):
    pred = singletons_loop(pred)
    n = len(truth)
    precision = recall = 0.0
    for i in range(n):
        same_cluster = [j for j in range(n) if pred[j] == pred[i]]
        same_label = [j for j in range(n) if truth[j] == truth[i]]
        both = [j for j in same_cluster if truth[j] == truth[i]]
        precision += len(both) / len(same_cluster)
        recall += len(both) / len(same_label)
    return precision / n, recall / n


def pairwise_loop(truth, pred):
    pred = singletons_loop(pred)
    together = predicted = actual = 0
    for i, j in itertools.combinations(range(len(truth)), 2):
        same_c, same_l = pred[i] == pred[j], truth[i] == truth[j]
        predicted += same_c
        actual += same_l
        together += same_c and same_l
    return (together / predicted if predicted else 1.0), (together / actual if actual else 1.0)


def nmi_loop(truth, pred):
    pred = singletons_loop(pred)
    n = len(truth)
    ct, cp, joint = Counter(truth), Counter(pred), Counter(zip(pred, truth))
    h_t = -sum(c / n * math.log(c / n) for c in ct.values())
    h_p = -sum(c / n * math.log(c / n) for c in cp.values())
    mi = sum(c / n * math.log(c * n / (cp[p] * ct[t])) for (p, t), c in joint.items())
    if h_t == 0 and h_p == 0:
        return 1.0
    return mi / ((h_t + h_p) / 2)


def val_at_far_loop(x, truth, far):
    same, diff = [], []
    for i, j in itertools.combinations(range(len(x)), 2):
        d = float(np.sqrt(np.sum((x[i].astype(np.float64) - x[j]) ** 2)))
        (same if truth[i] == truth[j] else diff).append(d)
    # The largest threshold t (accept d < t) that accepts at most far * |diff| different pairs.
    allowed = math.floor(far * len(diff))
    best = None
    for t in sorted(set(diff)) + [math.inf]:
        if sum(d < t for d in diff) <= allowed:
            best = t
    return sum(d < best for d in same) / len(same), best


def assign_labels_loop(photo, photo_label, pred, size):
    chosen = [False] * len(photo)
    for p in sorted(set(photo)):
        faces = [i for i in range(len(photo)) if photo[i] == p]
        label = photo_label[faces[0]]
        if label in (None, ""):
            continue

        def others(i):
            if pred[i] < 0:
                return 0
            return len({photo[j] for j in range(len(photo))
                        if pred[j] == pred[i] and photo[j] != p and photo_label[j] == label})

        best = max(faces, key=lambda i: (others(i), size[i], -i))
        chosen[best] = True
    return chosen


def random_labels(rng, n, n_true, n_pred, noise=0.2):
    truth = rng.integers(0, n_true, n)
    pred = rng.integers(0, n_pred, n)
    pred[rng.random(n) < noise] = -1
    return truth, pred


# -- hand-computed ---------------------------------------------------------------------------------

TRUTH = ["a", "a", "a", "b", "b"]
PRED = [0, 0, 1, 1, 1]


def test_bcubed_by_hand():
    # Cluster 0 = {a, a}: precision 1, 1. Cluster 1 = {a, b, b}: 1/3, 2/3, 2/3.
    # Identity a: recall 2/3, 2/3, 1/3; identity b: 1, 1.
    s = bcubed(TRUTH, PRED)
    assert s.precision == pytest.approx((1 + 1 + 1 / 3 + 2 / 3 + 2 / 3) / 5)
    assert s.recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1) / 5)
    assert s.f1 == pytest.approx(11 / 15)


def test_pairwise_by_hand():
    # Same-cluster pairs: (0,1), (2,3), (2,4), (3,4); same person among them: (0,1), (3,4).
    # Same-person pairs: (0,1), (0,2), (1,2), (3,4).
    s = pairwise(TRUTH, PRED)
    assert (s.precision, s.recall) == (0.5, 0.5)


def test_nmi_by_hand():
    h = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))  # both partitions are 3/5 and 2/5
    mi = 0.4 * math.log(0.4 / (0.4 * 0.6)) + 0.2 * math.log(0.2 / (0.6 * 0.6)) + 0.4 * math.log(0.4 / (0.6 * 0.4))
    assert nmi(TRUTH, PRED) == pytest.approx(mi / h)
    from sklearn.metrics import normalized_mutual_info_score

    assert nmi(TRUTH, PRED) == pytest.approx(normalized_mutual_info_score(TRUTH, PRED))


def test_perfect_and_degenerate():
    assert bcubed(TRUTH, [5, 5, 5, 9, 9]) == PRF(1.0, 1.0)
    assert nmi(TRUTH, [5, 5, 5, 9, 9]) == pytest.approx(1.0)
    assert pairwise(["a", "a"], [0, 1]) == PRF(1.0, 0.0)  # no predicted pair: nothing claimed wrongly
    assert pairwise(["a", "b"], [0, 1]) == PRF(1.0, 1.0)  # no pair to find either
    assert bcubed([], []) == PRF(1.0, 1.0)
    with pytest.raises(ValueError):
        bcubed(["a"], [0, 1])


def test_unassigned_faces_are_singletons_not_one_cluster():
    assert noise_as_singletons([3, -1, -1, 0]).tolist() == [3, 4, 5, 0]
    s = bcubed(["a", "a"], [-1, -1])
    assert (s.precision, s.recall) == (1.0, 0.5)
    assert cluster_counts(["a", "a", "b"], [-1, 0, 0]) == {"people": 1, "identities": 2, "unassigned": 1}


def test_val_at_far_by_hand():
    # Points on a line: same-person pairs at distance 1 and 1; different-person pairs at
    # 3 (1-4), 4 (0-4, 1-5) and 5 (0-5). FAR 0.25 allows one of the four: accept d < 4.
    # FAR 0 allows none: accept d < 3. Both accept every same-person pair.
    x = np.array([[0.0], [1.0], [4.0], [5.0]], np.float32)
    truth = ["a", "a", "b", "b"]
    out = val_at_far(x, truth, fars=(0.25, 0.0))
    assert out[0.25] == (1.0, 4.0)
    assert out[0.0] == (1.0, 3.0)


def test_assign_labels_by_hand():
    # Photo 10 has two faces: face 0 sits with two other photos of "ann", face 1 with one.
    photo = [10, 10, 11, 12, 13, 14]
    label = ["ann", "ann", "ann", "ann", "ann", None]
    pred = [0, 1, 0, 0, 1, 0]
    size = [10, 99, 5, 5, 5, 5]
    assert assign_labels(photo, label, pred, size).tolist() == [True, False, True, True, True, False]
    # A tie (both faces unassigned) goes to the larger face.
    assert assign_labels([1, 1], ["x", "x"], [-1, -1], [3, 7]).tolist() == [False, True]


def test_score_clustering_row():
    row = score_clustering(TRUTH, PRED)
    assert row["bcubed_f1"] == pytest.approx(11 / 15)
    assert row["people"] == 2 and row["identities"] == 2


# -- vectorised against plain loops ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_partition_metrics_match_loops(seed):
    rng = np.random.default_rng(seed)
    truth, pred = random_labels(rng, 16, 4, 5)
    b = bcubed(truth, pred)
    assert (b.precision, b.recall) == pytest.approx(bcubed_loop(truth.tolist(), pred.tolist()))
    p = pairwise(truth, pred)
    assert (p.precision, p.recall) == pytest.approx(pairwise_loop(truth.tolist(), pred.tolist()))
    assert nmi(truth, pred) == pytest.approx(nmi_loop(truth.tolist(), pred.tolist()))


@pytest.mark.parametrize("seed", range(4))
def test_val_at_far_matches_loop(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    truth = rng.integers(0, 4, 16)
    for far in (0.05, 0.2):
        val, threshold = val_at_far(x, truth, fars=(far,))[far]
        want_val, want_threshold = val_at_far_loop(x, truth.tolist(), far)
        assert val == pytest.approx(want_val)
        assert threshold == pytest.approx(want_threshold, rel=1e-5)


@pytest.mark.parametrize("seed", range(8))
def test_assign_labels_matches_loop(seed):
    rng = np.random.default_rng(seed)
    photo = np.sort(rng.integers(0, 8, 16))
    names = np.array(["ann", "bob", "cy", None], dtype=object)
    label_of_photo = names[rng.integers(0, 4, 8)]
    label = label_of_photo[photo]
    pred = rng.integers(-1, 4, 16)
    size = rng.integers(1, 4, 16).astype(float)  # small range: ties happen
    got = assign_labels(photo, label, pred, size).tolist()
    assert got == assign_labels_loop(photo.tolist(), label.tolist(), pred.tolist(), size.tolist())
