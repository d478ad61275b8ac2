"""Face embedders, registered by name: aligned chips in, descriptors out.

Pure compute. Weights load once, on first use. Every embedder reports a model identity
(name + content hash of its weights) that is stored with each embedding, so a different
model later triggers re-embedding.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from faceclust.registry import Registry


class Embedder(Protocol):
    name: str
    dim: int
    chip_size: int

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """uint8 (n, chip, chip, 3) RGB -> float32 (n, dim)."""

    def identity(self) -> str: ...


embedders: Registry[Embedder] = Registry("embedder")

DEFAULT_EMBEDDER = "dlib-resnet"


def torch_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@embedders.register("dlib-resnet")
class DlibResNetEmbedder:
    """dlib's 128-D face-recognition ResNet (LFW 99.38%), rebuilt in torch.

    Descriptors are dlib's own (not L2-normalised): dlib's same-person threshold of 0.6
    applies to them unchanged. ``weights`` may name a fine-tuned checkpoint later.
    """

    name = "dlib-resnet"
    dim = 128
    chip_size = 150

    def __init__(self, batch_size: int = 32, path=None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.path = path
        self._net = None

    def _load(self):
        if self._net is None:
            import torch

            from faceclust.models.resnet import load_resnet

            torch.set_num_threads(torch_threads())
            self._net = load_resnet(self.path)
        return self._net

    def identity(self) -> str:
        from pathlib import Path

        from faceclust.models.files import EMBEDDER_FILE, file_sha256, model_path

        path = Path(self.path) if self.path else model_path(EMBEDDER_FILE)
        return f"{self.name}:{file_sha256(path)[:16]}"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        import torch

        from faceclust.models.resnet import normalize_chips

        net = self._load()
        out = []
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                batch = normalize_chips(chips[start:start + self.batch_size])
                batch = batch.contiguous(memory_format=torch.channels_last)
                out.append(net(batch).float().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
