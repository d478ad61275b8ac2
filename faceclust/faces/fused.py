"""A fused descriptor: several embedders' unit descriptors, weighted and concatenated, then
renormalised. ``[dlib, 0.5 * SFace]`` beats either alone on every development set
(docs/clustering.md, benchmarks/bench_fusion.py).

Each part keeps its own alignment: :class:`~faceclust.faces.finder.FaceFinder` cuts one set of
chips per part and hands them over as a tuple, in the parts' order.
"""

from __future__ import annotations

import math

import numpy as np

from faceclust.faces.embed import Distances

# The measured default: SFace at half the weight of dlib's ResNet.
DEFAULT_PARTS = (("dlib-resnet", 1.0), ("sface", 0.5))

# Measured on the three development sets (benchmarks/bench_cluster.py, bench_find.py):
# duplicates at 0.3 (with dedupe's photo checks: precision 0.993, recall 0.877 of 360 copies of
# 45 photos; 0.25 gives 0.992 / 0.833, 0.35 0.993 / 0.902 but groups more distinct photos);
# 0.65 accepts as many different-person pairs as dlib's 0.6 does on dlib's descriptors (0.64-0.67
# by set) and more same-person pairs; at equal false-accept rates (1e-3, 1e-2) fused distances
# are 1.51-1.68 times unit dlib distances, so the clustering thresholds scale by 1.6; the
# adaptive clusterer beats every reference on every set on these descriptors (on dlib's alone
# it merges look-alikes on celeba_train, so dlib keeps agglomerative).
FUSED_DISTANCES = Distances(same_person=0.65, duplicate=0.3, cluster_scale=1.6, cluster_method="adaptive")


class FusedEmbedder:
    name = "fused"
    distances = FUSED_DISTANCES

    def __init__(self, parts=DEFAULT_PARTS, checkpoint=None, **options) -> None:
        from faceclust.faces.embed import embedders

        if len(parts) < 2:
            raise ValueError("a fused descriptor needs at least two parts")
        if any(not weight > 0 for _name, weight in parts):
            raise ValueError("every part's weight must be above 0")
        self.weights = tuple(float(w) for _n, w in parts)
        # A fine-tuned checkpoint is of the dlib ResNet: it replaces that part's weights.
        self.parts = tuple(embedders.create(name, **({"checkpoint": checkpoint} if checkpoint and name == "dlib-resnet"
                                                     else {}), **options) for name, _w in parts)
        self.checkpoint = checkpoint
        self.dim = sum(p.dim for p in self.parts)
        self.alignment = tuple(getattr(p, "alignment", "dlib-150") for p in self.parts)
        self.chip_size = tuple(p.chip_size for p in self.parts)

    def checkpoint_scale(self, scale: float) -> float:
        """A fine-tuned dlib part's ``distance_scale`` (measured on dlib's unit descriptors) as a
        scale of fused distances: that part's share of a fused squared distance is its squared
        weight's share, the rest is unchanged. Approximate (it assumes both parts put a pair at
        about the same distance), and exact for scale 1."""
        if self.checkpoint is None or scale == 1.0:
            return scale
        share = self.weights[0] ** 2 / sum(w * w for w in self.weights)
        return math.sqrt(share * scale * scale + (1 - share))

    def identity(self) -> str:
        return "fused(" + "+".join(f"{p.identity()}*{w:g}" for p, w in zip(self.parts, self.weights)) + ")"

    def embed(self, chips: tuple) -> np.ndarray:
        """One chip array per part (aligned by row) -> float32 (n, dim), unit length."""
        if len(chips) != len(self.parts):
            raise ValueError(f"a fused descriptor takes {len(self.parts)} chip arrays, got {len(chips)}")
        blocks = []
        for part, weight, part_chips in zip(self.parts, self.weights, chips):
            v = part.embed(part_chips).astype(np.float64)
            blocks.append(weight * v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
        out = np.hstack(blocks)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)
