"""Duplicates: near-identical pairs against a loop, photo duplicates with the fake models
(copies, re-encodes, resizes, mirror images, moved faces, another shape), what an album leaves
out, the command; and copies of real photos with the real models."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import MARKER_COLOURS

from faceclust.catalog import Catalog
from faceclust.faces.detect import DetectOptions
from faceclust.find.dedupe import (
    DedupeOptions,
    DuplicateFinder,
    dedupe_library,
    is_mirror_image,
    near_identical_pairs,
    photos_to_leave_out,
    thumbnail,
)

FAKE_MODEL = "fake-embedder:1"


def picture(path: Path, faces, size=(320, 240), mark=True) -> Path:
    """A grey photo with a filled square per (colour, x, y, side) and, unless ``mark`` is False,
    a dark bar near the left edge so that the photo is not its own mirror image."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(im)
    if mark:
        draw.rectangle([8, 20, 30, size[1] - 20], fill=(20, 20, 20))
    for colour, x, y, side in faces:
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=MARKER_COLOURS[colour])
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def derive(source: Path, target: Path, how: str) -> Path:
    from PIL import Image, ImageOps

    with Image.open(source) as im:
        im = im.convert("RGB")
        if how == "jpeg":
            im.save(target, quality=92)
        elif how == "half":
            im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR).save(target)
        elif how == "mirror":
            ImageOps.mirror(im).save(target)
        else:
            raise ValueError(how)
    return target


def scan(catalog: Path, root: Path) -> None:
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    scan_library(catalog, [root], ScanOptions(detect=DetectOptions(detector="fake", min_face=20), embedder="fake"))


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "photos"
    orig = picture(root / "orig.png", [(0, 200, 40, 60)])
    shutil.copyfile(orig, root / "exact.png")
    derive(orig, root / "orig_q92.jpg", "jpeg")
    derive(orig, root / "orig_half.png", "half")
    derive(orig, root / "orig_mirror.png", "mirror")  # the face moves to the other side
    picture(root / "moved.png", [(0, 40, 100, 60)])  # the same face elsewhere: another photo
    picture(root / "wide.png", [(0, 250, 40, 60)], size=(400, 240))
    centred = picture(root / "centred.png", [(1, 140, 90, 40)])
    derive(centred, root / "centred_mirror.png", "mirror")  # the face stays put: only pixels tell
    picture(root / "none1.png", [], mark=False)
    shutil.copyfile(root / "none1.png", root / "none2.png")
    # The original is the oldest of the full-size copies, so it is the one kept on a tie.
    for k, path in enumerate(sorted(root.iterdir(), key=lambda p: (p.name != "orig.png", p.name))):
        os.utime(path, ns=(1_600_000_000_000_000_000 + k * 10**9,) * 2)
    catalog = tmp_path / "c.sqlite"
    scan(catalog, root)
    return catalog, root


def names(paths) -> set[str]:
    return {Path(p).name for p in paths}


def test_near_identical_pairs_match_a_loop():
    rng = np.random.default_rng(0)
    base = rng.normal(scale=0.3, size=(40, 8))
    vectors = np.concatenate([base, base[:10] + rng.normal(scale=0.02, size=(10, 8)), base[:3]]).astype(np.float32)
    i, j, d = near_identical_pairs(vectors, 0.1, neighbours=20)
    got = {(int(a), int(b)) for a, b in zip(i, j)}
    want = {(a, b) for a, b in itertools.combinations(range(len(vectors)), 2)
            if np.linalg.norm(vectors[a] - vectors[b]) < 0.1}
    assert got == want and len(got) == len(i)
    assert np.allclose(d, np.linalg.norm(vectors[i] - vectors[j], axis=1), atol=1e-4)
    assert len(near_identical_pairs(vectors[:1], 0.1)[0]) == 0


def test_mirror_images_are_told_from_copies(tmp_path):
    orig = picture(tmp_path / "a.png", [(1, 140, 90, 40)])
    a = thumbnail(str(orig))
    assert not is_mirror_image(a, thumbnail(str(derive(orig, tmp_path / "b.jpg", "jpeg"))))
    assert is_mirror_image(a, thumbnail(str(derive(orig, tmp_path / "c.png", "mirror"))))
    assert thumbnail(str(tmp_path / "missing.png")) is None


def test_duplicate_photos_and_faces(library):
    catalog, _ = library
    report = dedupe_library(catalog, model_id=FAKE_MODEL)
    groups = {frozenset(names(g.photos)): g for g in report.photo_groups}
    assert set(groups) == {frozenset({"orig.png", "exact.png", "orig_q92.jpg", "orig_half.png"}),
                           frozenset({"none1.png", "none2.png"})}
    copies = groups[frozenset({"orig.png", "exact.png", "orig_q92.jpg", "orig_half.png"})]
    assert copies.reason == "same bytes + same faces" and Path(copies.keep).name == "orig.png"
    assert groups[frozenset({"none1.png", "none2.png"})].reason == "same bytes"
    assert report.mirrored == 1  # centred.png and its mirror image
    assert names(report.leave_out()) == {"exact.png", "orig_q92.jpg", "orig_half.png", "none2.png"}
    # Near-identical faces: every red face (the fake embedder gives one colour one descriptor).
    faces = [names(f["photo"] for f in g.faces) for g in report.face_groups]
    assert {"orig.png", "moved.png", "wide.png", "orig_mirror.png"} <= next(f for f in faces if "orig.png" in f)
    assert {"centred.png", "centred_mirror.png"} in faces


def test_keep_prefers_more_pixels(tmp_path):
    root = tmp_path / "p"
    big = picture(root / "b_big.png", [(2, 200, 120, 80)], size=(320, 240))
    derive(big, root / "a_small.png", "half")
    scan(tmp_path / "c.sqlite", root)
    with Catalog(tmp_path / "c.sqlite") as cat:
        report = DuplicateFinder().run(cat, FAKE_MODEL)
    assert [Path(g.keep).name for g in report.photo_groups] == ["b_big.png"]
    assert names(photos_to_leave_out(tmp_path / "c.sqlite", model_id=FAKE_MODEL)) == {"a_small.png"}


def test_same_faces_in_another_picture_are_not_a_duplicate(tmp_path):
    """The same face at the same place, but another scene around it: a distinct photo."""
    from PIL import Image, ImageDraw

    root = tmp_path / "p"
    first = picture(root / "first.png", [(1, 200, 60, 60)])
    with Image.open(first) as im:
        other = im.convert("RGB")
    ImageDraw.Draw(other).rectangle([40, 150, 180, 230], fill=(240, 240, 240))  # someone else's sofa
    other.save(root / "second.png")
    scan(tmp_path / "c.sqlite", root)
    assert dedupe_library(tmp_path / "c.sqlite", model_id=FAKE_MODEL).photo_groups == []
    loose = DedupeOptions(min_similarity=-1)
    assert len(dedupe_library(tmp_path / "c.sqlite", loose, model_id=FAKE_MODEL).photo_groups) == 1


def test_options_are_validated():
    for bad in ({"face_distance": 0}, {"face_distance": 2.5}, {"aspect_tolerance": -1}, {"neighbours": 0},
                {"min_similarity": 1.5}):
        with pytest.raises(ValueError):
            DedupeOptions(**bad)


def test_a_face_distance_beyond_the_models_same_person_distance_is_refused(library):
    catalog, _ = library  # the fake embedder declares no distances: dlib's (same person 0.6)
    with pytest.raises(ValueError, match=r"below the model's same-person distance \(0\.6\)"):
        dedupe_library(catalog, DedupeOptions(face_distance=0.7), model_id=FAKE_MODEL)
    assert dedupe_library(catalog, DedupeOptions(face_distance=0.5), model_id=FAKE_MODEL).options["face_distance"] == 0.5


def test_dedupe_command(library, monkeypatch):
    from test_verify import cli_group

    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    catalog, _ = library

    def invoke(*args):
        return CliRunner().invoke(cli_group(), [str(a) for a in args], catch_exceptions=False)

    out = json.loads(invoke("dedupe", "--catalog", catalog, "--json").stdout)
    assert out["duplicate_photo_groups"] == 2 and out["photos_to_leave_out"] == 4 and out["mirrored"] == 1
    text = invoke("dedupe", "--catalog", catalog).output
    assert "4 photos, same bytes + same faces:" in text and "keep" in text
    assert "2 groups of duplicate photos (4 could be left out of albums)" in text
    assert invoke("dedupe", "--catalog", catalog, "--face-distance", "0.9").exit_code == 2


@pytest.mark.models
@pytest.mark.shared
def test_copies_of_real_photos(shared_data, tmp_path):
    """Re-encoded and resized copies are duplicates of their original; a mirror image is not."""
    from PIL import Image, ImageOps

    from faceclust.scan.scanner import scan_library

    folders = sorted(p for p in (shared_data / "celeba_train").iterdir() if p.is_dir())[:2]
    root = tmp_path / "copies"
    root.mkdir()
    for k, folder in enumerate(folders):
        source = sorted(folder.glob("*.jpg"))[0]
        shutil.copyfile(source, root / f"{k}_orig.jpg")
        with Image.open(source) as im:
            im = im.convert("RGB")
            im.save(root / f"{k}_q60.jpg", quality=60)
            im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.LANCZOS).save(root / f"{k}_small.jpg")
            ImageOps.mirror(im).save(root / f"{k}_flip.jpg", quality=95)
    catalog = tmp_path / "c.sqlite"
    scan_library(catalog, [root])
    report = dedupe_library(catalog)
    with Catalog(catalog) as cat:
        with_faces = {Path(r[1]).name for r in cat.iter_faces(None)}
    checked = 0
    for k in range(len(folders)):
        if f"{k}_orig.jpg" not in with_faces:
            continue
        checked += 1
        group = next((names(g.photos) for g in report.photo_groups if f"{k}_orig.jpg" in names(g.photos)), set())
        assert {f"{k}_orig.jpg", f"{k}_q60.jpg", f"{k}_small.jpg"} <= group
        assert f"{k}_flip.jpg" not in group
    assert checked >= 1
