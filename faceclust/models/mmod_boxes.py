"""Detection rectangles as dlib's MMOD detector handles them: rounding to its integer rectangles
and its non-maximum suppression."""

from __future__ import annotations

import numpy as np


def round_rects(boxes: np.ndarray) -> np.ndarray:
    """dlib's ``drectangle`` to ``rectangle`` conversion: each side to the nearest integer,
    halves away from zero (``std::round``; -4.5 becomes -5, which matters at the image's
    left and top edges)."""
    return (np.sign(boxes) * np.floor(np.abs(boxes) + 0.5)).astype(np.int64)


def non_max_suppression(rects: np.ndarray, iou_thresh: float,
                        covered_thresh: float) -> np.ndarray:
    """Indices of the rects kept by dlib's greedy NMS; ``rects`` must be best-first.

    dlib keeps a rect unless it overlaps one already kept, per its ``test_box_overlap``:
    intersection over the area of the box *enclosing* both (not the union) above
    ``iou_thresh``, or intersection over either area above ``covered_thresh``; areas count
    pixels (inclusive corners). The overlap test is symmetric, so taking the best remaining
    rect and dropping everything after it that overlaps it keeps exactly the same rects,
    with one vectorised pass per kept rect instead of one per candidate.
    """
    rects = np.asarray(rects, np.int64).reshape(-1, 4)
    alive = np.ones(len(rects), bool)
    kept: list[int] = []
    for i in range(len(rects)):
        if not alive[i]:
            continue
        kept.append(i)
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        alive[rest[_overlaps(rects[i], rects[rest], iou_thresh, covered_thresh)]] = False
    return np.array(kept, np.int64)


def _overlaps(a: np.ndarray, others: np.ndarray, iou_thresh: float,
              covered_thresh: float) -> np.ndarray:
    """dlib's test_box_overlap of one rect against many."""
    inner = _areas(np.maximum(a[0], others[:, 0]), np.maximum(a[1], others[:, 1]),
                   np.minimum(a[2], others[:, 2]), np.minimum(a[3], others[:, 3]))
    outer = _areas(np.minimum(a[0], others[:, 0]), np.minimum(a[1], others[:, 1]),
                   np.maximum(a[2], others[:, 2]), np.maximum(a[3], others[:, 3]))
    area_a = _areas(*a)
    area_b = _areas(others[:, 0], others[:, 1], others[:, 2], others[:, 3])
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = ((inner / outer > iou_thresh) | (inner / area_a > covered_thresh)
               | (inner / area_b > covered_thresh))
    return (inner > 0) & hit


def _areas(left, top, right, bottom):
    return np.maximum(0, right - left + 1) * np.maximum(0, bottom - top + 1)
