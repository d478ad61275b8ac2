"""Face regions in XMP sidecars (faceclust xmp, run --xmp): MWG regions in the stored image's
orientation, names as keywords, merged into existing sidecars (everything else kept), nothing
written when nothing changed, originals never touched. exiftool (Debian's
libimage-exiftool-perl, installed by .ci/run) reads back what faceclust writes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import FAKE_SCAN, draw_photo, run_cli

pytest.importorskip("pyexiv2", reason="pyexiv2 (the xmp extra) is not installed")

from faceclust.photos import sidecar as sc  # noqa: E402
from faceclust.photos import xmp  # noqa: E402

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed (libimage-exiftool-perl)")

pytestmark = pytest.mark.usefixtures("fake_default_embedder")


def exiftool_regions(sidecar: Path) -> dict:
    out = subprocess.run([EXIFTOOL, "-j", "-struct", "-RegionInfo", "-Subject", "-TagsList", "-Title", "-Rating",
                          str(sidecar)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


def save_with_orientation(displayed, path: Path, orientation: int) -> Path:
    """Store ``displayed`` (a PIL image) so that a viewer applying EXIF ``orientation`` shows it."""
    from PIL import Image

    undo = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    stored = displayed if undo[orientation] is None else displayed.transpose(undo[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, quality=95, exif=exif.tobytes())
    return path


def expected_stored_box(box, shown_w: int, shown_h: int, orientation: int):
    """A box of the shown photo in the stored image's pixels, by the rotation that stored it."""
    left, top, right, bottom = box
    if orientation == 1:
        return left, top, right, bottom
    if orientation == 3:
        return shown_w - right, shown_h - bottom, shown_w - left, shown_h - top
    if orientation == 6:  # stored = shown turned 90 degrees counter-clockwise
        return top, shown_w - right, bottom, shown_w - left
    if orientation == 8:  # stored = shown turned 90 degrees clockwise
        return shown_h - bottom, left, shown_h - top, right
    raise ValueError(orientation)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_regions_go_to_the_stored_image_and_back_as_pillow_orients_it(orientation):
    from PIL import Image, ImageOps

    stored_w, stored_h, box = 64, 40, (10, 6, 22, 30)  # right/bottom exclusive
    stored = np.zeros((stored_h, stored_w, 3), np.uint8)
    stored[box[1]:box[3], box[0]:box[2]] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    shown = np.asarray(ImageOps.exif_transpose(image))
    ys, xs = np.nonzero(shown[..., 0])
    shown_box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    sh, sw = shown.shape[:2]
    region = xmp.shown_to_stored(shown_box, sw, sh, orientation)
    expected = ((box[0] + box[2]) / 2 / stored_w, (box[1] + box[3]) / 2 / stored_h,
                (box[2] - box[0]) / stored_w, (box[3] - box[1]) / stored_h)
    assert np.allclose(region, expected)
    assert np.allclose(xmp.stored_to_shown(region, sw, sh, orientation), shown_box)


def foreign_sidecar(path: Path, **extra) -> dict:
    """A sidecar another program made: a region of its own (and an extension under the region
    info), keywords, a title, a rating. Returns what it holds."""
    pyexiv2 = pytest.importorskip("pyexiv2")
    regions = "Xmp.mwg-rs.Regions"
    item = regions + "/mwg-rs:RegionList[1]"
    values = {regions: 'type="Struct"',
              regions + "/mwg-rs:AppliedToDimensions": 'type="Struct"',
              regions + "/mwg-rs:AppliedToDimensions/stDim:w": "640",
              regions + "/mwg-rs:AppliedToDimensions/stDim:h": "480",
              regions + "/mwg-rs:AppliedToDimensions/stDim:unit": "pixel",
              regions + "/mwg-rs:RegionList": 'type="Bag"', item: 'type="Struct"',
              item + "/mwg-rs:Name": "Jane Doe", item + "/mwg-rs:Type": "Face", item + "/mwg-rs:Area": 'type="Struct"',
              item + "/mwg-rs:Area/stArea:x": "0.5", item + "/mwg-rs:Area/stArea:y": "0.4",
              item + "/mwg-rs:Area/stArea:w": "0.1", item + "/mwg-rs:Area/stArea:h": "0.2",
              item + "/mwg-rs:Area/stArea:unit": "normalized",
              regions + "/mwg-rs:Extensions": 'type="Struct"', regions + "/mwg-rs:Extensions/xmp:Label": "theirs",
              "Xmp.dc.title": 'lang="x-default" Beach day', "Xmp.xmp.Rating": "4", **extra}
    with pyexiv2.ImageData(xmp.EMPTY_PACKET.encode()) as image:
        image.modify_xmp({"Xmp.dc.subject": 'type="Bag"', "Xmp.digiKam.TagsList": 'type="Seq"'})
        image.modify_xmp(values)
        image.modify_xmp({"Xmp.dc.subject": ["Holiday", "Jane Doe"], "Xmp.digiKam.TagsList": ["People/Jane Doe"]})
        path.write_bytes(image.get_bytes())
    return xmp.read_xmp(path)


def test_a_merge_keeps_what_other_programs_wrote_and_writes_nothing_twice(tmp_path):
    sidecar = tmp_path / "photo.jpg.xmp"
    foreign = foreign_sidecar(sidecar)
    assert foreign["Xmp.xmp.Rating"] == "4" and foreign["Xmp.dc.subject"] == ["Holiday", "Jane Doe"]
    # Nobody named in the photo: a sidecar faceclust owns nothing in is not touched.
    assert not sc.plan_sidecar(sidecar, [], (0, 0)).changed

    ours = [xmp.Region("Ann", 0.3, 0.4, 0.1, 0.12), xmp.Region("Bob", 0.7, 0.45, 0.08, 0.1)]
    sc.write_sidecar(sc.plan_sidecar(sidecar, ours, (640, 480)))
    merged = xmp.read_xmp(sidecar)
    assert [r["/mwg-rs:Name"] for r in xmp.regions_of(merged)] == ["Jane Doe", "Ann", "Bob"]
    assert merged["Xmp.dc.subject"] == ["Holiday", "Jane Doe", "Ann", "Bob"]
    assert merged["Xmp.digiKam.TagsList"] == ["People/Jane Doe", "People/Ann", "People/Bob"]
    assert merged["Xmp.mwg-rs.Regions/mwg-rs:Extensions/xmp:Label"] == "theirs"
    assert merged["Xmp.xmp.Rating"] == "4" and merged["Xmp.dc.title"] == foreign["Xmp.dc.title"]
    assert not sc.plan_sidecar(sidecar, ours, (640, 480)).changed

    # Bob renamed Robert, Ann gone: only faceclust's part changes.
    sc.write_sidecar(sc.plan_sidecar(sidecar, [xmp.Region("Robert", 0.7, 0.45, 0.08, 0.1)], (640, 480)))
    renamed = xmp.read_xmp(sidecar)
    assert [r["/mwg-rs:Name"] for r in xmp.regions_of(renamed)] == ["Jane Doe", "Robert"]
    assert renamed["Xmp.dc.subject"] == ["Holiday", "Jane Doe", "Robert"]
    assert renamed["Xmp.digiKam.TagsList"] == ["People/Jane Doe", "People/Robert"]
    # No named people left: the sidecar holds what the other program wrote, exactly.
    plan = sc.plan_sidecar(sidecar, [], (0, 0))
    assert plan.changed
    sc.write_sidecar(plan)
    assert xmp.read_xmp(sidecar) == foreign
    assert not sc.plan_sidecar(sidecar, [], (0, 0)).changed


def test_a_sidecar_faceclust_made_alone_is_emptied_of_its_part(tmp_path):
    sidecar = tmp_path / "a.jpg.xmp"
    sc.write_sidecar(sc.plan_sidecar(sidecar, [xmp.Region("Ann", 0.5, 0.5, 0.2, 0.2)], (100, 100)))
    assert xmp.read_xmp(sidecar)["Xmp.dc.subject"] == ["Ann"]
    sc.write_sidecar(sc.plan_sidecar(sidecar, [], (0, 0)))
    assert xmp.read_xmp(sidecar) == {}
    assert not sc.plan_sidecar(sidecar, [], (0, 0)).changed


def test_keywords_the_user_had_in_either_list_stay(tmp_path):
    sidecar = tmp_path / "a.jpg.xmp"
    pyexiv2 = pytest.importorskip("pyexiv2")
    with pyexiv2.ImageData(xmp.EMPTY_PACKET.encode()) as image:
        image.modify_xmp({"Xmp.digiKam.TagsList": 'type="Seq"'})
        image.modify_xmp({"Xmp.digiKam.TagsList": ["People/Ann", "Places/Sea"]})
        sidecar.write_bytes(image.get_bytes())
    sc.write_sidecar(sc.plan_sidecar(sidecar, [xmp.Region("Ann", 0.5, 0.5, 0.2, 0.2)], (100, 100)))
    data = xmp.read_xmp(sidecar)
    assert data["Xmp.digiKam.TagsList"] == ["People/Ann", "Places/Sea"] and data["Xmp.dc.subject"] == ["Ann"]
    sc.write_sidecar(sc.plan_sidecar(sidecar, [], (0, 0)))
    data = xmp.read_xmp(sidecar)
    assert data["Xmp.digiKam.TagsList"] == ["People/Ann", "Places/Sea"]  # the user's, kept
    assert "Xmp.dc.subject" not in data  # faceclust's, gone


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo"])
def test_a_sidecar_that_is_not_a_regular_file_is_left_alone(tmp_path, kind):
    import os

    sidecar = tmp_path / "photo.jpg.xmp"
    target = tmp_path / "elsewhere.xmp"
    if kind == "symlink":
        foreign_sidecar(target)
        sidecar.symlink_to(target)
    elif kind == "folder":
        sidecar.mkdir()
    else:
        os.mkfifo(sidecar)
    with pytest.raises(xmp.XmpError, match="photo.jpg.xmp: is "):
        sc.plan_sidecar(sidecar, [xmp.Region("Ann", 0.5, 0.5, 0.2, 0.2)], (100, 100))
    assert os.path.lexists(sidecar) and (kind != "symlink" or sidecar.is_symlink())


def test_a_keyword_the_user_had_stays_when_the_person_goes(tmp_path):
    sidecar = tmp_path / "a.jpg.xmp"
    pyexiv2 = pytest.importorskip("pyexiv2")
    sidecar.write_text(xmp.EMPTY_PACKET)
    image = pyexiv2.Image(str(sidecar))
    image.modify_xmp({"Xmp.dc.subject": "type=\"Bag\"", "Xmp.dc.subject[1]": "Ann"})
    image.close()
    sc.write_sidecar(sc.plan_sidecar(sidecar, [xmp.Region("Ann", 0.5, 0.5, 0.2, 0.2)], (100, 100)))
    assert xmp.read_xmp(sidecar)["Xmp.dc.subject"] == ["Ann"]  # not twice
    sc.write_sidecar(sc.plan_sidecar(sidecar, [], (100, 100)))
    assert xmp.read_xmp(sidecar)["Xmp.dc.subject"] == ["Ann"]  # the user's keyword, kept


def test_a_sidecar_that_is_not_xmp_is_reported_and_left_as_it_is(tmp_path):
    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_bytes(b"\x00\x01 not xmp at all \xff")
    before = sidecar.read_bytes()
    with pytest.raises(xmp.XmpError, match="photo.jpg.xmp: not readable as XMP"):
        sc.plan_sidecar(sidecar, [xmp.Region("Ann", 0.5, 0.5, 0.2, 0.2)], (100, 100))
    assert sidecar.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def named_library(tmp_path):
    """Three photos of person A (red squares; two stored turned, with EXIF orientation 6 and 8),
    one of B (green), scanned with the fake detector, clustered, A named 'Ann Example'."""
    from PIL import Image

    photos = tmp_path / "photos"
    draw_photo(photos / "a1.jpg", [(0, 40, 50, 60)], quality=95)
    draw_photo(photos / "b1.jpg", [(1, 150, 60, 50)], quality=95)
    turned = draw_photo(tmp_path / "upright.png", [(0, 200, 30, 70)])
    with Image.open(turned) as upright:
        save_with_orientation(upright.convert("RGB"), photos / "a2.jpg", 6)
        save_with_orientation(upright.convert("RGB"), photos / "a3.jpg", 8)
    catalog = tmp_path / "c.sqlite"
    assert run_cli("scan", photos, "--catalog", catalog, *FAKE_SCAN).exit_code == 0
    assert run_cli("cluster", "--catalog", catalog, "--min-faces", "1").exit_code == 0
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        people = cat.people()
        by_photo = {Path(p).name: pid for pid, p in cat.db.execute(
            "SELECT a.person_id, p.path FROM assignments a JOIN faces f ON f.id = a.face_id "
            "JOIN photos p ON p.id = f.photo_id")}
    assert by_photo["a1.jpg"] == by_photo["a2.jpg"] == by_photo["a3.jpg"] != by_photo["b1.jpg"]
    assert len(people) == 2
    assert run_cli("name", by_photo["a1.jpg"], "Ann Example", "--catalog", catalog).exit_code == 0
    return tmp_path, photos, catalog


def digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.suffix == ".jpg"}


def test_xmp_writes_sidecars_for_named_people_only_and_never_touches_a_photo(named_library):
    tmp, photos, catalog = named_library
    originals = digests(photos)
    dry = run_cli("xmp", "--catalog", catalog, "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["written"] == 3
    assert not list(photos.glob("*.xmp"))
    result = run_cli("xmp", "--catalog", catalog)
    assert result.exit_code == 0, result.output
    assert "3 photos with named people: 3 sidecars written" in result.stdout
    assert sorted(p.name for p in photos.glob("*.xmp")) == ["a1.jpg.xmp", "a2.jpg.xmp", "a3.jpg.xmp"]  # B: no name
    assert digests(photos) == originals
    data = xmp.read_xmp(photos / "a1.jpg.xmp")
    assert [r["/mwg-rs:Name"] for r in xmp.regions_of(data)] == ["Ann Example"]
    assert data["Xmp.dc.subject"] == ["Ann Example"]

    stamps = {p.name: p.stat().st_mtime_ns for p in photos.glob("*.xmp")}
    again = run_cli("xmp", "--catalog", catalog, "--json")
    assert json.loads(again.stdout)["written"] == 0 and json.loads(again.stdout)["unchanged"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in photos.glob("*.xmp")} == stamps

    assert run_cli("name", "Ann Example", "Anna", "--catalog", catalog).exit_code == 0
    renamed = json.loads(run_cli("xmp", "--catalog", catalog, "--json").stdout)
    assert renamed["written"] == 3
    assert xmp.read_xmp(photos / "a2.jpg.xmp")["Xmp.dc.subject"] == ["Anna"]

    lightroom = run_cli("xmp", "--catalog", catalog, "--sidecar-name", "photo.xmp")
    assert lightroom.exit_code == 0 and (photos / "a1.xmp").is_file()


@needs_exiftool
def test_exiftool_reads_the_names_and_boxes_back_on_turned_and_upright_photos(named_library):
    tmp, photos, catalog = named_library
    assert run_cli("xmp", "--catalog", catalog).exit_code == 0
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        boxes = {Path(p).name: (box, (w, h)) for p, w, h, *box in cat.db.execute(
            "SELECT p.path, p.width, p.height, f.left, f.top, f.right, f.bottom FROM faces f "
            "JOIN photos p ON p.id = f.photo_id")}
    for name, orientation in (("a1.jpg", 1), ("a2.jpg", 6), ("a3.jpg", 8)):
        box, (w, h) = boxes[name]
        read = exiftool_regions(photos / f"{name}.xmp")
        info = read["RegionInfo"]
        dims = info["AppliedToDimensions"]
        stored_w, stored_h = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        assert (dims["W"], dims["H"], dims["Unit"]) == (stored_w, stored_h, "pixel")
        [region] = info["RegionList"]
        assert region["Name"] == "Ann Example" and region["Type"] == "Face"
        area = region["Area"]
        got = ((area["X"] - area["W"] / 2) * stored_w, (area["Y"] - area["H"] / 2) * stored_h,
               (area["X"] + area["W"] / 2) * stored_w, (area["Y"] + area["H"] / 2) * stored_h)
        assert np.allclose(got, expected_stored_box(box, w, h, orientation), atol=1.0)
        assert read["Subject"] in ("Ann Example", ["Ann Example"])
        assert read["TagsList"] in ("People/Ann Example", ["People/Ann Example"])


@needs_exiftool
def test_an_exiftool_sidecar_keeps_its_tags_and_regions(named_library):
    tmp, photos, catalog = named_library
    sidecar = photos / "a1.jpg.xmp"
    subprocess.run([EXIFTOOL, "-q", "-o", str(sidecar),
                    "-RegionInfo={AppliedToDimensions={W=320,H=240,Unit=pixel},RegionList=[{Area={X=0.8,Y=0.2,"
                    "W=0.1,H=0.1,Unit=normalized},Name=Someone Else,Type=Face}]}",
                    "-Subject=Holiday", "-Title=Beach day", "-Rating=4"], check=True)
    before = exiftool_regions(sidecar)
    assert run_cli("xmp", "--catalog", catalog).exit_code == 0
    after = exiftool_regions(sidecar)
    assert after["Title"] == "Beach day" and after["Rating"] == 4
    assert after["Subject"] == ["Holiday", "Ann Example"]
    assert [r["Name"] for r in after["RegionInfo"]["RegionList"]] == ["Someone Else", "Ann Example"]
    assert after["RegionInfo"]["RegionList"][0] == before["RegionInfo"]["RegionList"][0]


def test_run_with_xmp_writes_the_sidecars_after_the_albums(tmp_path):
    from faceclust.catalog import Catalog

    photos = tmp_path / "photos"
    for name, x in (("a.jpg", 40), ("b.jpg", 120), ("c.jpg", 200)):
        draw_photo(photos / name, [(0, x, 50, 60)])
    catalog, out = tmp_path / "c.sqlite", tmp_path / "albums"
    result = run_cli("run", photos, "--out", out, "--catalog", catalog, "--xmp", *FAKE_SCAN)
    assert result.exit_code == 0, result.output
    assert "XMP sidecars: 0 written" in result.stdout  # nobody is named yet
    assert not list(photos.glob("*.xmp"))
    with Catalog(catalog) as cat:
        [person] = cat.people()
    assert run_cli("name", person["id"], "Ann", "--catalog", catalog).exit_code == 0
    result = run_cli("run", photos, "--out", out, "--catalog", catalog, "--xmp", *FAKE_SCAN)
    assert "XMP sidecars: 3 written" in result.stdout
    assert sorted(p.name for p in photos.glob("*.xmp")) == ["a.jpg.xmp", "b.jpg.xmp", "c.jpg.xmp"]


def test_without_pyexiv2_the_command_says_what_to_install(named_library, monkeypatch):
    import builtins

    tmp, photos, catalog = named_library
    real_import = builtins.__import__

    def no_pyexiv2(name, *args, **kwargs):
        if name == "pyexiv2":
            raise ImportError("No module named 'pyexiv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyexiv2)
    monkeypatch.setattr(xmp._pyexiv2, "registered", False, raising=False)
    from click.testing import CliRunner

    from faceclust.cli import main

    out = CliRunner().invoke(main, ["xmp", "--catalog", str(catalog)])
    assert out.exit_code != 0
    assert "pip install 'faceclust[xmp]'" in out.output and "Traceback" not in out.output
