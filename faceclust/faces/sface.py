"""SFace (OpenCV Zoo, Apache-2.0) as a faceclust embedder: 112x112 ArcFace-aligned RGB chips
in, 128 values out, from the network rebuilt in torch (:mod:`faceclust.models.sface`).

Its chips are not dlib's: they come from :class:`faceclust.faces.arcface.ArcFaceAligner`
(``alignment = "arcface-112"``). Descriptors are SFace's own (not L2-normalised).
"""

from __future__ import annotations

import numpy as np


class SFaceEmbedder:
    name = "sface"
    dim = 128
    chip_size = 112
    alignment = "arcface-112"

    # Measured on 2 cores: 4 to 16 chips a call run fastest (the first layers' activations stay
    # in cache); larger batches are slower per face (benchmarks/bench_sface.py).
    def __init__(self, batch_size: int = 8, path=None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.path = path
        self._net = None
        self._frozen = None

    def _load(self):
        if self._net is None:
            import torch

            from faceclust.faces.embed import torch_threads
            from faceclust.models.sface import load_sface

            torch.set_num_threads(torch_threads())
            self._net = load_sface(self.path).to(memory_format=torch.channels_last)
        return self._net

    # Told that more than this many photos are coming (expect), the network is put in
    # TorchScript's inference form first (0.5-0.7 s; on one thread, batches of 4 to 8 chips then
    # run 1.2-1.37x as fast: benchmarks/bench_sface.py). It saves 3-4 ms a face, so it is worth
    # its time from about 150 faces: 100 photos. Smaller scans and one-shot commands keep the
    # plain one. (Built on a thread of its own while the plain one embeds, it made no measurable
    # difference to a scan and left a scan's first descriptors to timing: not done.)
    FREEZE_AFTER = 100
    FREEZE_TOLERANCE = 1e-3  # the two forms' descriptors differ by about 1e-5

    def expect(self, photos: int) -> None:
        """Build the inference form now when more than FREEZE_AFTER photos are coming (called
        before the first embedding, never while one runs)."""
        if photos > self.FREEZE_AFTER and self._frozen is None:
            import torch

            from faceclust.models.freeze import frozen

            net = self._load()
            example = torch.rand((self.batch_size, 3, self.chip_size, self.chip_size),
                                 generator=torch.Generator().manual_seed(0)) * 255
            self._frozen = frozen(net, example.contiguous(memory_format=torch.channels_last),
                                  self.FREEZE_TOLERANCE) or False

    def identity(self) -> str:
        from pathlib import Path

        from faceclust.models.files import file_sha256, sface_path

        path = Path(self.path) if self.path else sface_path()
        return f"{self.name}:{file_sha256(path)[:16]}"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """uint8 (n, 112, 112, 3) RGB -> float32 (n, 128)."""
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (self.chip_size, self.chip_size, 3):
            raise ValueError(f"SFace takes (n, 112, 112, 3) chips, got {chips.shape}")
        import torch

        plain = self._load()
        out = []
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(chips[start:start + self.batch_size]))
                batch = batch.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
                # The inference form is slower on one chip alone (0.8-0.9x): that one takes the plain.
                net = self._frozen if self._frozen and len(batch) > 1 else plain
                out.append(net(batch).numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
