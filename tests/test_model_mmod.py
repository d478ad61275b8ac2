"""The torch rebuild of dlib's MMOD CNN face detector against dlib itself.

Parity photos: the first photo of the first celeba_train identities (up to 512 px), the first
photos of lfw_dev identities enlarged 2x with PIL (their ~60 px faces become findable at
scale 1), and scikit-image's astronaut. dlib's detector takes about a second per photo, so
every reference result is computed once per module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceclust.models.files import DETECTOR_FILE, model_path
from faceclust.models.mmod import MMODDetector
from faceclust.models.mmod_boxes import non_max_suppression
from faceclust.models.mmod_pyramid import (
    nearest_level,
    pyramid_level_sizes,
    tile_pyramid,
    tiled_to_image,
)

CELEBA_PHOTOS = 12
LFW_ENLARGED = 8
LFW_UPSAMPLED = 10
SCORE_TOLERANCE = 1e-3
MIN_PARITY_RECTS = 15


def _first_photos(root: Path, start: int, count: int) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())[start:start + count]
    return [sorted(folder.glob("*.jpg"))[0] for folder in folders]


def _load(path: Path, enlarge: int = 1) -> np.ndarray:
    from PIL import Image

    image = Image.open(path).convert("RGB")
    if enlarge != 1:
        image = image.resize((image.width * enlarge, image.height * enlarge),
                             Image.Resampling.BICUBIC)
    return np.asarray(image)


def _dlib_detect(reference, image: np.ndarray, upsample: int) -> tuple[np.ndarray, np.ndarray]:
    found = reference(image, upsample)
    rects = np.array([[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()]
                      for d in found], np.int64).reshape(-1, 4)
    return rects, np.array([d.confidence for d in found], np.float64)


def _by_position(rects: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order detections by rectangle so that near-equal scores cannot swap the comparison."""
    order = np.lexsort(rects.T[::-1])
    return rects[order], scores[order]


def _inclusive_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of boxes whose right and bottom sides are inclusive."""
    def area(r: np.ndarray) -> float:
        return (r[2] - r[0] + 1) * (r[3] - r[1] + 1)

    inner = (max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
             * max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1))
    return inner / (area(a) + area(b) - inner)


@pytest.fixture(scope="module")
def detector() -> MMODDetector:
    return MMODDetector(threads=2)


@pytest.fixture(scope="module")
def reference(dlib_module):
    return dlib_module.cnn_face_detection_model_v1(str(model_path(DETECTOR_FILE)))


@pytest.fixture(scope="module")
def parity_photos(shared_data: Path) -> list[np.ndarray]:
    from skimage.data import astronaut

    celeba = [_load(p) for p in _first_photos(shared_data / "celeba_train", 0, CELEBA_PHOTOS)]
    lfw = [_load(p, 2) for p in _first_photos(shared_data / "lfw_dev", 0, LFW_ENLARGED)]
    return celeba + lfw + [astronaut()]


@pytest.fixture(scope="module")
def small_photos(shared_data: Path) -> list[np.ndarray]:
    """Native 150 px lfw photos, whose faces need dlib's upsampling."""
    return [_load(p) for p in _first_photos(shared_data / "lfw_dev", LFW_ENLARGED, LFW_UPSAMPLED)]


def _compare(detector, reference, images, scale: float, upsample: int) -> dict[str, float]:
    """Detect with both; count rectangles and exact matches, and the worst score gap."""
    compared = matched = 0
    worst = 0.0
    for image in images:
        boxes, scores = detector.detect(image, scale=scale)
        assert boxes.dtype == np.float32 and scores.dtype == np.float32
        assert np.all(np.diff(scores) <= 0), "scores must come best first"
        theirs, their_scores = _by_position(*_dlib_detect(reference, image, upsample))
        assert np.array_equal(boxes, np.round(boxes)), "rectangles must be whole pixels"
        ours, our_scores = _by_position(boxes.astype(np.int64), scores.astype(np.float64))
        compared += len(theirs)
        if ours.shape == theirs.shape and np.array_equal(ours, theirs):
            matched += len(theirs)
            worst = max(worst, float(np.abs(our_scores - their_scores).max(initial=0.0)))
    return {"photos": len(images), "compared": compared, "matched": matched,
            "max_score_diff": worst}


@pytest.mark.models
@pytest.mark.shared
def test_same_rectangles_and_scores_as_dlib_at_scale_1(detector, reference, parity_photos,
                                                       record_property):
    result = _compare(detector, reference, parity_photos, scale=1.0, upsample=0)
    for key, value in result.items():
        record_property(key, value)
    print(f"scale 1 vs dlib upsample 0: {result}")
    assert result["photos"] >= 20
    assert result["compared"] >= MIN_PARITY_RECTS, "too few faces found to mean anything"
    assert result["matched"] == result["compared"]
    assert result["max_score_diff"] < SCORE_TOLERANCE


@pytest.mark.models
@pytest.mark.shared
def test_scale_2_reproduces_dlib_upsample_once(detector, reference, small_photos,
                                               record_property):
    """scale=2 enlarges as dlib's pyramid_up does and maps boxes back with its rect_down."""
    result = _compare(detector, reference, small_photos, scale=2.0, upsample=1)
    for key, value in result.items():
        record_property(key, value)
    print(f"scale 2 vs dlib upsample 1: {result}")
    assert result["compared"] >= LFW_UPSAMPLED, "every lfw photo shows at least one face"
    assert result["matched"] == result["compared"]
    assert result["max_score_diff"] < SCORE_TOLERANCE


@pytest.mark.models
@pytest.mark.shared
def test_other_scales_map_boxes_back_to_the_input(detector, parity_photos):
    """Detecting at scale s finds the boxes of the image resized by s, in input pixels."""
    from PIL import Image

    for scale in (1.5, 0.75):
        for image in parity_photos[::4]:
            height, width = image.shape[:2]
            size = (round(width * scale), round(height * scale))
            resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
            direct, _ = detector.detect(resized)
            sx, sy = width / size[0], height / size[1]
            expected = np.stack([direct[:, 0] * sx, direct[:, 1] * sy,
                                 (direct[:, 2] + 1) * sx - 1, (direct[:, 3] + 1) * sy - 1], axis=1)
            boxes, _ = detector.detect(image, scale=scale)
            assert len(boxes) == len(expected)
            for box in expected:
                assert max(_inclusive_iou(box, other) for other in boxes) >= 0.9


@pytest.mark.models
@pytest.mark.parametrize("shape", [(40, 60, 3), (1, 1, 3), (3, 100, 3), (0, 10, 3)])
@pytest.mark.parametrize("scale", [1.0, 2.0, 0.5])
def test_image_smaller_than_the_window_gives_empty_arrays(detector, shape, scale):
    # dlib itself throws on images under about 10 px; an empty result is what callers want.
    boxes, scores = detector.detect(np.full(shape, 128, np.uint8), scale=scale)
    assert boxes.shape == (0, 4) and boxes.dtype == np.float32
    assert scores.shape == (0,) and scores.dtype == np.float32


@pytest.mark.models
def test_blank_image_has_no_faces(detector):
    for value in (0, 128, 255):
        boxes, scores = detector.detect(np.full((300, 400, 3), value, np.uint8), scale=2.0)
        assert boxes.shape == (0, 4) and scores.shape == (0,)


@pytest.mark.models
def test_max_face_drops_the_levels_with_big_windows(detector):
    from skimage.data import astronaut

    image = astronaut()
    boxes, _ = detector.detect(image)
    assert len(boxes) >= 1
    biggest = float((boxes[:, 2] - boxes[:, 0] + 1).max())
    same, _ = detector.detect(image, max_face=10 * biggest)
    np.testing.assert_array_equal(same, boxes)
    smaller, _ = detector.detect(image, max_face=biggest - 1)
    widths = smaller[:, 2] - smaller[:, 0] + 1
    assert np.all(widths <= biggest - 1)
    none, _ = detector.detect(image, max_face=40)  # below the 80 px window at scale 1
    assert none.shape == (0, 4)


@pytest.mark.models
def test_rejects_what_is_not_a_uint8_rgb_image(detector):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError, match="scale"):
        detector.detect(np.zeros((100, 100, 3), np.uint8), scale=0)


# ---------------------------------------------------------------------------------------
# The pure pieces, without the model.

@pytest.mark.parametrize("rows, cols", [(768, 1024), (150, 150), (512, 341), (1536, 2048),
                                        (90, 400), (400, 90)])
def test_tiled_pyramid_levels_do_not_overlap_and_stay_inside(rows, cols):
    sizes = pyramid_level_sizes(rows, cols)
    layout = tile_pyramid(sizes, padding=10, outer_padding=11)
    assert layout.sizes == sizes[:len(layout.rects)]
    assert tuple(layout.rects[0]) == (11, 11, 11 + cols - 1, 11 + rows - 1)
    assert layout.rects[:, :2].min() >= 11
    assert layout.rects[:, 2].max() < layout.width - 10
    assert layout.rects[:, 3].max() < layout.height - 10
    for i, a in enumerate(layout.rects):
        for b in layout.rects[i + 1:]:
            gap_x = max(a[0], b[0]) - min(a[2], b[2]) - 1
            gap_y = max(a[1], b[1]) - min(a[3], b[3]) - 1
            # dlib only keeps the second column off the image itself, so the last small
            # levels may come closer than the padding (2 px for a 150 px square): no overlap
            # is all that holds.
            assert max(gap_x, gap_y) >= 0, "levels must not overlap"


def test_pyramid_levels_shrink_by_five_sixths_down_to_five_rows():
    sizes = pyramid_level_sizes(768, 1024)
    assert sizes[:3] == [(768, 1024), (640, 853), (533, 710)]
    assert sizes[-1][0] >= 5 and int(sizes[-1][0] * 5 / 6) < 5


def _nearest_level_loop(point: tuple[float, float], rects: np.ndarray) -> int:
    """dlib's nearest_rect written plainly: the first rect holding the point, else the first
    at the smallest distance."""
    best, best_dist = 0, float("inf")
    for i, (left, top, right, bottom) in enumerate(rects):
        if left <= point[0] <= right and top <= point[1] <= bottom:
            return i
        dx = min(max(point[0], left), right) - point[0]
        dy = min(max(point[1], top), bottom) - point[1]
        dist = (dx * dx + dy * dy) ** 0.5
        if dist < best_dist:
            best, best_dist = i, dist
    return best


def test_nearest_level_matches_a_plain_loop():
    layout = tile_pyramid(pyramid_level_sizes(480, 640), 10, 11)
    rng = np.random.default_rng(0)
    points = np.floor(rng.uniform(-30, [layout.width + 30, layout.height + 30], (500, 2)))
    fast = nearest_level(points, layout.rects)
    assert fast.tolist() == [_nearest_level_loop(tuple(p), layout.rects) for p in points]


def test_boxes_on_level_zero_keep_their_place_and_deeper_levels_grow():
    layout = tile_pyramid(pyramid_level_sizes(480, 640), 10, 11)
    window = np.array([[11 + 100 - 39.5, 11 + 50 - 39.5, 11 + 100 + 39.5, 11 + 50 + 39.5]])
    np.testing.assert_allclose(tiled_to_image(window, layout), [[60.5, 10.5, 139.5, 89.5]])
    left, top = layout.rects[2, :2]
    deeper = np.array([[left + 10.0, top + 10.0, left + 89.0, top + 89.0]])
    mapped = tiled_to_image(deeper, layout)[0]
    assert mapped[2] - mapped[0] == pytest.approx(79 * 1.2 ** 2)


def test_nms_compares_intersection_with_the_enclosing_box():
    # Diagonal 28 px offsets of 100 px boxes: over the union the overlap is 0.35, over the
    # enclosing box 0.316, so dlib's threshold of 0.338 keeps both.
    rects = np.array([[0, 0, 99, 99], [28, 28, 127, 127], [0, 10, 99, 109],
                      [300, 300, 379, 379]])
    assert non_max_suppression(rects, iou_thresh=0.338, covered_thresh=1.0).tolist() == [0, 1, 3]
    assert non_max_suppression(rects, iou_thresh=0.3, covered_thresh=1.0).tolist() == [0, 3]
    assert non_max_suppression(rects[:0], 0.338, 1.0).shape == (0,)


def test_nms_drops_a_box_mostly_inside_a_kept_one_only_below_full_cover():
    rects = np.array([[0, 0, 199, 199], [50, 50, 89, 89]])
    assert non_max_suppression(rects, iou_thresh=0.338, covered_thresh=1.0).tolist() == [0, 1]
    assert non_max_suppression(rects, iou_thresh=0.338, covered_thresh=0.9).tolist() == [0]


def _nms_loop(rects: np.ndarray, iou_thresh: float, covered_thresh: float) -> list[int]:
    """dlib's to_label NMS written plainly: keep a rect unless it overlaps a kept one."""
    def area(r):
        return max(0, r[2] - r[0] + 1) * max(0, r[3] - r[1] + 1)

    kept: list[int] = []
    for i, b in enumerate(rects):
        for k in kept:
            a = rects[k]
            inner = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
            if inner == 0:
                continue
            outer = area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
            if (inner / outer > iou_thresh or inner / area(a) > covered_thresh
                    or inner / area(b) > covered_thresh):
                break
        else:
            kept.append(i)
    return kept


@pytest.mark.parametrize("covered_thresh", [1.0, 0.6])
def test_nms_matches_a_plain_loop_on_crowded_boxes(covered_thresh):
    rng = np.random.default_rng(1)
    for _ in range(20):
        tl = rng.integers(-50, 300, (60, 2))
        size = rng.integers(20, 150, (60, 1))
        rects = np.concatenate([tl, tl + size - 1], axis=1)
        fast = non_max_suppression(rects, 0.338, covered_thresh).tolist()
        assert fast == _nms_loop(rects, 0.338, covered_thresh)
