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
            import dlib

            from faceclust.models.files import LANDMARKS_FILE, model_path

            self._predictor = dlib.shape_predictor(str(model_path(LANDMARKS_FILE)))
        return self._predictor

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 5, 2) float32 landmark points for boxes (n, 4) given as left, top, right, bottom
        (right/bottom exclusive) in ``image`` pixels."""
        import dlib

        predictor = self._load()
        out = np.zeros((len(boxes), 5, 2), np.float32)
        for i, (left, top, right, bottom) in enumerate(np.asarray(boxes)):
            rect = dlib.rectangle(int(round(left)), int(round(top)),
                                  int(round(right)) - 1, int(round(bottom)) - 1)
            shape = predictor(image, rect)
            out[i] = [(p.x, p.y) for p in shape.parts()]
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


def _full_object_detection(points: np.ndarray):
    import dlib

    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    xs = [p.x for p in pts]
    ys = [p.y for p in pts]
    rect = dlib.rectangle(min(xs), min(ys), max(xs), max(ys))
    return dlib.full_object_detection(rect, pts)
