"""A fused descriptor: several embedders' unit descriptors, weighted and concatenated, then
renormalised. ``[dlib, 0.5 * SFace]`` beats either alone on every development set
(docs/clustering.md, benchmarks/bench_fusion.py).

Each part keeps its own alignment: :class:`~faceclust.faces.finder.FaceFinder` cuts one set of
chips per part and hands them over as a tuple, in the parts' order.
"""

from __future__ import annotations

import numpy as np

# The measured default: SFace at half the weight of dlib's ResNet.
DEFAULT_PARTS = (("dlib-resnet", 1.0), ("sface", 0.5))


class FusedEmbedder:
    name = "fused"

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
