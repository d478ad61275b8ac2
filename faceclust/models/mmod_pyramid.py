"""The image pyramid of dlib's MMOD detector, as dlib builds it: level sizes, the tiled image
that holds every level, dlib's own enlargement (its bilinear SIMD sampling, bit for bit) and
the mapping of boxes back from tiles to the image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from faceclust.models.mmod_boxes import round_rects

# dlib's pyramid_down<6>: each level is 5/6 of the previous one; levels stop below 5 rows.
PYRAMID_N = 6


_MIN_LEVEL_ROWS = 5


@dataclass(frozen=True)
class TiledPyramid:
    """Where each pyramid level sits inside the one tiled image.

    ``rects`` is ``(levels, 4)`` int64: left, top, right, bottom (inclusive, as dlib's
    ``rectangle``); level 0 is the image itself. ``height`` and ``width`` are the tiled
    image's size.
    """

    rects: np.ndarray
    height: int
    width: int

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(rows, columns) of each level."""
        return [(int(bottom - top + 1), int(right - left + 1)) for left, top, right, bottom in self.rects]


def pyramid_level_sizes(rows: int, cols: int) -> list[tuple[int, int]]:
    """(rows, columns) of every level dlib builds for an image of this size."""
    if rows * cols == 0:
        return []
    rate = (PYRAMID_N - 1.0) / PYRAMID_N  # the same double dlib's pyramid_rate() gives
    sizes = [(rows, cols)]
    while True:
        rows, cols = math.floor(rate * rows), math.floor(rate * cols)
        if rows * cols == 0 or rows < _MIN_LEVEL_ROWS:
            return sizes
        sizes.append((rows, cols))


def tile_pyramid(sizes: list[tuple[int, int]], padding: int, outer_padding: int) -> TiledPyramid:
    """Lay the levels out as dlib's ``compute_tiled_image_pyramid_details`` does.

    Levels go down a first column under the image until the rest, stacked bottom-up in a
    second column against the right edge, fit beside the levels already placed; the second
    column stops before it would touch the image itself.
    """
    if not sizes:
        return TiledPyramid(np.zeros((0, 4), np.int64), 0, 0)
    rows0, width = sizes[0]
    total = sum(rows + padding for rows, _ in sizes) - 2 * padding
    height, prev_width = 0, 0
    for rows, cols in sizes:
        beside = cols <= width - prev_width - padding
        if beside and (height - rows0) * 2 >= total - rows0:
            break
        height += rows + padding
        prev_width = cols
    height -= padding

    rects: list[tuple[int, int, int, int]] = []
    y = outer_padding
    while y < height + outer_padding and len(rects) < len(sizes):
        rows, cols = sizes[len(rects)]
        rects.append((outer_padding, y, outer_padding + cols - 1, y + rows - 1))
        y += rows + padding
    y -= padding
    right = outer_padding + width - 1
    first = rects[0]
    while len(rects) < len(sizes):
        rows, cols = sizes[len(rects)]
        rect = (right - cols + 1, y - rows, right, y - 1)
        if _intersects(first, rect):
            break
        rects.append(rect)
        y -= rows + padding
    return TiledPyramid(np.array(rects, np.int64), height + 2 * outer_padding,
                        width + 2 * outer_padding)


def _intersects(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


def build_tiled_image(image: torch.Tensor, layout: TiledPyramid) -> torch.Tensor:
    """Put a normalised ``(3, H, W)`` image and its pyramid into one ``(1, 3, NR, NC)``
    channels-last tensor (the layout the conv stack runs fastest on).

    Each level is resized from the previous one (not from the image), with bilinear
    interpolation that maps corner to corner, as dlib's ``resize_image`` does; the gaps stay 0.
    """
    tiled = torch.empty((1, 3, layout.height, layout.width),
                        memory_format=torch.channels_last).zero_()
    # Levels are resized planar (contiguous NCHW): torch's channels-last bilinear kernel is
    # slow with only three channels. Pasting them converts the layout on the fly.
    level = image[None].contiguous()
    for i, (left, top, right, bottom) in enumerate(layout.rects.tolist()):
        if i:
            level = F.interpolate(level, size=(bottom - top + 1, right - left + 1),
                                  mode="bilinear", align_corners=True)
        tiled[:, :, top:bottom + 1, left:right + 1] = level
    return tiled


def tiled_to_image(boxes: np.ndarray, layout: TiledPyramid) -> np.ndarray:
    """Map float boxes ``(n, 4)`` in the tiled image back to level-0 image coordinates.

    A box belongs to the level whose rectangle holds its centre (rounded to a pixel), or the
    nearest level when none does; the first such level wins, as in dlib's ``nearest_rect``.
    Its corners then go up the pyramid one level at a time (``p * 6/5 + 0.3``), the same
    double-precision steps as dlib's ``pyramid_down<6>::point_up``.
    """
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float64)
    centre = np.floor((boxes[:, :2] + boxes[:, 2:]) / 2 + 0.5)
    level = nearest_level(centre, layout.rects)
    origin = layout.rects[level][:, :2].astype(np.float64)
    mapped = boxes.astype(np.float64) - np.concatenate([origin, origin], axis=1)
    ratio = PYRAMID_N / (PYRAMID_N - 1.0)
    for step in range(int(level.max(initial=0))):
        up = level > step
        mapped[up] = mapped[up] * ratio + 0.3
    return mapped


def nearest_level(points: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """Index of the first rect holding each point, else of the first nearest rect."""
    x, y = points[:, :1], points[:, 1:]
    left, top, right, bottom = (rects[None, :, i] for i in range(4))
    dx = np.clip(x, left, right) - x
    dy = np.clip(y, top, bottom) - y
    dist = np.hypot(dx, dy)
    inside = dist == 0
    return np.where(inside.any(axis=1), inside.argmax(axis=1), dist.argmin(axis=1))


def enlarge_like_dlib(image: np.ndarray) -> np.ndarray:
    """One doubling of a uint8 RGB image as dlib's ``pyramid_up`` with ``pyramid_down<2>`` does.

    dlib makes the image ``(2 rows + 1, 2 cols + 2)`` (its ``rect_up`` of the image, rounded)
    and fills it by corner-to-corner bilinear interpolation, truncating to uint8. Sample
    positions and weights follow its ``resize_image`` arithmetic: rows in double precision,
    columns four at a time in float32 with a running sum, the last few columns in double.
    """
    rows, cols = image.shape[:2]
    out_rows, out_cols = 2 * rows + 1, 2 * cols + 2
    top, bottom, tb = _row_samples(rows, out_rows)
    left, right, lr, simd_cols = _simd_column_samples(cols, out_cols)
    out = np.empty((out_rows, out_cols, 3), np.uint8)
    out[:, :simd_cols] = _simd_columns(image, top, bottom, tb, left, right, lr)
    out[:, simd_cols:] = _tail_columns(image, cols, out_cols, simd_cols, top, bottom, tb)
    return out


def _simd_columns(image: np.ndarray, top: np.ndarray, bottom: np.ndarray, tb: np.ndarray,
                  left: np.ndarray, right: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """dlib's four-wide float32 loop: the same products and sums in the same order."""
    src = torch.from_numpy(image.astype(np.float32))
    upper = src.index_select(0, torch.from_numpy(top))
    lower = src.index_select(0, torch.from_numpy(bottom))
    left_t, right_t = torch.from_numpy(left.astype(np.int64)), torch.from_numpy(
        right.astype(np.int64))
    inv_tb = torch.from_numpy((1 - tb).astype(np.float32)).view(-1, 1, 1)
    tb32 = torch.from_numpy(tb.astype(np.float32)).view(-1, 1, 1)
    lr_t = torch.from_numpy(lr).view(1, -1, 1)
    inv_lr = 1 - lr_t
    value = ((inv_tb * inv_lr) * upper.index_select(1, left_t)
             + (inv_tb * lr_t) * upper.index_select(1, right_t)
             + (tb32 * inv_lr) * lower.index_select(1, left_t)
             + (tb32 * lr_t) * lower.index_select(1, right_t))
    return value.to(torch.int32).numpy()


def _row_samples(rows: int, out_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top and bottom source rows and the double-precision fraction of each output row."""
    scale = (rows - 1) / max(out_rows - 1, 1)
    steps = np.full(out_rows + 1, scale)
    steps[0] = -scale
    y = np.add.accumulate(steps)[1:]  # sequential, as dlib's y += y_scale
    top = np.floor(y).astype(np.int64)
    return top, np.minimum(top + 1, rows - 1), y - top


def _simd_column_samples(cols: int, out_cols: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Left/right source columns and float32 fractions of the four-wide loop, and where it
    stops (the first group whose last right neighbour falls outside the image)."""
    scale = (cols - 1) / max(out_cols - 1, 1)
    start = -4 * scale
    lanes = np.array([start + j * scale for j in range(4)], np.float32)
    groups = out_cols // 4 + 1
    steps = np.full((groups + 1, 4), np.float32(4 * scale), np.float32)
    steps[0] = lanes
    x = np.add.accumulate(steps, axis=0, dtype=np.float32)[1:]
    # Truncation toward zero, like dlib's float-to-int SIMD conversion (the same truncation
    # on the output pixels is what makes our enlarged images equal dlib's).
    left = x.astype(np.int32)
    lr = x - left.astype(np.float32)
    stop = np.nonzero(left[:, 3] + 1 >= cols)[0]
    simd_groups = int(stop[0]) if len(stop) else groups
    n = min(simd_groups * 4, out_cols)
    left, lr = left[:simd_groups].ravel()[:n], lr[:simd_groups].ravel()[:n]
    return left, left + 1, lr, n


def _tail_columns(image: np.ndarray, cols: int, out_cols: int, first: int, top: np.ndarray,
                  bottom: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """The last columns, which dlib's loop finishes one at a time in double precision."""
    scale = (cols - 1) / max(out_cols - 1, 1)
    steps = np.full(out_cols - first + 1, scale)
    steps[0] = -scale + first * scale
    x = np.add.accumulate(steps)[1:]
    left = np.floor(x).astype(np.int64)
    right = np.minimum(left + 1, cols - 1)
    lr = (x - left)[None, :, None]
    src = image.astype(np.float64)
    tb = tb[:, None, None]
    value = ((1 - tb) * ((1 - lr) * src[top][:, left] + lr * src[top][:, right])
             + tb * ((1 - lr) * src[bottom][:, left] + lr * src[bottom][:, right]))
    return value.astype(np.int32)


def shrink_like_dlib(rects: np.ndarray, doublings: int) -> np.ndarray:
    """dlib's ``pyramid_down<2>::rect_down``: corners ``p / 2 - (1.25, 0.75)`` per doubling,
    then rounded to a ``rectangle``."""
    boxes = rects.astype(np.float64)
    shift = np.array([1.25, 0.75, 1.25, 0.75])
    for _ in range(doublings):
        boxes = boxes / 2.0 - shift
    return round_rects(boxes)


def _doublings(scale: float) -> int:
    """k when ``scale == 2**k`` (k >= 1), else 0."""
    k = round(math.log2(scale)) if scale > 1 else 0
    return k if k >= 1 and scale == 2.0 ** k else 0
