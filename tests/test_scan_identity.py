"""A detector that changed only for big images says so: photos it would find alike are
recorded under its new identity instead of being searched again; the others are searched
again once."""

from __future__ import annotations

import sqlite3

from conftest import FakeDetector, draw_photo

from faceclust.faces.detect import DetectOptions, detectors
from faceclust.scan.options import ScanOptions
from faceclust.scan.scanner import scan_library


class Before(FakeDetector):
    def identity(self) -> str:
        return "fake-detector:before"


class After(FakeDetector):
    """Finds what Before found in images searched below 800 px (long side)."""

    def identity(self) -> str:
        return "fake-detector:after"

    def unchanged_below(self) -> dict[str, float]:
        return {"fake-detector:before": 800}


def options(detector: str) -> ScanOptions:
    return ScanOptions(detect=DetectOptions(detector=detector, min_face=20), embedder="fake", decode_workers=1)


def test_photos_the_changed_detector_finds_alike_are_not_searched_again(tmp_path):
    for name, factory in (("before", Before), ("after", After)):
        detectors.register(name)(factory)
    try:
        draw_photo(tmp_path / "lib" / "small1.png", [(0, 20, 20, 40)])
        draw_photo(tmp_path / "lib" / "small2.png", [(1, 60, 40, 40)], size=(640, 480))
        draw_photo(tmp_path / "lib" / "big.png", [(2, 300, 200, 120)], size=(1200, 900))
        catalog = tmp_path / "c.sqlite"
        scan_library(catalog, [tmp_path / "lib"], options("before"))
        faces_before = sqlite3.connect(catalog).execute("SELECT photo_id, left, top FROM faces ORDER BY 1").fetchall()
        FakeDetector.calls = 0
        summary = scan_library(catalog, [tmp_path / "lib"], options("after"))
        assert FakeDetector.calls == 1  # the big photo only
        assert any(w.startswith("1 photo scanned before") for w in summary.warnings), summary.warnings
        rows = sqlite3.connect(catalog).execute("SELECT path, detect_identity FROM photos").fetchall()
        assert {ident.split(";")[0] for _, ident in rows} == {"fake-detector:after"}
        faces_after = sqlite3.connect(catalog).execute("SELECT photo_id, left, top FROM faces ORDER BY 1").fetchall()
        assert faces_after == faces_before
        FakeDetector.calls = 0
        scan_library(catalog, [tmp_path / "lib"], options("after"))
        assert FakeDetector.calls == 0
    finally:
        for name in ("before", "after"):
            detectors.unregister(name)


def test_the_size_bound_holds_for_the_sizes_the_decode_gives():
    """Whatever the photo's shape and the options, the long side a detector is given (decode
    rounded to whole pixels, scale from the width) never exceeds the bound adoption uses."""
    import io
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from faceclust.photos.decode import decode_image
    from faceclust.scan.identity import searched_size_at_most

    rng = np.random.default_rng(0)
    shapes = [(301, 1595), (201, 1593), (1595, 301), (3001, 601), (4001, 3001), (201, 1995), (799, 799), (800, 10)]
    shapes += [tuple(int(v) for v in rng.integers(8, 2000, 2)) for _ in range(16)]
    for w, h in shapes:
        data = io.BytesIO()
        Image.new("RGB", (w, h)).save(data, "PNG")
        for min_face in (15, 30, 60):
            for max_side in (797, 1024, 1600):
                options = DetectOptions(min_face=min_face, max_side=max_side)
                policy = lambda W, H: min(1.0, options.detection_scale(W, H, 30))  # noqa: E731 - as FaceFinder's
                image = decode_image(data.getvalue(), Path("x.png"), policy)
                scale = options.detection_scale(image.original_width, image.original_height, 30) / image.scale
                given = max(image.pixels.shape[:2]) * scale  # what YuNetFaceDetector.search measures
                assert given <= searched_size_at_most(w, h, options, 30), (w, h, min_face, max_side)
