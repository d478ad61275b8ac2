"""5-point landmarks and aligned 150x150 face chips (the embedder's input).

Landmarks come from dlib's 5-point shape predictor; chips are cut exactly as
``dlib.get_face_chip(img, shape, size=150, padding=0.25)`` cuts them, because the embedder
was trained on those. Pure compute on arrays.
"""

from __future__ import annotations

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25


class Aligner:
    """Loads the shape predictor once, on first use."""

    def __init__(self) -> None:
        self._predictor = None

    def _load(self):
        if self._predictor is None:
            from faceclust.models.files import LANDMARKS_FILE

            self._predictor = shape_predictor(LANDMARKS_FILE)
        return self._predictor

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 5, 2) float32 landmark points for boxes (n, 4) given as left, top, right, bottom
        (right/bottom exclusive) in ``image`` pixels."""

        predictor = self._load()
        out = np.zeros((len(boxes), 5, 2), np.float32)
        for i, box in enumerate(np.asarray(boxes)):
            crop, rect, (x0, y0) = face_crop(image, box)
            out[i] = [(p.x + x0, p.y + y0) for p in predictor(crop, rect).parts()]
        return out

    @staticmethod
    def chips(image: np.ndarray, landmarks: np.ndarray, size: int = CHIP_SIZE,
              padding: float = CHIP_PADDING) -> np.ndarray:
        """(n, size, size, 3) uint8 aligned chips from 5-point landmarks in ``image`` pixels."""
        import dlib

        if len(landmarks) == 0:
            return np.zeros((0, size, size, 3), np.uint8)
        shapes = [_full_object_detection(points) for points in landmarks]
        chips = dlib.get_face_chips(np.ascontiguousarray(image), dlib.full_object_detections(shapes),
                                    size=size, padding=padding)
        return np.stack([np.asarray(c, np.uint8) for c in chips])


def shape_predictor(filename: str):
    """One of dlib's shape predictors from face_recognition_models' files."""
    import dlib

    from faceclust.models.files import model_path

    return dlib.shape_predictor(str(model_path(filename)))


def face_crop(image: np.ndarray, box, margin: float = 2.0):
    """(the face and ``margin`` box sizes around it, the dlib rectangle of the box in it, the
    crop's offset). dlib copies the image a predictor is given; its predictors read pixels near
    the face only, so they find the same points in this crop (tests/test_pipeline.py) at a
    fraction of a whole photo's copy."""
    import dlib

    left, top, right, bottom = (int(round(v)) for v in box)
    height, width = image.shape[:2]
    mx, my = int(margin * (right - left)), int(margin * (bottom - top))
    x0, y0 = max(0, left - mx), max(0, top - my)
    x1, y1 = min(width, right + mx), min(height, bottom + my)
    rect = dlib.rectangle(left - x0, top - y0, right - 1 - x0, bottom - 1 - y0)
    return np.ascontiguousarray(image[y0:y1, x0:x1]), rect, (x0, y0)


def _full_object_detection(points: np.ndarray):
    import dlib

    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    xs = [p.x for p in pts]
    ys = [p.y for p in pts]
    rect = dlib.rectangle(min(xs), min(ys), max(xs), max(ys))
    return dlib.full_object_detection(rect, pts)
