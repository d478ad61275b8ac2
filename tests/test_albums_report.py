"""Albums and the HTML report, from a catalog of real files with synthetic embeddings."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import draw_photo

from faceclust.catalog import Catalog
from faceclust.output.albums import MANIFEST, write_albums
from faceclust.output.report import write_report
from faceclust.people import ClusterOptions, PeopleClusterer, move_face, name_person, reject_face
from faceclust.records import FaceArrays, PhotoResult

MODEL = "test-model:1"


def tree(root: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        out[folder.name] = {f.name for f in folder.iterdir()}
    return out


def sha(paths):
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def library(tmp_path):
    """Six photos of two people (A: 3 photos, B: 2 photos, both in one group photo)."""
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    layout = {"a1.jpg": [a], "a2.jpg": [a], "sub/a1.jpg": [a], "b1.jpg": [b], "b2.png": [b], "group.jpg": [a, b]}
    photos = {}
    results = []
    for i, (name, people) in enumerate(layout.items()):
        path = draw_photo(tmp_path / "photos" / name, [(j, 20 + 120 * j, 40, 80) for j in range(len(people))],
                          size=(300, 200))
        n = len(people)
        vectors = np.array(people) + rng.normal(scale=0.02, size=(n, 8))
        boxes = np.array([[20 + 120 * j, 40, 100 + 120 * j, 120] for j in range(n)], np.float32)
        results.append(PhotoResult("faces", str(path), path.stat().st_size, path.stat().st_mtime_ns, f"h{i}",
                                   300, 200, FaceArrays(boxes, np.ones(n, np.float32),
                                                        np.zeros((n, 5, 2), np.float32), vectors.astype(np.float32))))
        photos[name] = path
    catalog = tmp_path / "c.sqlite"
    with Catalog(catalog) as cat:
        cat.write_results(results, MODEL, "det", None)
        PeopleClusterer(cat, MODEL, ClusterOptions()).run()
        people = {p["faces"]: p["id"] for p in cat.people()}
    return {"catalog": catalog, "photos": photos, "a": people[4], "b": people[3], "root": tmp_path}


def test_albums_hold_each_persons_photos_and_originals_stay_untouched(library):
    out = library["root"] / "albums"
    before = sha(library["photos"].values())
    summary = write_albums(library["catalog"], out)
    assert summary.added == 7 and not summary.errors
    a, b = f"person-{library['a']:04d}", f"person-{library['b']:04d}"
    folders = tree(out)
    assert folders[b] == {"b1.jpg", "b2.png", "group.jpg"}
    assert len(folders[a]) == 4 and {"a2.jpg", "group.jpg"} <= folders[a]
    assert sum(name.startswith("a1") for name in folders[a]) == 2  # two a1.jpg from two folders
    for link in (out / a).iterdir():
        assert link.is_symlink() and Path(os.readlink(link)).is_absolute()
    assert sha(library["photos"].values()) == before


def test_rerun_follows_changes_and_never_touches_other_files(library):
    out = library["root"] / "albums"
    write_albums(library["catalog"], out)
    a, b = library["a"], library["b"]
    (out / f"person-{b:04d}" / "my notes.txt").write_text("mine")
    name_person(library["catalog"], str(a), "Alice")
    with Catalog(library["catalog"]) as cat:
        group_faces = [f for p, f, path, *_ in cat.person_faces() if path.endswith("group.jpg")]
    b_face = next(f for f in group_faces if f != min(group_faces))
    reject_face(library["catalog"], b_face)
    summary = write_albums(library["catalog"], out)
    folders = tree(out)
    assert "Alice" in folders and f"person-{a:04d}" not in folders
    assert folders[f"person-{b:04d}"] == {"b1.jpg", "b2.png", "my notes.txt"}
    assert summary.removed >= 1
    move_face(library["catalog"], b_face, str(b))
    write_albums(library["catalog"], out)
    assert tree(out)[f"person-{b:04d}"] == {"b1.jpg", "b2.png", "group.jpg", "my notes.txt"}


def test_a_half_written_manifest_left_by_a_killed_run_is_removed_and_nothing_else(library):
    """A run killed while it saved the manifest leaves the atomic write's temporary file
    (``.<manifest>.XXXX.tmp``); the next run removes it, and only it."""
    out = library["root"] / "albums"
    write_albums(library["catalog"], out)
    stale = out / f".{MANIFEST}.k1ll3d.tmp"
    stale.write_text('{"version": 1, "entr')
    mine = [out / ".my-notes.tmp", out / f".{MANIFEST}.k1ll3d.txt"]
    for path in mine:
        path.write_text("mine")
    write_albums(library["catalog"], out)
    assert not stale.exists()
    assert all(path.read_text() == "mine" for path in mine)


def test_a_half_written_report_in_an_album_folder_is_removed_and_nothing_else(library):
    """A run killed while it wrote the report into the album folder leaves the atomic write's
    temporary file (``.faceclust-report.html.XXXX.tmp``, as big as the report); the next report
    written there removes it, under the album folder's lock, and nothing else. A report
    written elsewhere touches nothing beside it (no lock there to say no one else is writing)."""
    from faceclust.output.report import REPORT_NAME

    out = library["root"] / "albums"
    write_albums(library["catalog"], out)
    stale = out / f".{REPORT_NAME}.k1ll3d.tmp"
    stale.write_text("<html><body>half")
    mine = [out / ".my-notes.tmp", out / f".{REPORT_NAME}.k1ll3d.txt", out / f".{MANIFEST}.other.tmp"]
    for path in mine:
        path.write_text("mine")
    write_report(library["catalog"], out / REPORT_NAME)
    assert not stale.exists() and (out / REPORT_NAME).read_text().startswith("<!")
    assert all(path.read_text() == "mine" for path in mine)
    elsewhere = library["root"] / "reports"
    elsewhere.mkdir()
    other = elsewhere / f".{REPORT_NAME}.k1ll3d.tmp"
    other.write_text("<html><body>half")
    write_report(library["catalog"], elsewhere / REPORT_NAME)
    assert other.read_text() == "<html><body>half" and not (elsewhere / ".faceclust-albums.lock").exists()


@pytest.mark.parametrize("mode", ["hardlink", "copy"])
def test_hardlink_and_copy_modes(library, mode):
    out = library["root"] / mode
    write_albums(library["catalog"], out, mode=mode)
    some = next((out / f"person-{library['b']:04d}").iterdir())
    assert not some.is_symlink() and some.read_bytes() == library["photos"][some.name].read_bytes()
    assert (some.stat().st_ino == library["photos"][some.name].stat().st_ino) == (mode == "hardlink")


def test_hostile_names_stay_inside_out_and_are_escaped(library):
    out = library["root"] / "albums"
    name_person(library["catalog"], str(library["a"]), "../../etc")
    name_person(library["catalog"], str(library["b"]), "<script>alert(1)</script>")
    write_albums(library["catalog"], out)
    entries = [p.parent.resolve() / p.name for p in out.rglob("*")]  # the entries, not their targets
    assert entries and all(out.resolve() in p.parents for p in entries)
    assert not (library["root"] / "etc").exists()
    assert len(tree(out)) == 2
    report = library["root"] / "report.html"
    write_report(library["catalog"], report)
    text = report.read_text()
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "../../etc" in text


def test_report_embeds_a_thumbnail_per_face(library):
    report = library["root"] / "r.html"
    assert write_report(library["catalog"], report) == 2
    text = report.read_text()
    assert text.count("data:image/jpeg;base64,") == 7
    assert "src='http" not in text and "file:" not in text


def test_unknown_bucket_is_optional(library, tmp_path):
    with Catalog(library["catalog"]) as cat:
        face = next(f for p, f, *_ in cat.person_faces() if p == library["b"])
    reject_face(library["catalog"], face)
    write_albums(library["catalog"], tmp_path / "no")
    assert "unknown" not in tree(tmp_path / "no")
    write_albums(library["catalog"], tmp_path / "yes", include_unknown=True)
    assert len(tree(tmp_path / "yes")["unknown"]) == 1
    assert (tmp_path / "yes" / MANIFEST).exists()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def _chromium() -> str:
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    return found


def test_report_renders_in_a_browser(library, tmp_path):
    """Open the report in headless Chromium: the thumbnails show the faces, hostile names are
    text, not markup, and no script runs."""
    import subprocess

    from PIL import Image

    browser = _chromium()
    name_person(library["catalog"], str(library["b"]), "<img src=x onerror=\"document.title='pwned'\">")
    name_person(library["catalog"], str(library["a"]), "<script>document.title='pwned'</script>\u202e\x1b[31m")
    report = tmp_path / "report.html"
    write_report(library["catalog"], report)
    shot = tmp_path / "shot.png"
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=900,700", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # The faces drawn in the photos are red (one green): their thumbnails must be on screen.
    red = (np.abs(pixels - (220, 30, 30)).max(axis=2) < 40).sum()
    green = (np.abs(pixels - (30, 200, 40)).max(axis=2) < 40).sum()
    assert red > 6 * 40 * 40 and green > 40 * 40
    dom = subprocess.run([*common, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]
    assert "&lt;img src=x onerror=" in dom and "&lt;script&gt;document.title" in dom
    assert "\u202e" not in dom and "\x1b" not in dom  # layout and terminal controls are not shown


def test_albums_can_keep_one_photo_of_each_duplicate_group(library):
    import shutil

    original = library["photos"]["a2.jpg"]
    copy = original.with_name("a2 copy.jpg")
    shutil.copy2(original, copy)
    with Catalog(library["catalog"]) as cat:
        source = cat.photo_states()[str(original)]
        cat.write_results([PhotoResult("copied", str(copy), copy.stat().st_size, copy.stat().st_mtime_ns,
                                       source.content_hash, source_id=source.id)], MODEL, "det", None)
        PeopleClusterer(cat, MODEL, ClusterOptions()).run()
    a = f"person-{library['a']:04d}"
    write_albums(library["catalog"], library["root"] / "all")
    assert {"a2.jpg", "a2 copy.jpg"} <= tree(library["root"] / "all")[a]
    write_albums(library["catalog"], library["root"] / "one", skip_duplicates=True)
    kept = tree(library["root"] / "one")[a]
    assert len({"a2.jpg", "a2 copy.jpg"} & kept) == 1 and len(kept) == 4


def test_report_shows_a_persons_faces_in_the_order_they_were_taken(tmp_path):
    import re

    from faceclust.output.report import render_report

    # (person, face id, path, left, top, right, bottom, score): the best-scored face is the newest.
    rows = [(1, 10, str(tmp_path / "new.jpg"), 0, 0, 10, 10, 0.99), (1, 11, str(tmp_path / "old.jpg"), 0, 0, 10, 10, 0.5),
            (1, 12, str(tmp_path / "undated.jpg"), 0, 0, 10, 10, 0.7)]
    people = [{"id": 1, "name": "Ann", "hidden": False, "faces": 3, "photos": 3}]
    dates = {str(tmp_path / "new.jpg"): 2_000_000_000.0, str(tmp_path / "old.jpg"): 1_000_000_000.0}
    order = re.findall(r"face (\d+) in", render_report(rows, people, dates=dates))
    assert order == ["11", "10", "12"]
    assert re.findall(r"face (\d+) in", render_report(rows, people)) == ["10", "11", "12"]  # no dates: by path


def test_report_thumbnails_of_a_big_photo_are_cut_from_a_reduced_decode(tmp_path, monkeypatch):
    """A 12 MP photo's faces are cut from a decode no larger than their thumbnails need (a
    fraction of a full one), and still show the face."""
    import base64
    import io
    import re

    from PIL import Image

    from faceclust.output import report
    from faceclust.photos import decode

    photo = draw_photo(tmp_path / "big.jpg", [(0, 1000, 800, 700), (2, 2900, 200, 900)], size=(4032, 3024), quality=92)
    sizes = []
    real = decode.load_image

    def spying(path, scale_for=None):
        image = real(path, scale_for)
        sizes.append(image.pixels.shape[:2])
        return image

    monkeypatch.setattr(decode, "load_image", spying)
    rows = [(1, 1, str(photo), 1000, 800, 1700, 1500, 0.9), (1, 2, str(photo), 2900, 200, 3800, 1100, 0.8)]
    people = [{"id": 1, "name": "Ann", "hidden": False, "faces": 2, "photos": 1}]
    html_text = report.render_report(rows, people)
    # One decode for both faces, at the smaller face's need (2 x 96 px over its 980 px crop):
    # 790 px wide (from the JPEG decoder's 1/4 scale), not the 1600 px it used to read.
    assert sizes == [(round(3024 * 2 * 96 / 980), round(4032 * 2 * 96 / 980))]
    colours = []
    for uri in re.findall(r"src='data:image/jpeg;base64,([^']+)'", html_text):
        thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB"), int)
        assert thumb.shape == (96, 96, 3)
        colours.append(thumb[40:56, 40:56].reshape(-1, 3).mean(axis=0))
    assert len(colours) == 2
    assert np.abs(colours[0] - (220, 30, 30)).max() < 20 and np.abs(colours[1] - (40, 60, 230)).max() < 20
