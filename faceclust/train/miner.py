"""Online triplet mining within a batch (FaceNet section 3.2).

Every anchor-positive pair of the batch is used; the miner picks the negative(s) for each pair.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

MODES = ("semihard", "hard", "all")


class Triplets(NamedTuple):
    """Index tensors into the batch, one entry per triplet, and counts about the mining."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    stats: dict


def squared_distances(emb: torch.Tensor) -> torch.Tensor:
    """(n, n) squared Euclidean distances, clamped at 0 against rounding."""
    sq = (emb * emb).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * emb @ emb.T).clamp_min(0.0)


def check_batch(emb: torch.Tensor, labels: torch.Tensor) -> None:
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {tuple(emb.shape)}")
    if labels.ndim != 1 or labels.shape[0] != emb.shape[0]:
        raise ValueError(f"labels must be (n,) with n={emb.shape[0]}, got shape {tuple(labels.shape)}")


class TripletMiner:
    """Pick triplets (anchor, positive, negative) from L2-normalised embeddings and their labels.

    Distances are squared Euclidean, as in the paper. All ordered anchor-positive pairs (a, p),
    a != p, same label, are used. For each pair the negative is chosen by ``mode``:

    - ``"semihard"`` (default): one negative drawn at random among the semi-hard ones,
      ``d(a,p) < d(a,n) < d(a,p) + margin``.
    - ``"hard"``: the hardest negative of the anchor (smallest ``d(a,n)``).
    - ``"all"``: every negative of the anchor.

    Pairs with no semi-hard negative are **dropped** (counted in ``stats["pairs_without_semihard"]``).
    Then every negative is either beyond the margin, where any triplet has zero loss and would only
    dilute the active-triplet count, or closer than the positive, the hard negatives that FaceNet
    reports collapse the model early in training (f(x) = 0 for all x). Falling back to "the hardest
    negative farther than the positive" changes nothing: with no semi-hard one, that negative is
    beyond the margin too.

    The random choice uses ``generator`` if given, else one seeded with ``seed`` at construction,
    so mining is deterministic for a seed.

    >>> miner = TripletMiner(margin=0.2, seed=0)
    >>> emb = torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))
    >>> t = miner(emb, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    >>> t.stats["pairs"]
    8
    """

    def __init__(self, margin: float = 0.2, mode: str = "semihard", seed: int | None = 0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin!r}")
        self.margin, self.mode, self.seed = float(margin), mode, seed
        self._generator = torch.Generator()
        if seed is not None:
            self._generator.manual_seed(seed)

    @torch.no_grad()
    def __call__(self, emb: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator | None = None) -> Triplets:
        check_batch(emb, labels)
        labels = labels.to(emb.device)
        dist = squared_distances(emb.detach())
        same = labels[:, None] == labels[None, :]
        negative_of = ~same
        positive_of = same & ~torch.eye(len(labels), dtype=torch.bool, device=emb.device)
        anchor, positive = positive_of.nonzero(as_tuple=True)
        stats = {"pairs": len(anchor), "pairs_without_semihard": 0, "pairs_without_negative": 0}
        candidates = negative_of[anchor]  # (pairs, n)
        has_negative = candidates.any(dim=1)
        stats["pairs_without_negative"] = int((~has_negative).sum())
        if self.mode == "all":
            pair, negative = candidates.nonzero(as_tuple=True)
            anchor, positive = anchor[pair], positive[pair]
        elif self.mode == "hard":
            masked = dist[anchor].masked_fill(~candidates, float("inf"))
            negative = masked.argmin(dim=1)
            anchor, positive, negative = anchor[has_negative], positive[has_negative], negative[has_negative]
        else:
            d_ap = dist[anchor, positive][:, None]
            d_an = dist[anchor]
            candidates = candidates & (d_an > d_ap) & (d_an < d_ap + self.margin)
            keep = candidates.any(dim=1)
            stats["pairs_without_semihard"] = int((has_negative & ~keep).sum())
            # Uniform choice among the candidates: the largest of independent uniform scores.
            scores = torch.rand(candidates.shape, generator=generator or self._generator)
            negative = scores.to(emb.device).masked_fill(~candidates, -1.0).argmax(dim=1)
            anchor, positive, negative = anchor[keep], positive[keep], negative[keep]
        stats["triplets"] = len(anchor)
        return Triplets(anchor, positive, negative, stats)
