"""FaceNet triplet loss on mined triplets."""

from __future__ import annotations

from typing import NamedTuple

import torch

from faceclust.train.miner import Triplets, check_batch


class LossResult(NamedTuple):
    loss: torch.Tensor
    active: int
    active_fraction: float


class TripletLoss:
    """``max(||f(a)-f(p)||² - ||f(a)-f(n)||² + margin, 0)`` averaged over the active triplets.

    Averaging over the active triplets (loss > 0) rather than all of them keeps the gradient from
    shrinking as more triplets become satisfied during training. With no active triplet the loss
    is a zero that still belongs to the graph, so ``backward()`` works.

    >>> emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]])
    >>> t = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), {})
    >>> round(TripletLoss(margin=0.2)(emb, torch.tensor([0, 0, 1]), t).loss.item(), 4)
    0.95
    """

    def __init__(self, margin: float = 0.2):
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin!r}")
        self.margin = float(margin)

    def __call__(self, emb: torch.Tensor, labels: torch.Tensor, triplets: Triplets) -> LossResult:
        check_batch(emb, labels)
        a, p, n = emb[triplets.anchor], emb[triplets.positive], emb[triplets.negative]
        per_triplet = ((a - p).pow(2).sum(1) - (a - n).pow(2).sum(1) + self.margin).clamp_min(0.0)
        active = per_triplet > 0
        count = int(active.sum())
        if count == 0:
            return LossResult(emb.sum() * 0.0, 0, 0.0)
        return LossResult(per_triplet[active].mean(), count, count / len(per_triplet))
