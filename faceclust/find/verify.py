"""Verification: are two faces the same person?

The decision is the model's own: faces of one person lie closer than its same-person distance
(``Distances.same_person``: 0.65 for the fused default, dlib's 0.6 for dlib's raw descriptors). The probability next to it comes from a
logistic regression on pair features (the distance; optionally ``|f(a) - f(b)|``) fitted on
labelled pairs by ``faceclust calibrate`` and shipped as a handful of numbers in
``faceclust/find/calibration*.json``, each naming the model it was fitted for.

The regression is fitted with both classes weighted equally, so its probability is the one for
even prior odds ("one photo of the person, one photo of someone: are they the same?"). Other
odds shift the logit by ``log(prior / (1 - prior))``: :meth:`Calibration.probability` takes a
``prior``.

>>> cal = Calibration("m", "distance", intercept=9.0, coef=(-15.0,))
>>> a, b = np.zeros((1, 4)), np.full((1, 4), 0.3)  # distance 0.6
>>> round(float(cal.probability(a, b)[0]), 3)
0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceclust.errors import FaceclustError, UsageProblem
from faceclust.faces.embed import DEFAULT_EMBEDDER
from faceclust.find.calibration import DEFAULT_THRESHOLD, Calibration, load_calibration  # noqa: F401


class NoFaceError(FaceclustError):
    """A photo given to verify or search has no face the detector can find."""


# -- pair features and the calibration ---------------------------------------------------------


# -- pairs and their scores --------------------------------------------------------------------


# -- labelled faces from a catalog -------------------------------------------------------------


# -- verifying two photos ----------------------------------------------------------------------


@dataclass
class PhotoFaces:
    """The faces of one photo, numbered left to right."""

    path: str
    boxes: np.ndarray  # float32 (n, 4)
    scores: np.ndarray  # float32 (n,)
    embeddings: np.ndarray  # float32 (n, d)

    def __len__(self) -> int:
        return len(self.scores)

    def describe(self, index: int) -> dict:
        return {"face": index, "box": [round(float(v), 1) for v in self.boxes[index]],
                "score": round(float(self.scores[index]), 3)}


def photo_faces(path: Path, finder) -> PhotoFaces:
    """Detect and embed the faces of a photo (in a catalog or not); raise NoFaceError if none."""
    from faceclust.faces.finder import find_faces_in_file

    found = find_faces_in_file(Path(path), finder=finder)
    if len(found) == 0:
        raise NoFaceError(f"no face found in {path}; try a smaller --min-face, or --detector mmod "
                          "if another detector was chosen")
    order = np.lexsort((found.boxes[:, 1], found.boxes[:, 0]))
    return PhotoFaces(str(path), found.boxes[order], found.scores[order], found.embeddings[order])


def _pick(faces: PhotoFaces, index: int | None) -> list[int]:
    if index is None:
        return list(range(len(faces)))
    if not 0 <= index < len(faces):
        raise UsageProblem(f"{faces.path} has {len(faces)} face(s), numbered 0 to {len(faces) - 1} "
                           f"from left to right; face {index} does not exist")
    return [index]


@dataclass
class VerifyResult:
    photo_a: PhotoFaces
    photo_b: PhotoFaces
    pairs: list[dict]
    threshold: float
    model_id: str
    calibration: str | None  # what the probability was calibrated on, None when it is absent
    note: str | None = None

    def as_dict(self) -> dict:
        return {
            "photo_a": {"path": self.photo_a.path, "faces": [self.photo_a.describe(i) for i in range(len(self.photo_a))]},
            "photo_b": {"path": self.photo_b.path, "faces": [self.photo_b.describe(i) for i in range(len(self.photo_b))]},
            "pairs": self.pairs, "threshold": self.threshold, "model_id": self.model_id,
            "calibration": self.calibration, "note": self.note,
        }


def verify_photos(photo_a: Path, photo_b: Path, *, face_a: int | None = None, face_b: int | None = None,
                  threshold: float | None = None, calibration: Calibration | Path | str | None = None,
                  prior: float = 0.5, detect=None, embedder: str = DEFAULT_EMBEDDER, finder=None,
                  model: str | Path | None = None) -> VerifyResult:
    """Compare the faces of two photos: every pair (or only faces ``face_a``/``face_b``, numbered
    from 0 left to right) gets its distance, the decision "same person" (distance below the
    threshold: the model's same-person distance by default, 0.65 for the fused descriptor and
    dlib's 0.6 for dlib's) and a calibrated probability.

    A calibration fitted for another model gives no probability (and says so in ``note``)
    rather than a wrong one.
    """
    from faceclust.faces.embed import DLIB_DISTANCES, ModelChoice, model_name

    choice = None
    if model is not None:  # a name ("default", "dlib"), or a fine-tuned model: its own threshold scale
        named = model_name(model)
        choice = ModelChoice.resolve(named) if named else ModelChoice.resolve(embedder, model)
    if not 0 < prior < 1:
        raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
    if finder is None:
        from faceclust.faces.finder import FaceFinder

        finder = FaceFinder.create(detect, choice.create() if choice else embedder)
    if threshold is None:
        # The embedder's own same-person distance (dlib's 0.6 for its descriptors).
        threshold = choice.distances.same_person if choice else getattr(
            finder.embedder, "distances", DLIB_DISTANCES).same_person
    threshold = float(threshold)
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    model_id = finder.embedder.identity()
    if not isinstance(calibration, Calibration):
        calibration = load_calibration(calibration, model_id)
    note = None
    if calibration.model_id != model_id:
        note = (f"no probability: the calibration was fitted for {calibration.model_id}, not {model_id}; "
                "fit one with 'faceclust calibrate LABELLED_DIR -o FILE' and pass --calibration FILE")
    a, b = photo_faces(Path(photo_a), finder), photo_faces(Path(photo_b), finder)
    ia, ib = _pick(a, face_a), _pick(b, face_b)
    grid_a = np.repeat(ia, len(ib))
    grid_b = np.tile(ib, len(ia))
    va, vb = a.embeddings[grid_a], b.embeddings[grid_b]
    distances = np.linalg.norm(va.astype(np.float64) - vb, axis=1)
    probability = calibration.probability(va, vb, prior) if note is None else None
    pairs = [{"face_a": int(x), "face_b": int(y), "distance": round(float(d), 4), "same": bool(d < threshold),
              "probability": None if probability is None else round(float(probability[k]), 4)}
             for k, (x, y, d) in enumerate(zip(grid_a, grid_b, distances))]
    described = None if note else calibration.info.get("fitted_on", "unknown data")
    return VerifyResult(a, b, pairs, threshold, model_id, described, note)
