"""The scan pipeline with the fake detector and embedder: incremental, resumable, robust."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import FakeDetector, FakeEmbedder, draw_photo

from faceclust.catalog import Catalog
from faceclust.faces import finder
from faceclust.faces.detect import DetectOptions
from faceclust.scan import scanner as pipeline
from faceclust.scan.options import ScanOptions
from faceclust.scan.scanner import Scanner, scan_library

OPTIONS = ScanOptions(detect=DetectOptions(detector="fake", min_face=20), embedder="fake", batch_photos=3)


def scan(catalog_path: Path, *roots: Path, options: ScanOptions = OPTIONS):
    return scan_library(catalog_path, list(roots), options)


def faces_by_path(catalog_path: Path) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    with Catalog(catalog_path) as cat:
        for face_id, path, left, top, right, bottom, score, vector, _ in cat.iter_faces("fake-embedder:1"):
            out.setdefault(path, []).append((round(left), round(top), round(right), round(bottom), vector))
    return out


def library(root: Path, n: int = 7) -> list[Path]:
    paths = []
    for i in range(n):
        faces = [(i % 4, 20 + 3 * i, 30, 40)] if i % 3 else [(0, 10, 10 + i, 30), (2, 150, 100, 50)]
        paths.append(draw_photo(root / f"sub{i % 2}" / f"p{i:02d}.png", faces))
    return paths


def checksums(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_scan_catalogs_every_photo_and_its_faces(tmp_path):
    photos = library(tmp_path / "lib")
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert summary.photos_seen == summary.new == len(photos)
    assert summary.errors == 0
    found = faces_by_path(tmp_path / "c.sqlite")
    assert set(found) == {str(p) for p in photos}
    # Boxes come back in the photo's own pixels.
    assert sorted(f[:4] for f in found[str(photos[0])]) == [(10, 10, 40, 40), (150, 100, 200, 150)]
    assert sum(len(v) for v in found.values()) == summary.faces_found == 3 * 2 + 4


def test_boxes_are_in_original_pixels_when_decoding_smaller(tmp_path):
    photo = draw_photo(tmp_path / "lib" / "big.png", [(1, 400, 300, 200)], size=(1600, 1200))
    options = ScanOptions(detect=DetectOptions(detector="fake", min_face=40), embedder="fake")  # scale 0.5
    scan(tmp_path / "c.sqlite", photo, options=options)
    (box,) = faces_by_path(tmp_path / "c.sqlite")[str(photo)]
    assert np.allclose(box[:4], (400, 300, 600, 500), atol=2)


def test_second_scan_decodes_nothing(tmp_path):
    library(tmp_path / "lib")
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with mock.patch.object(pipeline, "decode_image", side_effect=AssertionError("decoded again")), \
         mock.patch.object(pipeline, "read_file", side_effect=AssertionError("read again")):
        summary = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert summary.unchanged == summary.photos_seen == 7
    assert summary.new == summary.changed == summary.errors == 0


def test_moved_and_renamed_files_keep_their_faces(tmp_path):
    photos = library(tmp_path / "lib")
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        before = {path: ids for path, ids in _face_ids(cat).items()}
    target = tmp_path / "lib" / "renamed" / "new name.png"
    target.parent.mkdir()
    shutil.move(photos[1], target)
    FakeDetector.calls = 0
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert summary.moved == 1 and summary.new == 0 and summary.gone == 0
    assert FakeDetector.calls == 0
    with Catalog(tmp_path / "c.sqlite") as cat:
        after = _face_ids(cat)
    assert after[str(target)] == before[str(photos[1])]
    assert str(photos[1]) not in after


def _face_ids(cat):
    out = {}
    for face_id, path, *_ in cat.iter_faces(None):
        out.setdefault(path, []).append(face_id)
    return out


def test_copied_file_gets_the_same_faces_without_detection(tmp_path):
    photos = library(tmp_path / "lib")
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    copy = tmp_path / "lib" / "copy.png"
    shutil.copy(photos[0], copy)
    FakeDetector.calls = 0
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert summary.copied == 1 and FakeDetector.calls == 0
    found = faces_by_path(tmp_path / "c.sqlite")
    assert found[str(copy)] == found[str(photos[0])]


def test_changed_file_is_redone_and_deleted_file_is_marked_gone(tmp_path):
    photos = library(tmp_path / "lib")
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    draw_photo(photos[2], [(3, 100, 100, 80)])
    os.utime(photos[2], ns=(1, 10**18))
    photos[3].unlink()
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert summary.changed == 1 and summary.gone == 1
    found = faces_by_path(tmp_path / "c.sqlite")
    assert [f[:4] for f in found[str(photos[2])]] == [(100, 100, 180, 180)]
    assert str(photos[3]) not in found
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.counts()["photos_gone"] == 1


def test_touched_file_is_not_redetected(tmp_path):
    photos = library(tmp_path / "lib")
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    os.utime(photos[0], ns=(1, 10**18))
    FakeDetector.calls = 0
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert FakeDetector.calls == 0 and summary.changed == 0


def test_missing_root_is_refused_and_marks_nothing_gone(tmp_path):
    from faceclust.errors import UsageProblem

    library(tmp_path / "lib")
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    shutil.move(tmp_path / "lib", tmp_path / "unmounted")
    with pytest.raises(UsageProblem, match="no such file or folder"):
        scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.counts()["photos_gone"] == 0


def test_bad_files_are_recorded_and_the_scan_finishes(tmp_path, monkeypatch):
    from PIL import Image

    lib = tmp_path / "lib"
    good = library(lib, 4)
    (lib / "zero.jpg").write_bytes(b"")
    (lib / "text.jpg").write_text("I am not a photo")
    data = good[0].read_bytes()
    (lib / "truncated.jpg").write_bytes(data[: len(data) // 3])
    draw_photo(lib / "huge.png", size=(400, 400))
    draw_photo(lib / "cmyk.jpg", [(0, 10, 10, 40)], size=(100, 100))
    Image.open(lib / "cmyk.jpg").convert("CMYK").save(lib / "cmyk.jpg")
    deep = np.full((60, 60), 30000, np.uint16)
    Image.fromarray(deep).save(lib / "deep.png")
    locked = draw_photo(lib / "locked.jpg", [(1, 5, 5, 30)])
    os.symlink(lib / "nowhere.jpg", lib / "dangling.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # huge.png (160,000 px) is over twice this
    real_open = os.open

    def guarded_open(file, *args, **kwargs):  # chmod cannot lock root out: pretend
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    summary = scan(tmp_path / "c.sqlite", lib)
    with Catalog(tmp_path / "c.sqlite") as cat:
        errors = dict(cat.errors())
        counts = cat.counts()
    bad = {"zero.jpg", "text.jpg", "truncated.jpg", "huge.png", "locked.jpg", "dangling.jpg"}
    assert {Path(p).name for p in errors} == bad
    assert summary.errors == len(bad)
    assert "permission denied" in errors[str(locked)].lower()
    assert counts["photos"] == len(good) + 2  # the CMYK JPEG and the 16-bit PNG are fine
    found = faces_by_path(tmp_path / "c.sqlite")
    assert len(found[str(lib / "cmyk.jpg")]) == 1


def test_a_killed_scan_resumes_with_the_same_faces(tmp_path):
    photos = library(tmp_path / "lib", 10)
    scan(tmp_path / "full.sqlite", tmp_path / "lib")
    expected = faces_by_path(tmp_path / "full.sqlite")

    calls = {"n": 0}
    real_finish = Scanner._finish_batch

    def dying_finish(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:  # the third batch: two were committed
            raise KeyboardInterrupt
        return real_finish(self, *args)

    with mock.patch.object(Scanner, "_finish_batch", dying_finish), pytest.raises(KeyboardInterrupt):
        scan(tmp_path / "part.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "part.sqlite") as cat:
        assert cat.counts()["photos"] == 6
        assert cat.last_run()["status"] == "interrupted"
    summary = scan(tmp_path / "part.sqlite", tmp_path / "lib")
    assert summary.unchanged == 6 and summary.new == 4
    assert faces_by_path(tmp_path / "part.sqlite") == expected
    assert len(photos) == 10


def test_a_new_model_re_embeds_without_detecting(tmp_path):
    library(tmp_path / "lib", 4)
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    FakeDetector.calls = 0
    v2 = ScanOptions(detect=OPTIONS.detect, embedder="fake-v2")
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib", options=v2)
    assert FakeDetector.calls == 0
    assert summary.reembedded == 4
    with Catalog(tmp_path / "c.sqlite") as cat:
        by_model = cat.counts()["embeddings_by_model"]
    assert by_model["fake-embedder:2"] == by_model["fake-embedder:1"] == 6


def test_changed_detector_settings_redetect(tmp_path):
    library(tmp_path / "lib", 3)
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    FakeDetector.calls = 0
    other = ScanOptions(detect=DetectOptions(detector="fake", min_face=20, min_score=0.5), embedder="fake")
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib", options=other)
    assert FakeDetector.calls == 3 and summary.changed == 3
    assert any(w.startswith("3 photos scanned before with another detector") for w in summary.warnings)
    assert not any("another detector" in w for w in scan(tmp_path / "c.sqlite", tmp_path / "lib",
                                                          options=other).warnings)


def test_originals_are_never_modified(tmp_path):
    photos = library(tmp_path / "lib")
    before = checksums(photos)
    mtimes = {p: p.stat().st_mtime_ns for p in photos}
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert checksums(photos) == before
    assert {p: p.stat().st_mtime_ns for p in photos} == mtimes
    assert sorted(p.name for p in (tmp_path / "lib").rglob("*") if p.is_file()) == sorted(p.name for p in photos)


def test_progress_events_reach_the_callback(tmp_path):
    library(tmp_path / "lib", 5)
    events = []
    with Catalog(tmp_path / "c.sqlite") as cat:
        Scanner(cat, OPTIONS, events.append).run([tmp_path / "lib"])
    photo_events = [e for e in events if e.stage == "photos"]
    assert [e.done for e in photo_events] == [0, 3, 5]
    assert photo_events[-1].total == 5 and photo_events[-1].faces == 2 + 1 + 1 + 2 + 1


def test_fake_embedder_is_deterministic():
    chips = np.random.default_rng(0).integers(0, 255, (3, 150, 150, 3), dtype=np.uint8)
    a = FakeEmbedder().embed(chips)
    assert np.array_equal(a, FakeEmbedder().embed(chips))


def test_an_edited_photo_keeps_who_its_faces_are(tmp_path):
    """Edited (new bytes, so detected again): a face that is still there keeps its person, the
    user's decision and its rejections; a face that is new gets none; a face that left takes
    its decisions with it."""
    photo = draw_photo(tmp_path / "lib" / "group.png", [(0, 20, 30, 50), (2, 150, 100, 50)])
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        faces = {round(left): face for face, _path, left, *_ in cat.faces_by_id(range(1, 100))}
        anna, bob, carl = cat.create_people(3)
        cat.add_assignments([(faces[20], anna, "user")])
        cat.mark_clustered([faces[20]])
        cat.add_assignments([(faces[150], bob, "cluster")])
        assert cat.reject_face(faces[150]) == bob  # the blue face is not Bob
        cat.add_assignments([(faces[150], carl, "cluster")])
    # Cropped and re-saved: both faces move; each keeps its person, source and rejections.
    draw_photo(photo, [(0, 5, 20, 50), (2, 135, 90, 50)], size=(300, 220))
    os.utime(photo, ns=(1, 10**18))
    assert scan(tmp_path / "c.sqlite", tmp_path / "lib").changed == 1
    with Catalog(tmp_path / "c.sqlite") as cat:
        rows = {round(left): (face, person) for face, _path, left, _t, _r, _b, person in cat.faces_by_id(range(1, 100))}
        assert set(rows) == {5, 135}
        red, blue = rows[5][0], rows[135][0]
        assert cat.assignments()[red] == (anna, "user") and red in cat.clustered_faces()
        assert cat.assignments()[blue] == (carl, "cluster") and cat.rejections() == [(blue, bob)]
    # Edited again: the blue face is gone, a green one is new.
    draw_photo(photo, [(0, 5, 20, 50), (1, 200, 60, 50)], size=(300, 230))
    os.utime(photo, ns=(1, 2 * 10**18))
    assert scan(tmp_path / "c.sqlite", tmp_path / "lib").changed == 1
    with Catalog(tmp_path / "c.sqlite") as cat:
        rows = {round(left): (face, person) for face, _path, left, _t, _r, _b, person in cat.faces_by_id(range(1, 100))}
        assert set(rows) == {5, 200}
        assert rows[5][1] == anna and rows[200][1] is None and rows[200][0] not in cat.clustered_faces()
        assert cat.rejections() == []  # the rejected blue face left; nothing inherited it


def test_an_edited_photo_keeps_its_people_when_the_model_changed_too(tmp_path):
    """No descriptor from the new model for the old faces: they are paired by where they are."""
    photo = draw_photo(tmp_path / "lib" / "pair.png", [(0, 20, 30, 50), (2, 150, 100, 50)])
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        faces = {round(left): face for face, _path, left, *_ in cat.faces_by_id(range(1, 100))}
        anna, bob = cat.create_people(2)
        cat.add_assignments([(faces[20], anna, "user"), (faces[150], bob, "cluster")])
        cat.set_person(anna, name="Anna")
    draw_photo(photo, [(0, 22, 30, 50), (2, 150, 102, 50)], size=(320, 240), background=(120, 120, 120))
    os.utime(photo, ns=(1, 10**18))
    v2 = ScanOptions(detect=OPTIONS.detect, embedder="fake-v2")
    assert scan(tmp_path / "c.sqlite", tmp_path / "lib", options=v2).changed == 1
    with Catalog(tmp_path / "c.sqlite") as cat:
        rows = {round(left): person for _f, _p, left, _t, _r, _b, person in cat.faces_by_id(range(1, 100))}
        assert rows == {22: anna, 150: bob}


def test_an_edit_that_loses_a_face_drops_its_unnamed_person_and_refreshes_the_index(tmp_path):
    from faceclust.catalog.index import open_index

    photo = draw_photo(tmp_path / "lib" / "solo.png", [(0, 20, 30, 50)])
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        (face,) = [f for f, *_ in cat.faces_by_id(range(1, 100))]
        stranger = cat.create_people(1)[0]
        cat.add_assignments([(face, stranger, "cluster")])
        before = open_index(cat, "fake-embedder:1")
    # Same number of faces, so the new face may reuse the old face's id: the index must still notice.
    draw_photo(photo, [(3, 60, 60, 50)])
    os.utime(photo, ns=(1, 10**18))
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert [p["id"] for p in cat.people()] == []  # the stranger's only face left
        after = open_index(cat, "fake-embedder:1")
        new_vector = cat.embeddings("fake-embedder:1")[1][0]
    assert after.fingerprint != before.fingerprint
    found = after.search(new_vector[None], 1)
    assert found.distances[0][0] < 1e-5


def test_a_photo_that_fails_to_decode_once_keeps_its_people(tmp_path):
    """Caught half-written (or a NAS read error): the photo is an error for a scan, its faces are
    hidden, and when it decodes again its faces are still who they were."""
    photo = draw_photo(tmp_path / "lib" / "a.png", [(0, 20, 30, 50)])
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        (face,) = [f for f, *_ in cat.faces_by_id(range(1, 100))]
        anna = cat.create_people(1)[0]
        cat.add_assignments([(face, anna, "user")])
        cat.set_person(anna, name="Anna")
    good = photo.read_bytes()
    photo.write_bytes(good[: len(good) // 3])
    os.utime(photo, ns=(1, 10**18))
    assert scan(tmp_path / "c.sqlite", tmp_path / "lib").errors == 1
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.people()[0]["faces"] == 0 and cat.faces_by_id(range(1, 100)) == []
    draw_photo(photo, [(0, 22, 30, 50)])  # written again, slightly different
    os.utime(photo, ns=(1, 2 * 10**18))
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert [person for *_, person in cat.faces_by_id(range(1, 100))] == [anna]


def test_an_edit_that_makes_a_copy_of_another_photo_keeps_its_people(tmp_path):
    a = draw_photo(tmp_path / "lib" / "a.png", [(0, 20, 30, 50)])
    b = draw_photo(tmp_path / "lib" / "b.png", [(0, 24, 30, 50)])
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        faces = {Path(path).name: face for face, path, *_ in cat.faces_by_id(range(1, 100))}
        anna = cat.create_people(1)[0]
        cat.add_assignments([(faces["b.png"], anna, "user")])
        cat.set_person(anna, name="Anna")
    b.write_bytes(a.read_bytes())  # b edited into an exact copy of a
    os.utime(b, ns=(1, 10**18))
    assert scan(tmp_path / "c.sqlite", tmp_path / "lib").copied == 1
    with Catalog(tmp_path / "c.sqlite") as cat:
        people = {Path(path).name: person for _f, path, *_, person in cat.faces_by_id(range(1, 100))}
    assert people == {"a.png": None, "b.png": anna}


def test_a_folder_that_stops_answering_ends_the_walk_not_the_scan(tmp_path, monkeypatch):
    """A hung network share blocks the folder listing in the kernel: the scan gives up on the
    walk after the stall timeout, scans what it found, and marks nothing gone."""
    import dataclasses
    import threading
    import time

    from faceclust.photos import walk as scan_module

    good = library(tmp_path / "lib")  # sub0/ and sub1/
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    draw_photo(tmp_path / "lib" / "sub0" / "new.png", [(1, 40, 40, 40)])
    release = threading.Event()
    real_scandir = os.scandir

    def hung_scandir(path):
        if str(path).endswith("sub1"):
            release.wait(30)
        return real_scandir(path)

    monkeypatch.setattr(scan_module.os, "scandir", hung_scandir)
    started = time.monotonic()
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib", options=dataclasses.replace(OPTIONS, stall_seconds=0.5))
    assert time.monotonic() - started < 10
    release.set()
    assert summary.new == 1 and summary.gone == 0  # sub1's photos were not seen, and not lost
    assert any(path.endswith("sub1") and "no answer for 0.5 s" in message for path, message in summary.error_samples)
    with Catalog(tmp_path / "c.sqlite") as cat:
        states = cat.photo_states()
        assert all(states[str(p)].status == "ok" for p in good)


def test_one_file_by_several_paths_is_catalogued_once(tmp_path):
    """A hard link, a symlinked file, the same folder reached through a second path (a NAS's
    /volume1/photo and /var/services/photo): one photo, not copies with faces twice."""
    good = library(tmp_path / "lib", 4)
    os.link(good[0], tmp_path / "lib" / "hardlink.png")
    os.symlink(good[1], tmp_path / "lib" / "favourite.png")
    os.symlink(tmp_path / "lib", tmp_path / "same-lib")
    first = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert first.new == 4 and first.aliases == 2 and first.copied == 0
    other_path = scan(tmp_path / "c.sqlite", tmp_path / "same-lib")
    assert other_path.aliases == 6 and other_path.new == other_path.copied == 0
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.counts()["photos"] == 4 and cat.counts()["faces"] == first.faces_found
    again = scan(tmp_path / "c.sqlite", tmp_path / "same-lib")
    assert again.unchanged == 6 and again.new == again.aliases == 0  # not read again
    with Catalog(tmp_path / "c.sqlite") as cat:  # in name order, the hard link came first
        assert cat.photo_states()[str(tmp_path / "lib" / "hardlink.png")].status == "ok"
    os.unlink(tmp_path / "lib" / "hardlink.png")  # that name goes: the other one is the photo now
    after = scan(tmp_path / "c.sqlite", tmp_path / "lib")
    assert after.moved == 1 and after.gone == 0
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.photo_states()[str(good[0])].status == "ok" and cat.counts()["photos"] == 4


def test_a_fused_descriptor_is_its_weighted_parts_and_is_scanned_and_re_embedded(tmp_path):
    """With the fake parts: each part's unit descriptor times its weight, concatenated and made
    unit again; the scan cuts one chip set per part; switching a catalog to it re-embeds."""
    import dataclasses

    from faceclust.faces.embed import embedders

    fused = embedders.create("fused", parts=(("fake", 1.0), ("fake-v2", 0.5)))
    a, b = embedders.create("fake"), embedders.create("fake-v2")
    chips = np.random.default_rng(2).integers(0, 256, (4, 150, 150, 3), np.uint8)
    expected = np.hstack([a.embed(chips), 0.5 * b.embed(chips)])  # the fakes are unit already
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(fused.embed((chips, chips)), expected, atol=1e-6)
    assert fused.identity() == "fused(fake-embedder:1*1+fake-embedder:2*0.5)" and fused.dim == 16
    with pytest.raises(ValueError, match="at least two parts"):
        embedders.create("fused", parts=(("fake", 1.0),))
    library(tmp_path / "lib", 5)
    scan(tmp_path / "c.sqlite", tmp_path / "lib")  # with the fake embedder alone
    with Catalog(tmp_path / "c.sqlite") as cat:
        summary = Scanner(cat, dataclasses.replace(OPTIONS, update_index=False), embedder=fused).run([tmp_path / "lib"])
        assert summary.reembedded == 5 and summary.new == 0  # the faces were not detected again
        ids, vectors = cat.embeddings(fused.identity())
        face_ids, plain = cat.embeddings("fake-embedder:1")
    assert vectors.shape == (len(face_ids), 16) and np.array_equal(ids, face_ids)
    assert np.allclose(vectors[:, :8], plain / np.sqrt(1.25), atol=1e-6)  # the first part, weight 1
    with Catalog(tmp_path / "d.sqlite") as cat:  # and found from the start
        fresh = Scanner(cat, dataclasses.replace(OPTIONS, update_index=False), embedder=fused).run([tmp_path / "lib"])
        assert fresh.faces_found == len(face_ids)
        assert np.allclose(np.sort(cat.embeddings(fused.identity())[1], axis=0), np.sort(vectors, axis=0), atol=1e-6)


class PointsDetector(FakeDetector):
    """The fake detector, giving with each square five ArcFace points that put the square
    exactly on a 112 px ArcFace chip (as YuNet gives its own points with its boxes)."""

    gives_points = True

    def identity(self) -> str:
        return "fake-points:1"

    def detect(self, image: np.ndarray, scale: float = 1.0):
        from faceclust.faces.arcface import CHIP_SIZE, TEMPLATE
        from faceclust.faces.detect import Detections

        found = super().detect(image, scale)
        sides = (found.boxes[:, 2] - found.boxes[:, 0])[:, None, None]
        points = found.boxes[:, None, :2] + TEMPLATE[None] / CHIP_SIZE * sides
        return Detections(found.boxes, found.scores, points.astype(np.float32))


class ArcFaceChipEmbedder(FakeEmbedder):
    """A fake embedder of 112 px ArcFace chips: the chip's mean colour (all of it, not the centre)."""

    chip_size = 112
    alignment = "arcface-112"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        out = np.zeros((len(chips), self.dim), np.float32)
        out[:, :3] = chips.reshape(len(chips), -1, 3).mean(axis=1) / 255.0
        out[:, 3 + int(self.version)] = 0.5
        return out


@pytest.fixture
def points_models(monkeypatch):
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.faces.detect import detectors
    from faceclust.faces.embed import embedders

    for registry, name, factory in ((detectors, "fake-points", PointsDetector),
                                    (embedders, "fake-arcface", ArcFaceChipEmbedder),
                                    (embedders, "fake-arcface-v2", lambda **o: ArcFaceChipEmbedder(version="2"))):
        registry.register(name)(factory)
    predicted = []

    def predictor(self, image, boxes):  # dlib's 68-point predictor, only where no points came
        from faceclust.faces.arcface import CHIP_SIZE, TEMPLATE

        predicted.append(len(boxes))
        boxes = np.asarray(boxes, np.float32)
        return boxes[:, None, :2] + TEMPLATE[None] / CHIP_SIZE * (boxes[:, 2] - boxes[:, 0])[:, None, None]

    monkeypatch.setattr(ArcFaceAligner, "landmarks", predictor)
    yield predicted
    for registry, name in ((detectors, "fake-points"), (embedders, "fake-arcface"), (embedders, "fake-arcface-v2")):
        registry.unregister(name)


def test_a_detectors_own_points_cut_the_arcface_chips_and_are_kept_for_re_embedding(tmp_path, points_models):
    """Faces whose detector gave five points get ArcFace chips cut from them (dlib's 68-point
    predictor is not run), keep the points in original pixels (decoded at half size here), in
    copies too, and a new model re-embeds from them; a detector without points falls back to
    the predictor."""
    import dataclasses

    photo = draw_photo(tmp_path / "lib" / "big.png", [(1, 400, 300, 200), (2, 1000, 500, 160)], size=(1600, 1200))
    options = ScanOptions(detect=DetectOptions(detector="fake-points", min_face=40), embedder="fake-arcface",
                          update_index=False)  # decoded at half size
    scan(tmp_path / "c.sqlite", tmp_path / "lib", options=options)
    shutil.copy(photo, tmp_path / "lib" / "copy.png")
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib", options=options)
    assert summary.copied == 1 and points_models == []  # the predictor never ran
    from faceclust.faces.arcface import CHIP_SIZE, TEMPLATE

    with Catalog(tmp_path / "c.sqlite") as cat:
        for state in cat.photo_states().values():
            face_ids, _marks, boxes, points = cat.face_geometry(state.id)
            assert len(face_ids) == 2 and points is not None
            expected = boxes[:, None, :2] + TEMPLATE[None] / CHIP_SIZE * (boxes[:, 2] - boxes[:, 0])[:, None, None]
            assert np.abs(points - expected).max() < 2.5  # original pixels, not the decoded half
        _ids, vectors = cat.embeddings("fake-embedder:1")
    # Each chip is all its square's colour (but for the blend at its rim): cut where the points say.
    colours = np.sort(vectors[:, :3] * 255, axis=0)
    assert np.abs(colours - np.sort(np.array([(30, 200, 40), (40, 60, 230)] * 2, float), axis=0)).max() < 3
    v2 = dataclasses.replace(options, embedder="fake-arcface-v2")
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib", options=v2)
    assert summary.reembedded == 2 and summary.new == 0 and points_models == []
    with Catalog(tmp_path / "c.sqlite") as cat:
        _ids, again = cat.embeddings("fake-embedder:2")
    assert np.allclose(again[:, :3], vectors[:, :3], atol=1e-6)
    plain = dataclasses.replace(options, detect=DetectOptions(detector="fake", min_face=40))
    scan(tmp_path / "d.sqlite", tmp_path / "lib", options=plain)
    assert sum(points_models) >= 2  # the predictor ran
    with Catalog(tmp_path / "d.sqlite") as cat:
        assert all(cat.face_geometry(s.id)[3] is None for s in cat.photo_states().values())


def test_the_same_photo_found_again_by_another_detector_keeps_who_its_faces_are(tmp_path):
    """Another detector (same bytes) draws the boxes a little differently and its landmarks move
    the descriptors, here beyond the carry-over distance: the faces are paired by place and keep
    their people. A new photo saved under the old name (new bytes) with a stranger in the same
    place does not inherit the person."""
    from faceclust.catalog.photos import CARRY_OVER_DISTANCE
    from faceclust.records import FaceArrays, PhotoResult

    def faces(boxes, vectors):
        n = len(boxes)
        v = np.asarray(vectors, np.float32)
        return FaceArrays(np.asarray(boxes, np.float32), np.ones(n, np.float32), np.zeros((n, 5, 2), np.float32),
                          v / np.linalg.norm(v, axis=1, keepdims=True))

    a, b = [1.0, 0, 0, 0], [0, 1.0, 0, 0]
    a_moved, b_moved = [1.0, 0.45, 0, 0], [0.45, 1.0, 0.1, 0]  # each more than the distance from before
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.write_results([PhotoResult("faces", "/p/x.jpg", 1, 1, "h1", 400, 300,
                                       faces([[10, 10, 60, 60], [200, 100, 260, 160]], [a, b]))], "m", "mmod", None)
        first, second = cat.face_geometry(1)[0]
        ann, bob = cat.create_people(2)
        cat.add_assignments([(int(first), ann, "user"), (int(second), bob, "cluster")])
        again = faces([[12, 8, 62, 61], [198, 104, 257, 163]], [a_moved, b_moved])
        assert np.linalg.norm(again.embeddings[0] - np.asarray(a)) > CARRY_OVER_DISTANCE
        cat.write_results([PhotoResult("faces", "/p/x.jpg", 1, 1, "h1", 400, 300, again)], "m", "yunet", None)
        ids = cat.face_geometry(1)[0]
        assert [cat.assignments().get(int(i)) for i in ids] == [(ann, "user"), (bob, "cluster")]
        # New bytes under the same name: a stranger where Ann was (descriptor far away) is not Ann.
        stranger = faces([[12, 8, 62, 61]], [[0, 0, 1.0, 0]])
        cat.write_results([PhotoResult("faces", "/p/x.jpg", 2, 2, "h2", 400, 300, stranger)], "m", "yunet", None)
        (new,) = cat.face_geometry(1)[0]
        assert int(new) not in cat.assignments()


def test_loading_models_up_front_skips_the_68_point_predictor_when_the_detector_gives_points(points_models,
                                                                                            monkeypatch):
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.faces.finder import FaceFinder

    loaded = []
    monkeypatch.setattr(ArcFaceAligner, "_load", lambda self: loaded.append(True))
    monkeypatch.setattr(finder.Aligner, "_load", lambda self: None, raising=False)
    FaceFinder.create(DetectOptions(detector="fake-points"), "fake-arcface").load()
    assert loaded == []
    FaceFinder.create(DetectOptions(detector="fake"), "fake-arcface").load()
    assert loaded == [True]


def test_a_copy_found_again_by_another_detector_keeps_its_people_and_an_error_row_is_no_same_bytes(tmp_path):
    """A catalogued copy of a photo, replaced by the photo's faces from another detector (the
    "copied" path), keeps who its faces were by place; a photo whose new version first failed
    to decode (an error row with the new hash) does not count as the same bytes."""
    from faceclust.records import FaceArrays, PhotoResult

    def faces(boxes, vectors):
        v = np.asarray(vectors, np.float32)
        return FaceArrays(np.asarray(boxes, np.float32), np.ones(len(boxes), np.float32),
                          np.zeros((len(boxes), 5, 2), np.float32), v / np.linalg.norm(v, axis=1, keepdims=True))

    box, moved_box = [[10, 10, 60, 60]], [[12, 8, 62, 61]]
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.write_results([PhotoResult("faces", "/p/a.jpg", 1, 1, "h1", 400, 300, faces(box, [[1.0, 0, 0, 0]])),
                           PhotoResult("faces", "/b/a.jpg", 1, 1, "h1", 400, 300, faces(box, [[1.0, 0, 0, 0]]))],
                          "m", "mmod", None)
        (ann,) = cat.create_people(1)
        copy_face = int(cat.face_geometry(2)[0][0])
        cat.add_assignments([(copy_face, ann, "user")])
        cat.write_results([PhotoResult("faces", "/p/a.jpg", 1, 1, "h1", 400, 300, faces(moved_box, [[1.0, 0.45, 0, 0]]))],
                          "m", "yunet", None)
        cat.write_results([PhotoResult("copied", "/b/a.jpg", 1, 1, "h1", source_id=1)], "m", "yunet", None)
        (new_copy_face,) = cat.face_geometry(2)[0]
        assert cat.assignments().get(int(new_copy_face)) == (ann, "user")
        # An edit whose first read failed: the error row holds the new hash, the old faces stay.
        (bob,) = cat.create_people(1)
        face = int(cat.face_geometry(1)[0][0])
        cat.add_assignments([(face, bob, "user")])
        cat.write_results([PhotoResult("error", "/p/a.jpg", 2, 2, "h2", error="cannot decode")], "m", "yunet", None)
        cat.write_results([PhotoResult("faces", "/p/a.jpg", 2, 2, "h2", 400, 300, faces(moved_box, [[0, 0, 1.0, 0]]))],
                          "m", "yunet", None)
        (stranger,) = cat.face_geometry(1)[0]
        assert int(stranger) not in cat.assignments()


def test_a_photo_moved_while_the_detector_changed_keeps_its_people(tmp_path):
    """Moved between two scans that use other detection options: the catalogued photo follows
    it (its people too), and it is detected again with the new options."""
    photos = library(tmp_path / "lib", 3)
    scan(tmp_path / "c.sqlite", tmp_path / "lib")
    with Catalog(tmp_path / "c.sqlite") as cat:
        (face,) = _face_ids(cat)[str(photos[1])]
        (ann,) = cat.create_people(1)
        cat.add_assignments([(face, ann, "user")])
    target = tmp_path / "lib" / "elsewhere" / "moved.png"
    target.parent.mkdir()
    shutil.move(photos[1], target)
    FakeDetector.calls = 0
    other = ScanOptions(detect=DetectOptions(detector="fake", min_face=20, min_score=0.5), embedder="fake")
    summary = scan(tmp_path / "c.sqlite", tmp_path / "lib", options=other)
    assert summary.moved == 1 and summary.new == 0 and summary.gone == 0
    assert FakeDetector.calls == 3  # every photo detected again, the moved one included
    with Catalog(tmp_path / "c.sqlite") as cat:
        (new_face,) = _face_ids(cat)[str(target)]
        assert cat.assignments()[new_face] == (ann, "user")
        assert str(photos[1]) not in _face_ids(cat)
    assert scan(tmp_path / "c.sqlite", tmp_path / "lib", options=other).unchanged == 3
