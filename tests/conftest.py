"""Shared fixtures.

Real photo sets live in ../shared/data (never copied into the project); tests that need them
skip with a clear reason when that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FACECLUST_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))

# What faceclust caches (built models, thumbnails, training features) goes to a folder of this
# test run, not the user's ~/.cache; the CLI's subprocesses inherit it.
if "FACECLUST_CACHE" not in os.environ:
    import tempfile

    os.environ["FACECLUST_CACHE"] = tempfile.mkdtemp(prefix="faceclust-test-cache-")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The labelled development photo sets, or skip."""
    if not (SHARED_DATA / "lfw_dev").is_dir() or not (SHARED_DATA / "celeba_train").is_dir():
        pytest.skip(f"real photo sets not found at {SHARED_DATA} (set FACECLUST_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dlib_module():
    """dlib itself (the reference implementation), or skip."""
    return pytest.importorskip("dlib", reason="dlib (dlib-bin) is not installed")


# -- a fake detector and embedder, registered for every test ----------------------------------
#
# Test images are drawn with Pillow: each "face" is a filled square in one of MARKER_COLOURS on
# a grey background. The fake detector finds those squares exactly; the fake embedder maps a
# chip's mean colour to a unit vector, so faces of the same colour get the same embedding.

import numpy as np  # noqa: E402

from faceclust.faces.detect import Detections, detectors  # noqa: E402
from faceclust.faces.embed import embedders  # noqa: E402

MARKER_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 200, 20)]


class FakeDetector:
    name = "fake"
    window = 20
    calls = 0
    side_by_side = True  # as the default detector: scans detect in their decode workers

    def __init__(self, options=None) -> None:
        self.options = options

    def identity(self) -> str:
        return "fake-detector:1"

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        FakeDetector.calls += 1
        boxes, scores = [], []
        for colour in MARKER_COLOURS:
            mask = np.all(np.abs(image.astype(int) - colour) <= 12, axis=2)
            if mask.sum() < 16:
                continue
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            scores.append(1.0)
        if not boxes:
            return Detections.empty()
        return Detections(np.array(boxes, np.float32), np.array(scores, np.float32))


class FakeEmbedder:
    name = "fake"
    dim = 8
    chip_size = 150
    calls = 0

    def __init__(self, batch_size: int = 32, version: str = "1") -> None:
        self.version = version

    def identity(self) -> str:
        return f"fake-embedder:{self.version}"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        FakeEmbedder.calls += len(chips)
        out = np.zeros((len(chips), self.dim), np.float32)
        if len(chips):
            centre = chips[:, 60:90, 60:90].reshape(len(chips), -1, 3).mean(axis=1) / 255.0
            out[:, :3] = centre
            out[:, 3] = 0.5
            out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


class FakeEmbedderV2(FakeEmbedder):
    def __init__(self, batch_size: int = 32) -> None:
        super().__init__(batch_size, version="2")


@pytest.fixture(autouse=True)
def fake_models():
    for registry, name, factory in ((detectors, "fake", FakeDetector), (embedders, "fake", FakeEmbedder),
                                    (embedders, "fake-v2", FakeEmbedderV2)):
        registry.unregister(name)
        registry.register(name)(factory)
    FakeDetector.calls = 0
    FakeEmbedder.calls = 0
    yield
    for registry, name in ((detectors, "fake"), (embedders, "fake"), (embedders, "fake-v2")):
        registry.unregister(name)


def draw_photo(path: Path, faces: list[tuple[int, int, int, int]] = (), size=(320, 240),
               fmt: str | None = None, background=(128, 128, 128), **save_options) -> Path:
    """Save a photo with a filled square per (colour index, x, y, side)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(im)
    for colour, x, y, side in faces:
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=MARKER_COLOURS[colour])
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, **save_options)
    return path


FAKE_SCAN = ["--detector", "fake", "--min-face", "20"]  # scan options for drawn photos


@pytest.fixture
def fake_default_embedder(monkeypatch):
    """The default embedder is the fake one (for tests that scan without naming a model)."""
    from faceclust.faces.embed import DEFAULT_EMBEDDER

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])


def run_cli(*args, **kwargs):
    """The CLI in process (exceptions raised, not caught), arguments as strings."""
    from click.testing import CliRunner

    from faceclust.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)
