"""The training loop: P x K batches, online triplet mining, validation on held-out people.

Epoch 0 is the starting model, validated before any step; after each epoch the held-out
people are embedded again and the best epoch (VAL at FAR=1e-3, then at 1e-2, then the
best-threshold accuracy) is kept. Training stops early after ``patience`` epochs without a
better one. The result carries the best weights and every epoch's figures.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from faceclust.train.data import LabelledFaces
from faceclust.train.miner import MODES

SCHEDULES = ("cosine", "constant", "step")
DEFAULT_P = 48
DEFAULT_EXTRAS = 64
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainOptions:
    """What ``faceclust train`` asks; the defaults are the measured ones (docs/training.md)."""

    epochs: int = 10
    steps_per_epoch: int | None = None  # None: about one pass over the training faces
    p: int | None = None  # people per batch; None: 48, or all who have k faces when fewer
    k: int = 4  # faces per person in a batch
    extras: int | None = None  # random extra faces per batch (more negatives); None: 64, or what is left
    margin: float = 0.2
    mining: str = "semihard"
    lr: float = 1e-5
    schedule: str = "cosine"
    weight_decay: float = 1e-4
    anchor: float = 0.0  # L2-SP: weight of ||w - w_start||² over the trained weights (keeps what was learnt)
    distill: float = 1.0  # weight of ||f(x) - f_start(x)||² on unit descriptors (keeps the starting geometry)
    optimizer: str = "adamw"
    freeze: int = 7  # residual blocks (after the stem, which is then frozen too) left as they are; 0-14
    augment: bool = False
    patience: int = 4  # epochs without a better validation before stopping
    seed: int = 0
    val_identities: int | None = None  # people held out; None: a fifth of them, 0: no validation
    val_photos: float | None = None  # instead: this fraction of every person's faces held out

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("p", 2), ("k", 2), ("extras", 0), ("patience", 1)):
            if getattr(self, name) is not None and getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be at least 1")
        if self.mining not in MODES:
            raise ValueError(f"mining must be one of {', '.join(MODES)}, got {self.mining!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 < self.margin < 4:
            raise ValueError("margin must be between 0 and 4 (squared distances of unit vectors)")
        if not 0 < self.lr < 1:
            raise ValueError("lr must be between 0 and 1")
        if self.weight_decay < 0:
            raise ValueError("weight_decay must be >= 0")
        if self.anchor < 0 or self.distill < 0:
            raise ValueError("anchor and distill must be >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 <= self.freeze <= 14:
            raise ValueError("freeze must be between 0 and 14 (dlib's ResNet has 14 residual blocks)")
        if self.val_identities is not None and self.val_identities < 0:
            raise ValueError("val_identities must be >= 0")
        if self.val_photos is not None and not 0 < self.val_photos < 1:
            raise ValueError("val_photos must be between 0 and 1")
        if self.val_photos is not None and self.val_identities:
            raise ValueError("hold out people (val_identities) or photos (val_photos), not both")


@dataclass
class TrainEvent:
    stage: str  # "step", "validated"
    epoch: int
    step: int = 0
    steps: int = 0
    loss: float = 0.0
    active: float = 0.0  # share of mined triplets still violating the margin
    faces_per_second: float = 0.0
    metrics: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    state_dict: dict
    best_epoch: int
    history: list[dict]
    seconds: float
    faces_per_second: float
    stopped_early: bool
    interrupted: bool = False

    @property
    def best(self) -> dict:
        return next(h for h in self.history if h["epoch"] == self.best_epoch)


def normalise_batch(chips, mean_rgb):
    """uint8 (n, 3, h, w) tensor -> float32 as dlib feeds its net (mean colour off, / 256)."""
    import torch

    mean = torch.tensor(mean_rgb, dtype=torch.float32).view(1, 3, 1, 1)
    x = (chips.to(torch.float32) - mean) * (1.0 / 256.0)
    return x.contiguous(memory_format=torch.channels_last)


class Trainer:
    """Fine-tune an embedder (dlib's ResNet, or any module mapping chips to vectors) in place."""

    def __init__(self, net, options: TrainOptions | None = None,
                 progress: Callable[[TrainEvent], None] | None = None) -> None:
        self.net = net
        self.options = options or TrainOptions()
        self.progress = progress or (lambda event: None)
        self.mean_rgb = getattr(net, "mean_rgb", (122.782, 117.001, 104.298))
        self._split()

    # -- which layers learn -------------------------------------------------------------------

    def _split(self) -> None:
        blocks = getattr(self.net, "blocks", None)
        freeze = self.options.freeze if blocks is not None else 0
        self.frozen_blocks = list(blocks[:freeze]) if blocks is not None else []
        trainable = (list(blocks[freeze:]) + [self.net.fc]) if blocks is not None else [self.net]
        if blocks is not None and freeze == 0:
            trainable = [self.net.stem] + trainable
        self.freeze_stem = blocks is not None and freeze > 0
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self.parameters = [p for module in trainable for p in module.parameters()]
        for parameter in self.parameters:
            parameter.requires_grad_(True)

    def forward(self, x):
        """Raw descriptors; the frozen layers run without building a graph."""
        import torch

        net = self.net
        if not hasattr(net, "blocks"):
            return net(x)
        with torch.no_grad():
            h = x
            if self.freeze_stem:
                h = net.stem_pool(torch.relu(net.stem(h)))
            for block in self.frozen_blocks:
                h = block(h)
        if not self.freeze_stem:
            h = net.stem_pool(torch.relu(net.stem(h)))
        for block in net.blocks[len(self.frozen_blocks):]:
            h = block(h)
        return net.fc(h.mean(dim=(2, 3)))

    # -- embedding and validation -------------------------------------------------------------

    def embed(self, chips: np.ndarray, batch: int = 64) -> np.ndarray:
        """Raw descriptors (float32) of uint8 chips (n, h, w, 3), no augmentation."""
        import torch

        self.net.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(chips), batch):
                x = torch.from_numpy(np.ascontiguousarray(chips[start:start + batch])).permute(0, 3, 1, 2)
                out.append(self.forward(normalise_batch(x, self.mean_rgb)).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, chips: np.ndarray, faces: LabelledFaces, val_chips: np.ndarray | None = None,
            val: LabelledFaces | None = None) -> TrainResult:
        import torch

        from faceclust.train.augment import ChipAugmenter
        from faceclust.train.loss import TripletLoss
        from faceclust.train.miner import TripletMiner
        from faceclust.train.validate import better, validate

        o = self.options
        torch.manual_seed(o.seed)
        started = time.perf_counter()
        self.p, self.extras = batch_shape(faces, o)
        steps = o.steps_per_epoch or max(1, math.ceil(int((faces.labels < len(faces.names)).sum()) / (self.p * o.k)))
        negatives = {}
        for row in np.flatnonzero(faces.negative_of >= 0):
            negatives.setdefault(int(faces.negative_of[row]), []).append(int(row))
        miner = TripletMiner(o.margin, o.mining, seed=o.seed)
        loss_fn = TripletLoss(o.margin)
        augment = ChipAugmenter() if o.augment else None
        if o.optimizer == "sgd":
            optimizer = torch.optim.SGD(self.parameters, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)
        else:
            optimizer = torch.optim.AdamW(self.parameters, lr=o.lr, weight_decay=o.weight_decay)
        self._start = [p.detach().clone() for p in self.parameters] if o.anchor else None
        self._teacher = None
        if o.distill:  # the starting model's descriptors of the clean chips, computed once
            self._teacher = torch.nn.functional.normalize(torch.from_numpy(self.embed(chips)), dim=1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(o.schedule, o.epochs * steps))

        def checked(epoch: int, row: dict) -> dict:
            if val is not None and len(val):
                row.update(validate(self.embed(val_chips), val.labels, base=history[0] if history else None))
            row["epoch"] = epoch
            self.progress(TrainEvent("validated", epoch, metrics=row))
            return row

        history: list[dict] = []
        history.append(checked(0, {}))
        best_epoch, best_state, waited, stopped, interrupted = 0, _copy_state(self.net), 0, False, False
        self._seconds, self._faces = 0.0, 0
        state = dict(miner=miner, loss_fn=loss_fn, augment=augment, optimizer=optimizer, scheduler=scheduler,
                     labels=torch.from_numpy(faces.labels), steps=steps, negatives=negatives)
        try:
            for epoch in range(1, o.epochs + 1):
                row = self._epoch(epoch, chips, faces, **state)
                history.append(checked(epoch, row))
                if val is None or not len(val) or better(history[-1], history[best_epoch]):
                    best_epoch, best_state, waited = epoch, _copy_state(self.net), 0
                else:
                    waited += 1
                    if waited >= o.patience:
                        stopped = epoch < o.epochs
                        break
        except KeyboardInterrupt:
            interrupted = True  # keep the best epoch so far; the caller saves it
        self.net.load_state_dict(best_state)
        self.net.eval()
        return TrainResult(best_state, best_epoch, history, time.perf_counter() - started,
                           self._faces / self._seconds if self._seconds else 0.0, stopped, interrupted)

    def _epoch(self, epoch, chips, faces, *, miner, loss_fn, augment, optimizer, scheduler, labels, steps,
               negatives) -> dict:
        import torch

        from faceclust.train.sampler import PKSampler

        o = self.options
        self.net.train()
        sampler = PKSampler(faces.labels, self.p, o.k, self.extras, steps, seed=o.seed + epoch, negatives_of=negatives)
        losses, active, triplets, no_semihard, pairs = [], [], 0, 0, 0
        epoch_start = time.perf_counter()
        for step, batch in enumerate(sampler, 1):
            t = time.perf_counter()
            x = torch.from_numpy(chips[batch]).permute(0, 3, 1, 2)
            if augment is not None:
                x = augment(x)
            emb = torch.nn.functional.normalize(self.forward(normalise_batch(x, self.mean_rgb)), dim=1)
            batch_labels = labels[batch]
            mined = miner(emb, batch_labels)
            result = loss_fn(emb, batch_labels, mined)
            optimizer.zero_grad(set_to_none=True)
            loss = result.loss
            if self._start is not None:
                loss = loss + self.options.anchor * sum((p - p0).pow(2).sum() for p, p0 in zip(self.parameters, self._start))
            if self._teacher is not None:
                loss = loss + self.options.distill * (emb - self._teacher[batch]).pow(2).sum(1).mean()
            if result.active or self._start is not None or self._teacher is not None:
                loss.backward()
                optimizer.step()
            scheduler.step()
            self._seconds += time.perf_counter() - t
            self._faces += len(batch)
            losses.append(float(result.loss.detach()))
            active.append(result.active_fraction)
            triplets += mined.stats["triplets"]
            no_semihard += mined.stats["pairs_without_semihard"]
            pairs += mined.stats["pairs"]
            self.progress(TrainEvent("step", epoch, step, steps, float(np.mean(losses)),
                                     float(np.mean(active)), self._faces / self._seconds))
        return {"loss": float(np.mean(losses)), "active": float(np.mean(active)),
                "triplets_per_step": triplets / steps, "pairs_without_semihard": no_semihard / max(pairs, 1),
                "lr": float(scheduler.get_last_lr()[0]), "seconds": time.perf_counter() - epoch_start}


def batch_shape(faces: LabelledFaces, options: TrainOptions) -> tuple[int, int]:
    """(P, extras): as given, else FaceNet-style large batches that the data can fill."""
    from faceclust.train.data import TrainingDataError

    counts = np.bincount(faces.labels[faces.labels < len(faces.names)], minlength=len(faces.names))
    eligible = int((counts >= options.k).sum())
    p = options.p if options.p is not None else min(DEFAULT_P, eligible)
    if p < 2 or eligible < p:
        raise TrainingDataError(f"a batch needs {max(p, 2)} people with at least k={options.k} faces each, but "
                                f"{eligible} have that many; label more faces, or lower --k or --p")
    extras = options.extras if options.extras is not None else max(0, min(DEFAULT_EXTRAS, len(faces) - p * options.k))
    return p, extras


def _copy_state(net) -> dict:
    return {name: tensor.detach().clone() for name, tensor in net.state_dict().items()}


def _schedule(kind: str, total: int) -> Callable[[int], float]:
    if kind == "constant":
        return lambda step: 1.0
    if kind == "step":
        return lambda step: 1.0 if step < 2 * total // 3 else 0.1
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
