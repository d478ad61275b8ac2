"""Face embedders, registered by name: aligned chips in, descriptors out.

Pure compute. Weights load once, on first use. Every embedder reports a model identity
(name + content hash of its weights) that is stored with each embedding, so a different
model later triggers re-embedding.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from faceclust.registry import Registry


class Embedder(Protocol):
    name: str
    dim: int
    chip_size: int
    # Optional: ``expect(photos)``, told before the first embedding how many photos are
    # coming, to prepare what pays off only over many (as ``Detector.expect``).

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """uint8 (n, chip, chip, 3) RGB -> float32 (n, dim)."""

    def identity(self) -> str: ...


embedders: Registry[Embedder] = Registry("embedder")

# The fused descriptor ([dlib, 0.5 SFace]): better than either part on every development set
# (docs/clustering.md). "dlib" names dlib's ResNet alone, today's descriptor before 0.2.
DEFAULT_EMBEDDER = "fused"


@dataclass(frozen=True)
class Distances:
    """An embedder's default distance thresholds and clusterer, each measured (docs/clustering.md).

    ``same_person`` (verify, search) and ``duplicate`` (dedupe) apply to the descriptors as
    stored. ``cluster_scale`` multiplies the clusterers' and recognition's default thresholds,
    which were set on unit dlib descriptors: it is how far apart this embedder puts faces at the
    same false-accept rate. An embedder declares its own as ``distances``; one that does not
    (a test's fake, a plug-in) gets dlib's.
    """

    same_person: float = 0.6  # dlib's own same-person distance (about FAR 1e-2 on lfw_dev)
    duplicate: float = 0.25
    cluster_scale: float = 1.0
    cluster_method: str = "agglomerative"  # the clusterer measured best on these descriptors

    def scaled(self, factor: float) -> "Distances":
        return dataclasses.replace(self, same_person=self.same_person * factor, duplicate=self.duplicate * factor,
                                   cluster_scale=self.cluster_scale * factor)


DLIB_DISTANCES = Distances()


def torch_threads() -> int:
    """The threads torch computes with (faceclust.cpu: --threads, FACECLUST_THREADS, the cores)."""
    from faceclust.cpu import threads

    return threads()


@embedders.register("dlib-resnet")
class DlibResNetEmbedder:
    """dlib's 128-D face-recognition ResNet (LFW 99.38%), rebuilt in torch.

    Descriptors are dlib's own (not L2-normalised): dlib's same-person threshold of 0.6
    applies to them unchanged. ``checkpoint`` names fine-tuned weights written by
    ``faceclust train``; their descriptors are normalised to the base model's mean length.
    """

    name = "dlib-resnet"
    dim = 128
    chip_size = 150
    distances = DLIB_DISTANCES

    def __init__(self, batch_size: int = 32, path=None, checkpoint=None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.path = path
        self.checkpoint = checkpoint
        self._net = None

    def _load(self):
        if self._net is None:
            import torch

            from faceclust.models.resnet import load_resnet

            torch.set_num_threads(torch_threads())
            self._net = load_resnet(self.path, self.checkpoint)
        return self._net

    def identity(self) -> str:
        from pathlib import Path

        from faceclust.models.files import EMBEDDER_FILE, file_sha256, model_path

        if self.checkpoint:
            return f"{self.name}+ft:{file_sha256(Path(self.checkpoint).resolve())[:16]}"
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


@embedders.register("sface")
def _sface(**options) -> Embedder:
    """OpenCV Zoo's SFace (faceclust.faces.sface), imported when asked for."""
    from faceclust.faces.sface import SFaceEmbedder

    return SFaceEmbedder(**options)


@embedders.register("fused")
def _fused(**options) -> Embedder:
    """Several embedders' descriptors, weighted and concatenated (faceclust.faces.fused)."""
    from faceclust.faces.fused import FusedEmbedder

    return FusedEmbedder(**options)


# -- which model a catalog uses -----------------------------------------------------------------

MODEL_SETTING = "model"
# What ``--model`` accepts besides a checkpoint file: the default, or an embedder by name.
# (SFace alone is a part of the fusion, not offered: its thresholds were never measured.)
MODEL_ALIASES = {"default": DEFAULT_EMBEDDER, "fused": "fused", "dlib": "dlib-resnet", "dlib-resnet": "dlib-resnet"}


def model_name(model) -> str | None:
    """The embedder ``model`` names ("default", "fused", "dlib"), or None for a checkpoint file."""
    return MODEL_ALIASES.get(str(model))


@dataclass(frozen=True)
class ModelChoice:
    """The embedding model of a catalog: a registered embedder, optionally with fine-tuned weights.

    ``distance_scale`` multiplies the default distance thresholds (clustering, recognition,
    search, verify): the ratio of the fine-tuned model's validated threshold to the base
    model's on the same held-out faces, 1.0 for the pretrained model.
    """

    embedder: str = DEFAULT_EMBEDDER
    checkpoint: str | None = None
    model_id: str = ""
    distance_scale: float = 1.0

    @classmethod
    def resolve(cls, embedder: str | None = None, checkpoint: str | os.PathLike | None = None) -> "ModelChoice":
        """The choice for an embedder name and a checkpoint path (loaded and checked here)."""
        embedder = embedder or DEFAULT_EMBEDDER
        scale = 1.0
        if checkpoint is not None:
            from faceclust.models.checkpoint import load_checkpoint

            checkpoint = os.path.abspath(checkpoint)
            meta = load_checkpoint(checkpoint).meta
            scale = float(meta.get("distance_scale") or 1.0)
        unidentified = cls(embedder, checkpoint, "", scale)
        return dataclasses.replace(unidentified, model_id=unidentified.create().identity())

    def create(self, **options) -> Embedder:
        if self.checkpoint:
            options["checkpoint"] = self.checkpoint
        return embedders.create(self.embedder, **options)

    @property
    def distances(self) -> Distances:
        """The default thresholds for this model's descriptors (a fine-tuned model's scaled)."""
        embedder = self.create()
        base = getattr(embedder, "distances", DLIB_DISTANCES)
        scale = getattr(embedder, "checkpoint_scale", lambda s: s)(self.distance_scale)
        return base if scale == 1.0 else base.scaled(scale)

    def as_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def catalog_model(catalog) -> ModelChoice:
    """The model the catalog's embeddings come from: the one its last scan chose, else the default."""
    stored = catalog.setting(MODEL_SETTING)
    if stored:
        try:
            data = json.loads(stored)
            return ModelChoice(str(data["embedder"]), data.get("checkpoint"), str(data["model_id"]),
                               float(data.get("distance_scale") or 1.0))
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: fall back to the default, which a scan then records again
    return ModelChoice.resolve()


def choose_model(catalog, model: str | None = None, embedder: str | None = None) -> ModelChoice:
    """The model a scan uses: ``model`` (a checkpoint path, "default" for the pretrained
    default, or an embedder's name such as "dlib"), else ``embedder``, else the catalog's current model (its file hashed again: a
    checkpoint retrained in place is a new model). The scan records it with
    :func:`record_model` once every face has an embedding from it."""
    if model is not None:
        named = model_name(model)
        choice = ModelChoice.resolve(named) if named else ModelChoice.resolve(embedder, model)
    elif embedder is not None:
        choice = ModelChoice.resolve(embedder)
    else:
        choice = catalog_model(catalog)
        if choice.checkpoint and not os.path.isfile(choice.checkpoint):
            from faceclust.errors import ModelNotFound

            raise ModelNotFound(f"the catalog uses the fine-tuned model {choice.checkpoint}, which is gone; "
                                "put it back, or scan with --model OTHER.pt or --model default")
        if choice.checkpoint:
            choice = ModelChoice.resolve(choice.embedder, choice.checkpoint)
    return choice


def record_model(catalog, choice: ModelChoice) -> None:
    """Make ``choice`` the catalog's model (cluster, search, export... use it from now on)."""
    catalog.set_setting(MODEL_SETTING, choice.as_json())
