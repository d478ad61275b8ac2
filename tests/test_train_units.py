"""Triplet training pieces: the P x K sampler's guarantees, the vectorised miner against plain loops
on 16 points, the loss against hand-computed values, and a tiny training run that lowers the loss."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from faceclust.train.loss import TripletLoss
from faceclust.train.miner import TripletMiner, Triplets
from faceclust.train.sampler import PKSampler

# --- sampler -----------------------------------------------------------------------------------

# Identities 0..5 with 6, 5, 4, 3, 2, 1 faces, shuffled so faces of one identity are not contiguous.
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(6), [6, 5, 4, 3, 2, 1]))


@pytest.mark.parametrize("p, k, extras", [(3, 3, 0), (2, 4, 3), (4, 2, 5)])
def test_sampler_batches_are_p_identities_of_k_distinct_faces(p, k, extras):
    sampler = PKSampler(LABELS, p=p, k=k, extras=extras, num_batches=200, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 200
    seen = set()
    for batch in batches:
        assert len(batch) == p * k + extras
        assert len(set(batch)) == len(batch)  # no face twice, extras included
        core = Counter(LABELS[batch[:p * k]].tolist())
        assert len(core) == p and set(core.values()) == {k}
        # Each block of k faces is one identity.
        assert all(len(set(LABELS[batch[i:i + k]].tolist())) == 1 for i in range(0, p * k, k))
        seen.update(core)
    # Only identities with >= k faces are batch identities, and all of them get picked.
    assert seen == {i for i, c in Counter(LABELS.tolist()).items() if c >= k}


def test_sampler_extras_come_from_any_identity():
    batches = list(PKSampler(LABELS, p=2, k=3, extras=4, num_batches=200, seed=2))
    extra_labels = {int(LABELS[i]) for b in batches for i in b[6:]}
    assert extra_labels == set(range(6))  # including identity 5, which has a single face


def test_sampler_is_deterministic_for_a_seed():
    a = PKSampler(LABELS, p=2, k=2, extras=2, num_batches=20, seed=7)
    assert list(a) == list(a) == list(PKSampler(LABELS, p=2, k=2, extras=2, num_batches=20, seed=7))
    assert list(a) != list(PKSampler(LABELS, p=2, k=2, extras=2, num_batches=20, seed=8))


@pytest.mark.parametrize("kwargs, match", [
    ({"p": 5, "k": 3}, "only 4 have"),  # 4 identities have >= 3 faces
    ({"p": 1, "k": 7}, "only 0 have"),
    ({"p": 0, "k": 2}, "p must be"),
    ({"p": 2, "k": 1}, "k must be"),
    ({"p": 2, "k": 2, "extras": -1}, "extras must be"),
    ({"p": 2, "k": 2, "extras": 18}, "lower extras"),  # 21 faces, 22 asked
    ({"p": 2, "k": 2, "num_batches": 0}, "num_batches must be"),
    ({"p": 2.0, "k": 2}, "p must be"),
])
def test_sampler_rejects_impossible_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PKSampler(LABELS, **kwargs)


def test_sampler_rejects_2d_labels():
    with pytest.raises(ValueError, match="1-D"):
        PKSampler(LABELS.reshape(3, 7), p=1, k=2)


# --- miner: vectorised against plain loops -----------------------------------------------------

def random_batch(seed, n=16, d=5, identities=4):
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, identities, (n,), generator=g)
    return emb, labels


def loop_candidates(emb, labels, mode, margin):
    """{(a, p): [negatives the mode allows]} by plain loops over points."""
    n = len(labels)
    d = [[float(((emb[i] - emb[j]) ** 2).sum()) for j in range(n)] for i in range(n)]
    out = {}
    for a in range(n):
        for p in range(n):
            if a == p or labels[a] != labels[p]:
                continue
            negatives = [x for x in range(n) if labels[x] != labels[a]]
            if mode == "semihard":
                negatives = [x for x in negatives if d[a][p] < d[a][x] < d[a][p] + margin]
            elif mode == "hard" and negatives:
                negatives = [min(negatives, key=lambda x: d[a][x])]
            out[(a, p)] = negatives
    return out


def as_set(t: Triplets):
    return set(zip(t.anchor.tolist(), t.positive.tolist(), t.negative.tolist()))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["hard", "all"])
def test_miner_hard_and_all_match_loops(seed, mode):
    emb, labels = random_batch(seed)
    expected = {(a, p, x) for (a, p), negs in loop_candidates(emb, labels, mode, 0.2).items() for x in negs}
    got = TripletMiner(mode=mode)(emb, labels)
    assert as_set(got) == expected
    assert got.stats["triplets"] == len(got.anchor) == len(expected)  # no duplicates
    assert got.stats["pairs"] == len(loop_candidates(emb, labels, "all", 0.2))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("margin", [0.2, 0.8])
def test_miner_semihard_matches_loops(seed, margin):
    emb, labels = random_batch(seed)
    candidates = loop_candidates(emb, labels, "semihard", margin)
    got = TripletMiner(margin=margin, seed=seed)(emb, labels)
    chosen = {(a, p): x for a, p, x in as_set(got)}
    assert len(chosen) == len(got.anchor)  # one negative per kept pair
    assert set(chosen) == {pair for pair, negs in candidates.items() if negs}
    assert all(x in candidates[pair] for pair, x in chosen.items())
    dropped = sum(1 for negs in candidates.values() if not negs)
    assert got.stats["pairs_without_semihard"] + got.stats["pairs_without_negative"] == dropped
    assert got.stats["pairs"] == len(candidates)


def test_miner_semihard_choice_is_seeded_and_covers_candidates():
    emb, labels = random_batch(3)
    miner = TripletMiner(margin=0.8, seed=5)
    first = as_set(miner(emb, labels))
    assert as_set(TripletMiner(margin=0.8, seed=5)(emb, labels)) == first
    assert as_set(miner(emb, labels, generator=torch.Generator().manual_seed(5))) == first
    # Over many draws, every candidate negative of a pair with several gets picked.
    candidates = loop_candidates(emb, labels, "semihard", 0.8)
    pair, negs = max(candidates.items(), key=lambda kv: len(kv[1]))
    assert len(negs) > 1
    picked = set()
    for _ in range(200):
        picked |= {x for a, p, x in as_set(miner(emb, labels)) if (a, p) == pair}
    assert picked == set(negs)


def test_miner_batch_without_negatives_or_positives():
    emb, _ = random_batch(0, n=4)
    for labels in (torch.zeros(4, dtype=torch.long), torch.arange(4)):
        for mode in ("semihard", "hard", "all"):
            t = TripletMiner(mode=mode)(emb, labels)
            assert len(t.anchor) == len(t.positive) == len(t.negative) == 0


def test_miner_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode must be"):
        TripletMiner(mode="easy")
    with pytest.raises(ValueError, match="margin"):
        TripletMiner(margin=0)
    with pytest.raises(ValueError, match="labels must be"):
        TripletMiner()(torch.zeros(4, 2), torch.zeros(3))


# --- loss ----------------------------------------------------------------------------------------

def test_loss_against_hand_computed_values():
    emb = torch.tensor([[0.0, 0.0], [0.3, 0.0], [1.0, 0.0], [0.0, 0.4], [0.0, 2.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2])
    # (anchor, positive, negative): d_ap - d_an + margin
    #   (0, 1, 2): 0.09 - 1.00 + 0.2 = -0.71 -> 0, inactive
    #   (0, 1, 3): 0.09 - 0.16 + 0.2 =  0.13
    #   (1, 0, 3): 0.09 - 0.25 + 0.2 =  0.04
    t = Triplets(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), torch.tensor([2, 3, 3]), {})
    result = TripletLoss(margin=0.2)(emb, labels, t)
    assert result.loss.item() == pytest.approx((0.13 + 0.04) / 2, abs=1e-6)
    assert result.active == 2 and result.active_fraction == pytest.approx(2 / 3)
    result.loss.backward()
    assert emb.grad[4].abs().sum() == 0  # a point in no triplet gets no gradient


def test_loss_without_active_triplets_is_a_differentiable_zero():
    emb = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0]], requires_grad=True)
    t = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), {})
    result = TripletLoss()(emb, torch.tensor([0, 0, 1]), t)
    assert result.loss.item() == 0 and result.active == 0 and result.active_fraction == 0
    result.loss.backward()
    empty = Triplets(*(torch.zeros(0, dtype=torch.long),) * 3, {})
    assert TripletLoss()(emb, torch.tensor([0, 0, 1]), empty).active == 0


# --- a tiny training run -------------------------------------------------------------------------

def test_triplet_training_lowers_the_loss():
    torch.manual_seed(0)
    points, labels = make_blobs(n_samples=240, centers=8, n_features=6, cluster_std=1.5, random_state=0)
    rng = np.random.default_rng(0)
    # Clusters live in 6 of 32 dimensions; the other 26 are loud noise the model must learn to ignore.
    raw = np.hstack([points, 4 * rng.normal(size=(240, 26))]) @ rng.normal(size=(32, 32))
    x = torch.tensor(raw, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(labels)
    model = torch.nn.Linear(32, 16)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    miner, loss_fn = TripletMiner(margin=0.2, seed=0), TripletLoss(margin=0.2)
    everything = TripletMiner(mode="all")

    def full_loss():  # every triplet of every other point: ~180,000, a stable measure
        with torch.no_grad():
            emb = torch.nn.functional.normalize(model(x[::2]), dim=1)
            return loss_fn(emb, y[::2], everything(emb, y[::2]))

    before = full_loss()
    for batch in PKSampler(labels, p=6, k=5, extras=4, num_batches=30, seed=0):
        emb = torch.nn.functional.normalize(model(x[batch]), dim=1)
        triplets = miner(emb, y[batch])
        result = loss_fn(emb, y[batch], triplets)
        optimiser.zero_grad()
        result.loss.backward()
        optimiser.step()
    after = full_loss()
    # Mean over active triplets can stay flat while the set shrinks, so compare the total too.
    assert after.loss * after.active < 0.7 * before.loss * before.active
    assert after.active_fraction < before.active_fraction
