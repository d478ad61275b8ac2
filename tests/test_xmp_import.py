"""Face tags other programs wrote, read by a scan: MWG and Microsoft Photo regions in XMP
sidecars (written here by exiftool, as digiKam or Lightroom would) and in a photo's own XMP
name the faces they mark; clustering keeps them; the user's own decisions win; faceclust's own
sidecars are not read back as tags; --no-import turns it off."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FAKE_SCAN, draw_photo, run_cli

pytest.importorskip("pyexiv2", reason="pyexiv2 (the xmp extra) is not installed")

EXIFTOOL = shutil.which("exiftool")
pytestmark = [pytest.mark.usefixtures("fake_default_embedder"),
              pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed (libimage-exiftool-perl)")]


def mwg_sidecar(target: Path, regions: list[tuple[str, tuple]], size: tuple[int, int], *extra: str) -> None:
    """``regions``: (name, (x, y, w, h) normalised centre and size in the stored image)."""
    items = ",".join(f"{{Area={{X={x},Y={y},W={w},H={h},Unit=normalized}},Name={name},Type=Face}}"
                     for name, (x, y, w, h) in regions)
    info = f"-RegionInfo={{AppliedToDimensions={{W={size[0]},H={size[1]},Unit=pixel}},RegionList=[{items}]}}"
    if target.suffix.lower() == ".xmp":
        target.unlink(missing_ok=True)
        subprocess.run([EXIFTOOL, "-q", "-o", str(target), info, *extra], check=True)
    else:  # embedded in the photo (a test's own copy)
        subprocess.run([EXIFTOOL, "-q", "-overwrite_original", info, *extra, str(target)], check=True)


def mp_sidecar(target: Path, name: str, rect: tuple) -> None:
    """A Microsoft Photo region: (left, top, width, height), normalised."""
    text = "|, ".join(str(v) for v in rect)
    target.unlink(missing_ok=True)
    subprocess.run([EXIFTOOL, "-q", "-o", str(target),
                    f"-RegionInfoMP={{Regions=[{{PersonDisplayName={name},Rectangle={text}}}]}}"], check=True)


def centre(box, size):
    """(x, y, w, h) normalised of a square (left, top, side) in a photo of ``size``."""
    left, top, side = box
    return ((left + side / 2) / size[0], (top + side / 2) / size[1], side / size[0], side / size[1])


def people(catalog: Path) -> dict[str, list[str]]:
    """name (or '') -> the photo files of the person's faces."""
    from faceclust.catalog import Catalog

    out: dict[str, list[str]] = {}
    with Catalog(catalog) as cat:
        for name, path in cat.db.execute(
                "SELECT pe.name, p.path FROM assignments a JOIN people pe ON pe.id = a.person_id "
                "JOIN faces f ON f.id = a.face_id JOIN photos p ON p.id = f.photo_id ORDER BY p.path"):
            out.setdefault(name or "", []).append(Path(path).name)
    return out


def scan(photos, catalog, *more):
    result = run_cli("scan", photos, "--catalog", catalog, "--json", *FAKE_SCAN, *more)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def tagged(tmp_path):
    """a.jpg (two faces: red tagged 'Jane Doe' in a digiKam-style sidecar, green untagged),
    b.jpg (red again, tagged in Microsoft's form), c.jpg (blue, a region where no face is)."""
    photos = tmp_path / "photos"
    size = (320, 240)
    draw_photo(photos / "a.jpg", [(0, 40, 50, 60), (1, 200, 60, 50)])
    draw_photo(photos / "b.jpg", [(0, 100, 80, 60)])
    draw_photo(photos / "c.jpg", [(2, 30, 30, 60)])
    # A region a little larger than the face, as other programs draw them.
    mwg_sidecar(photos / "a.jpg.xmp", [("Jane Doe", centre((35, 45, 70), size))], size, "-Subject=Holiday")
    mp_sidecar(photos / "b.xmp", "Jane Doe", (100 / 320, 80 / 240, 60 / 320, 60 / 240))
    mwg_sidecar(photos / "c.jpg.xmp", [("Ghost", centre((250, 150, 40), size))], size)
    return tmp_path, photos, tmp_path / "c.sqlite"


def test_tags_in_sidecars_name_the_faces_they_mark_and_clustering_keeps_them(tagged):
    tmp, photos, catalog = tagged
    summary = scan(photos, catalog)
    assert summary["tags_imported"] == 2 and summary["tags_unmatched"] == 1
    assert any("'Ghost'" in w and "c.jpg" in w for w in summary["warnings"])
    assert people(catalog) == {"Jane Doe": ["a.jpg", "b.jpg"]}
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        sources = {Path(s).name for _, s in cat.imported_faces().values()}
        entries = [h["description"] for h in cat.history()]
    assert sources == {"a.jpg.xmp", "b.xmp"}
    assert "import face tags: 2 faces named from XMP" in entries
    assert run_cli("cluster", "--catalog", catalog, "--min-faces", "1").exit_code == 0
    after = people(catalog)
    assert after["Jane Doe"] == ["a.jpg", "b.jpg"]  # kept by clustering, as user decisions are
    # Read once: an unchanged sidecar is not read again.
    assert scan(photos, catalog)["tags_imported"] == 0


def test_a_changed_sidecar_is_read_again_but_the_users_decisions_win(tagged):
    tmp, photos, catalog = tagged
    scan(photos, catalog)
    size = (320, 240)
    # Renamed in the other program: the face (placed by the tag, not moved since) follows.
    mwg_sidecar(photos / "a.jpg.xmp", [("Jane Smith", centre((35, 45, 70), size))], size)
    assert scan(photos, catalog)["tags_imported"] == 1
    assert people(catalog)["Jane Smith"] == ["a.jpg"]
    # The user says b.jpg's face is not Jane Doe; a changed tag does not undo that.
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        [(face, person)] = [(f, p) for f, (p, _s) in cat.assignments().items()
                            if cat.photos_of_faces([f])[f] == cat.photo_id(str(photos / "b.jpg"))]
    assert run_cli("reject", face, "--catalog", catalog).exit_code == 0
    mp_sidecar(photos / "b.xmp", "Jane Doe", (98 / 320, 78 / 240, 64 / 320, 64 / 240))
    assert scan(photos, catalog)["tags_imported"] == 0
    assert "b.jpg" not in sum(people(catalog).values(), [])


def test_tags_inside_a_heic_photo_are_read(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif (the heif extra) is not installed")
    from PIL import Image

    pillow_heif.register_heif_opener()
    photos = tmp_path / "photos"
    drawn = draw_photo(tmp_path / "drawn.png", [(0, 60, 40, 70)])
    photos.mkdir()
    with Image.open(drawn) as image:
        image.convert("RGB").save(photos / "phone.heic", quality=95)
    mwg_sidecar(photos / "phone.heic", [("Ann", centre((60, 40, 70), (320, 240)))], (320, 240))
    summary = scan(photos, tmp_path / "c.sqlite")
    assert summary["tags_imported"] == 1 and people(tmp_path / "c.sqlite") == {"Ann": ["phone.heic"]}


def test_tags_inside_a_photo_and_on_a_turned_photo_are_read(tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    embedded = draw_photo(photos / "inside.jpg", [(0, 60, 40, 70)])
    mwg_sidecar(embedded, [("Ann", centre((60, 40, 70), (320, 240)))], (320, 240))
    # Stored turned (EXIF orientation 6: shown after a quarter turn clockwise). The face is
    # shown at (200, 30)-(270, 100) of a 320x240 photo; stored, the photo is 240x320 and the
    # face at x 30-100, y 320-270 .. 320-200 (see tests/test_xmp.py for the mapping).
    upright = draw_photo(tmp_path / "upright.png", [(0, 200, 30, 70)])
    with Image.open(upright) as image:
        stored = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(photos / "turned.jpg", quality=95, exif=exif.tobytes())
    x, y, w, h = (30 + 35) / 240, (50 + 35) / 320, 70 / 240, 70 / 320
    mwg_sidecar(photos / "turned.jpg.xmp", [("Ann", (x, y, w, h))], (240, 320))
    summary = scan(photos, tmp_path / "c.sqlite")
    assert summary["tags_imported"] == 2 and summary["tags_unmatched"] == 0
    assert people(tmp_path / "c.sqlite") == {"Ann": ["inside.jpg", "turned.jpg"]}


def test_no_import_reads_no_tags(tagged):
    tmp, photos, catalog = tagged
    summary = scan(photos, catalog, "--no-import")
    assert summary["tags_imported"] == 0 and people(catalog) == {}


def test_faceclusts_own_sidecars_are_not_read_back_as_tags(tmp_path):
    from faceclust.catalog import Catalog

    photos = tmp_path / "photos"
    for name, x in (("a.jpg", 40), ("b.jpg", 120)):
        draw_photo(photos / name, [(0, x, 50, 60)])
    catalog = tmp_path / "c.sqlite"
    scan(photos, catalog)
    assert run_cli("cluster", "--catalog", catalog, "--min-faces", "1").exit_code == 0
    with Catalog(catalog) as cat:
        [person] = cat.people()
    assert run_cli("name", person["id"], "Ann", "--catalog", catalog).exit_code == 0
    assert run_cli("xmp", "--catalog", catalog).exit_code == 0
    assert run_cli("name", "Ann", "Anna", "--catalog", catalog).exit_code == 0
    summary = scan(photos, catalog)  # the sidecars are new to the scan, and say 'Ann'
    assert summary["tags_imported"] == 0
    assert people(catalog) == {"Anna": ["a.jpg", "b.jpg"]}


@pytest.mark.models
@pytest.mark.shared
def test_real_photos_tagged_in_another_program_make_named_people(shared_data, tmp_path):
    """lfw photos of two people; sidecars in MWG form (regions a fifth larger than faceclust's
    boxes, as other programs draw them), one in Microsoft's form, made after a first scan; the
    next scan names them."""
    from faceclust.catalog import Catalog

    photos = tmp_path / "photos"
    photos.mkdir()
    people_dirs = [d for d in sorted((shared_data / "lfw_dev").iterdir()) if len(list(d.glob("*.jpg"))) >= 3][:2]
    for d in people_dirs:
        for p in sorted(d.glob("*.jpg"))[:3]:
            shutil.copy(p, photos / p.name)
    catalog = tmp_path / "c.sqlite"
    assert run_cli("scan", photos, "--catalog", catalog, "--json").exit_code == 0
    with Catalog(catalog) as cat:
        rows = cat.db.execute("SELECT p.path, p.width, p.height, f.left, f.top, f.right, f.bottom FROM faces f "
                              "JOIN photos p ON p.id = f.photo_id ORDER BY p.path, f.score DESC").fetchall()
    tagged, seen = {}, set()
    for path, w, h, left, top, right, bottom in rows:
        if path in seen:
            continue  # the most confident face of each photo: its person
        seen.add(path)
        name = Path(path).stem.rsplit("_", 1)[0].replace("_", " ")
        cx, cy, bw, bh = (left + right) / 2 / w, (top + bottom) / 2 / h, 1.2 * (right - left) / w, 1.2 * (bottom - top) / h
        if not tagged:  # the first one as Windows Photo Gallery writes it: top-left corner and size
            mp_sidecar(Path(path + ".xmp"), name, (cx - bw / 2, cy - bh / 2, bw, bh))
        else:
            mwg_sidecar(Path(path + ".xmp"), [(name, (cx, cy, bw, bh))], (w, h))
        tagged[Path(path).name] = name
    assert len(tagged) == 6
    result = run_cli("scan", photos, "--catalog", catalog, "--json")
    summary = json.loads(result.stdout)
    assert summary["tags_imported"] == 6 and summary["tags_unmatched"] == 0
    with Catalog(catalog) as cat:
        imported = cat.imported_faces()
        photo_of = cat.photos_of_faces(imported)
        paths = dict(cat.db.execute("SELECT id, path FROM photos"))
    assert sorted((Path(paths[photo_of[f]]).name, n) for f, (n, _s) in imported.items()) == sorted(tagged.items())
    assert run_cli("cluster", "--catalog", catalog).exit_code == 0
    with Catalog(catalog) as cat:
        held = cat.assignments_of(imported)
        for face, (name, _source) in imported.items():
            person, source = held[face]
            assert cat.person(person)["name"] == name and source == "user"
        assert sorted(p["name"] for p in cat.people() if p["name"]) == sorted({*tagged.values()})


def test_tags_left_unread_by_one_scan_are_read_by_the_next(tmp_path):
    photos = tmp_path / "photos"
    inside = draw_photo(photos / "inside.jpg", [(0, 60, 40, 70)])
    mwg_sidecar(inside, [("Ann", centre((60, 40, 70), (320, 240)))], (320, 240))
    draw_photo(photos / "upper.jpg", [(1, 150, 60, 60)])
    mwg_sidecar(photos / "UPPER.JPG.XMP", [("Bob", centre((150, 60, 60), (320, 240)))], (320, 240))
    catalog = tmp_path / "c.sqlite"
    assert scan(photos, catalog, "--no-import")["tags_imported"] == 0 and people(catalog) == {}
    summary = scan(photos, catalog)  # the photo is unchanged; its own tags were never read
    assert summary["tags_imported"] == 2
    assert people(catalog) == {"Ann": ["inside.jpg"], "Bob": ["upper.jpg"]}
    assert scan(photos, catalog)["tags_imported"] == 0


def test_one_photo_xmp_for_two_photos_of_the_same_name_names_neither(tmp_path):
    photos = tmp_path / "photos"
    draw_photo(photos / "a.jpg", [(0, 40, 50, 60)])
    draw_photo(photos / "a.png", [(1, 200, 60, 60)])
    mwg_sidecar(photos / "a.xmp", [("Jane", centre((40, 50, 60), (320, 240)))], (320, 240))
    catalog = tmp_path / "c.sqlite"
    assert scan(photos, catalog)["tags_imported"] == 0 and people(catalog) == {}
    # ... and faceclust xmp with that naming writes neither, and says why.
    assert run_cli("cluster", "--catalog", catalog, "--min-faces", "1").exit_code == 0
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        ids = [p["id"] for p in cat.people()]
    for k, pid in enumerate(ids):
        assert run_cli("name", pid, f"P{k}", "--catalog", catalog).exit_code == 0
    before = (photos / "a.xmp").read_bytes()
    result = run_cli("xmp", "--catalog", catalog, "--sidecar-name", "photo.xmp")
    assert result.exit_code == 3 and "would be the sidecar of several photos" in result.stderr
    assert (photos / "a.xmp").read_bytes() == before


def test_a_photo_name_that_is_not_utf8_is_tagged_and_exported(tmp_path):
    import os

    photos = tmp_path / "photos"
    odd = os.fsdecode(b"caf\xe9.jpg")
    path = draw_photo(photos / odd, [(0, 40, 50, 60)])
    draw_photo(photos / "b.jpg", [(0, 120, 50, 60)])
    mwg_sidecar(Path(str(path) + ".xmp"), [("Zoé", centre((40, 50, 60), (320, 240)))], (320, 240))
    catalog = tmp_path / "c.sqlite"
    summary = scan(photos, catalog)
    assert summary["tags_imported"] == 1 and people(catalog) == {"Zoé": [odd]}
    result = run_cli("xmp", "--catalog", catalog)
    assert result.exit_code == 0, result.output
    from faceclust.photos import xmp

    assert "Zoé" in xmp.read_xmp(Path(str(path) + ".xmp"))["Xmp.dc.subject"]


def test_a_face_the_user_moved_stays_when_its_tag_changes(tagged):
    tmp, photos, catalog = tagged
    scan(photos, catalog)
    assert run_cli("cluster", "--catalog", catalog, "--min-faces", "1").exit_code == 0
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        a_id = cat.photo_id(str(photos / "a.jpg"))
        [jane_face] = [f for f, (n, _s) in cat.imported_faces().items() if cat.photos_of_faces([f])[f] == a_id]
    from faceclust.people.decisions import new_person

    other = new_person(catalog, [jane_face], "Someone Else").person  # the user's move
    mwg_sidecar(photos / "a.jpg.xmp", [("Jane Smith", centre((35, 45, 70), (320, 240)))], (320, 240))
    assert scan(photos, catalog)["tags_imported"] == 0
    with Catalog(catalog) as cat:
        assert cat.assignments_of([jane_face])[jane_face][0] == other


def test_many_unreadable_sidecars_make_one_warning_once(tmp_path):
    photos = tmp_path / "photos"
    for k in range(7):
        draw_photo(photos / f"p{k}.jpg", [(0, 40 + 10 * k, 50, 60)])
        (photos / f"p{k}.jpg.xmp").write_bytes(b"\x00 not xmp")
    catalog = tmp_path / "c.sqlite"
    summary = scan(photos, catalog)
    notes = [w for w in summary["warnings"] if w.startswith("face tags not read")]
    assert len(notes) == 1 and notes[0].startswith("face tags not read from 7 XMP sources: ")
    assert notes[0].endswith("(and 2 more)") and "p0.jpg.xmp" in notes[0]
    assert summary["errors"] == 0
    assert not [w for w in scan(photos, catalog)["warnings"] if w.startswith("face tags")]  # read once
