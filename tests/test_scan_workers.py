"""Scans detect and embed in their decode workers when the detector allows it (torch on one
thread each); the main thread finds again whatever failed there, and a failure to load the
models ends the scan instead of leaving workers waiting."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeDetector, draw_photo

from faceclust.catalog import Catalog
from faceclust.errors import ModelError
from faceclust.faces.detect import DetectOptions, detectors
from faceclust.faces.finder import FaceFinder
from faceclust.scan.options import ScanOptions
from faceclust.scan.scanner import scan_library


def options(detector: str = "fake", workers: int = 2) -> ScanOptions:
    return ScanOptions(detect=DetectOptions(detector=detector, min_face=20), embedder="fake",
                       batch_photos=5, decode_workers=workers)


def library(root: Path, n: int = 13) -> list[Path]:
    return [draw_photo(root / f"p{i:02d}.png", [(i % 4, 10 + 5 * i, 20, 30 + i)] + ([(2, 200, 150, 40)] if i % 3 else []))
            for i in range(n)]


def catalogued(path: Path) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    with Catalog(path) as cat:
        for _id, photo, left, top, right, bottom, score, vector, _ in cat.iter_faces("fake-embedder:1"):
            out.setdefault(Path(photo).name, []).append((left, top, right, bottom, score, bytes(vector)))
    return {k: sorted(v) for k, v in out.items()}


class Recording(FakeDetector):
    """The fake detector, noting which threads detect and how many torch threads each has."""

    seen: list[tuple[str, int]] = []

    def detect(self, image, scale=1.0):
        import torch

        Recording.seen.append((threading.current_thread().name, torch.get_num_threads()))
        return super().detect(image, scale)


class OnTheMainThread(Recording):
    side_by_side = False


@pytest.fixture
def recording():
    Recording.seen = []
    for name, factory in (("recording", Recording), ("main-only", OnTheMainThread)):
        detectors.register(name)(factory)
    yield
    for name in ("recording", "main-only"):
        detectors.unregister(name)


def models_after_decodes(monkeypatch, decodes: int, settle: float = 0.0) -> None:
    """The models finish loading only once ``decodes`` photos are decoded (and ``settle``
    seconds more): the photos submitted before the models load are decoded without them."""
    import time

    from faceclust.scan import prepare

    decoded = threading.Semaphore(0)
    real_decode, real_load = prepare.decode_image, FaceFinder.load

    def counting(*args, **kwargs):
        try:
            return real_decode(*args, **kwargs)
        finally:
            decoded.release()

    def late(self, photos=1):
        for _ in range(decodes):
            assert decoded.acquire(timeout=30)
        time.sleep(settle)
        real_load(self, photos)

    monkeypatch.setattr(prepare, "decode_image", counting)
    monkeypatch.setattr(FaceFinder, "load", late)


@pytest.mark.parametrize("models_late", [False, True], ids=["models-first", "photos-decoded-first"])
def test_workers_find_the_faces_the_main_thread_finds(tmp_path, recording, monkeypatch, models_late):
    """Whether the first photos are decoded before the models are there (then found once
    they are) or after, workers find what the main thread finds."""
    import torch

    library(tmp_path / "lib")
    before = torch.get_num_threads()
    if models_late:  # the models finish loading only once the first two batches are decoded
        models_after_decodes(monkeypatch, 10)
    scan_library(tmp_path / "w.sqlite", [tmp_path / "lib"], options("recording"))
    in_workers = list(Recording.seen)
    monkeypatch.undo()
    Recording.seen = []
    scan_library(tmp_path / "m.sqlite", [tmp_path / "lib"], options("main-only"))
    on_main = list(Recording.seen)
    assert len(in_workers) == len(on_main) == 13
    assert all(name != "MainThread" and threads == 1 for name, threads in in_workers)
    assert all(name == "MainThread" for name, _ in on_main)
    # Same faces, boxes and vectors (the catalogs differ only in their detector's name).
    assert catalogued(tmp_path / "w.sqlite") == catalogued(tmp_path / "m.sqlite")
    assert len(catalogued(tmp_path / "w.sqlite")) == 13
    assert torch.get_num_threads() == before  # the main thread's count is given back


def test_one_worker_finds_on_the_main_thread(tmp_path, recording):
    library(tmp_path / "lib", 4)
    scan_library(tmp_path / "c.sqlite", [tmp_path / "lib"], options("recording", workers=1))
    assert [name for name, _ in Recording.seen] == ["MainThread"] * 4


class FailingOnGreen(FakeDetector):
    """Fails on photos holding a green face (colour 1), wherever it runs."""

    def detect(self, image, scale=1.0):
        if np.all(np.abs(image.astype(int) - (30, 200, 40)) <= 12, axis=2).sum() >= 16:
            raise RuntimeError("this detector cannot look at green")
        return super().detect(image, scale)


def test_a_photo_the_detector_fails_on_is_reported_once_and_the_others_are_found(tmp_path):
    detectors.register("failing")(FailingOnGreen)
    try:
        photos = library(tmp_path / "lib")
        summary = scan_library(tmp_path / "c.sqlite", [tmp_path / "lib"], options("failing"))
    finally:
        detectors.unregister("failing")
    green = {p.name for i, p in enumerate(photos) if i % 4 == 1}
    with Catalog(tmp_path / "c.sqlite") as cat:
        errors = {Path(p).name: e for p, e in cat.errors()}
    assert set(errors) == green and summary.errors == len(green)
    assert all("face detection failed" in e and "green" in e for e in errors.values())
    assert set(catalogued(tmp_path / "c.sqlite")) == {p.name for p in photos} - green


def test_models_that_cannot_load_end_the_scan_without_leaving_workers_waiting(tmp_path, monkeypatch):
    library(tmp_path / "lib")

    def broken(self, photos=1):
        raise ModelError("the model file is damaged")

    monkeypatch.setattr(FaceFinder, "load", broken)
    outcome = []

    def run():
        try:
            scan_library(tmp_path / "c.sqlite", [tmp_path / "lib"], options())
        except ModelError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the scan hung"
    assert outcome == ["the model file is damaged"]



def test_workers_go_on_finding_while_the_main_thread_records_a_batch(tmp_path, recording, monkeypatch):
    """Two batches are queued beyond the one being recorded: while the main thread writes
    the first batch, the workers find the photos of the third (they never wait for it)."""
    from faceclust.scan.prepare import PreparingMixin

    library(tmp_path / "lib")  # 13 photos in batches of 5: the third batch is p10-p12
    found: set[str] = set()
    third_found = threading.Event()
    real_find, real_write = PreparingMixin._find_chunk, Catalog.write_results

    def find(self, prepared):
        real_find(self, prepared)
        found.update(p.file.path.name for p in prepared if p.faces is not None)
        if {"p10.png", "p11.png", "p12.png"} <= found:
            third_found.set()

    waited: list[bool] = []

    def write(self, *args, **kwargs):
        if not waited:  # the first batch
            waited.append(third_found.wait(30))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(PreparingMixin, "_find_chunk", find)
    monkeypatch.setattr(Catalog, "write_results", write)
    scan_library(tmp_path / "c.sqlite", [tmp_path / "lib"], options("recording"))
    assert waited == [True]
    assert len(catalogued(tmp_path / "c.sqlite")) == 13


def test_photos_decoded_while_the_models_load_are_found_before_the_first_batch_is_recorded(
        tmp_path, recording, monkeypatch):
    """Found as soon as the models are there, not batch by batch: when the first batch is
    recorded, the second batch's photos (decoded before the models loaded) are found too."""
    from faceclust.scan.prepare import PreparingMixin

    library(tmp_path / "lib")  # batches of 5: p00-p04, p05-p09, p10-p12
    models_after_decodes(monkeypatch, 10, settle=0.3)  # the chunks hand their photos back first
    real_find, real_write = PreparingMixin._find_chunk, Catalog.write_results
    found: set[str] = set()
    at_first_write: list[set[str]] = []

    def find(self, prepared):
        real_find(self, prepared)
        found.update(p.file.path.name for p in prepared if p.faces is not None)

    def write(self, *args, **kwargs):
        if not at_first_write:
            at_first_write.append(set(found))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(PreparingMixin, "_find_chunk", find)
    monkeypatch.setattr(Catalog, "write_results", write)
    scan_library(tmp_path / "c.sqlite", [tmp_path / "lib"], options("recording"))
    second_batch = {f"p{i:02d}.png" for i in range(5, 10)}
    assert second_batch <= at_first_write[0]
    assert len(catalogued(tmp_path / "c.sqlite")) == 13


def test_a_new_photos_bytes_are_hashed_once_and_the_hash_kept_is_theirs(tmp_path, monkeypatch):
    """The scan hashes a photo's bytes to know it (moved, copied, unchanged) and hands that
    hash to the decoder instead of hashing the same bytes again (about 5 ms a 12 MP photo);
    the catalog still holds each file's own hash."""
    import hashlib

    from faceclust.photos import decode as decode_module
    from faceclust.scan import prepare as prepare_module

    photos = library(tmp_path / "lib", n=7)
    hashed: list[int] = []
    real = decode_module.content_hash

    def counting(data: bytes) -> str:
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(decode_module, "content_hash", counting)
    monkeypatch.setattr(prepare_module, "content_hash", counting)
    scan_library(tmp_path / "c.sqlite", [tmp_path / "lib"], options())
    assert len(hashed) == len(photos)
    with Catalog(tmp_path / "c.sqlite") as cat:
        kept = {Path(p).name: h for p, h in cat.db.execute("SELECT path, content_hash FROM photos")}
    assert kept == {p.name: hashlib.blake2b(p.read_bytes(), digest_size=20).hexdigest() for p in photos}
