"""Walking folders and decoding images safely (no models involved)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import MARKER_COLOURS, draw_photo
from PIL import Image

from faceclust.errors import ImageError, MissingExtraError
from faceclust.photos.decode import decode_image, load_image, max_side_policy
from faceclust.photos.walk import walk_photos


def names(files):
    return sorted(f.path.name for f in files)


def test_walk_finds_images_recursively_and_skips_system_folders(tmp_path):
    draw_photo(tmp_path / "a" / "one.jpg")
    draw_photo(tmp_path / "a" / "b" / "two.PNG")
    draw_photo(tmp_path / "@eaDir" / "one.jpg" / "SYNOPHOTO_THUMB_XL.jpg")
    draw_photo(tmp_path / "#recycle" / "old.jpg")
    draw_photo(tmp_path / ".thumbnails" / "t.jpg")
    draw_photo(tmp_path / ".hidden.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    assert names(walk_photos([tmp_path])) == ["one.jpg", "two.PNG"]


def test_walk_survives_symlink_cycles_and_reports_broken_links(tmp_path):
    draw_photo(tmp_path / "a" / "one.jpg")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "a" / "broken.jpg")
    errors = []
    files = list(walk_photos([tmp_path], errors))
    assert names(files) == ["one.jpg"]
    assert [e.path.name for e in errors] == ["broken.jpg"]


def test_walk_reports_a_missing_root_and_goes_on(tmp_path):
    draw_photo(tmp_path / "ok.jpg")
    errors = []
    files = list(walk_photos([tmp_path / "nope", tmp_path], errors))
    assert names(files) == ["ok.jpg"]
    assert errors and errors[0].path == tmp_path / "nope"


def test_walk_accepts_single_files(tmp_path):
    photo = draw_photo(tmp_path / "x.jpg")
    assert names(walk_photos([photo])) == ["x.jpg"]


def test_walk_handles_odd_names(tmp_path):
    odd = ["späß ☃.jpg", "with\nnewline.jpg", "-dash.jpg", "  spaced .jpg"]
    for name in odd:
        draw_photo(tmp_path / name)
    assert names(walk_photos([tmp_path])) == sorted(odd)


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_decode_reports_sizes_and_scale(tmp_path):
    photo = draw_photo(tmp_path / "x.jpg", size=(800, 600))
    image = load_image(photo, max_side_policy(400))
    assert image.pixels.shape == (300, 400, 3)
    assert (image.original_width, image.original_height) == (800, 600)
    assert image.scale == pytest.approx(0.5)


def test_jpeg_draft_decode_matches_a_full_decode_closely(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 255, (30, 40, 3)), np.ones((40, 40, 1))).astype(np.uint8)
    photo = tmp_path / "big.jpg"
    Image.fromarray(smooth).save(photo, quality=95)
    reduced = load_image(photo, max_side_policy(400)).pixels.astype(float)
    full = np.asarray(Image.open(photo).resize((400, 300), Image.Resampling.BILINEAR), float)
    assert reduced.shape == full.shape
    assert np.abs(reduced - full).mean() < 6.0


def test_exif_orientation_is_applied_and_original_size_is_upright(tmp_path):
    im = Image.new("RGB", (200, 100), (128, 128, 128))
    im.paste(MARKER_COLOURS[0], (0, 0, 50, 50))  # top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90° clockwise
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.pixels.shape == (200, 100, 3)
    assert (image.original_width, image.original_height) == (100, 200)
    # 90° clockwise moves the stored top-left corner to the top-right.
    assert image.pixels[10, 90, 0] > 180 and image.pixels[10, 10, 0] < 160


def test_cmyk_jpeg_decodes_to_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("RGB", (64, 64), (200, 40, 40)).convert("CMYK").save(path, quality=95)
    pixels = load_image(path).pixels
    assert pixels.shape == (64, 64, 3)
    r, g, b = pixels[32, 32].astype(int)
    assert r > 150 and g < 100 and b < 100


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    ramp = (np.linspace(0, 65535, 256).astype(np.uint16)[None, :]).repeat(16, axis=0)
    Image.fromarray(ramp).save(path)
    pixels = load_image(path).pixels
    row = pixels[8, :, 0].astype(int)
    assert row[0] < 5 and row[-1] > 250
    assert abs(row[128] - 128) <= 2  # mid-grey stays mid-grey (clipping would give 255)


def test_gif_first_frame_and_transparent_png(tmp_path):
    frames = [Image.new("P", (32, 32), i) for i in (10, 200)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert load_image(gif).pixels.shape == (32, 32, 3)
    png = tmp_path / "alpha.png"
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(png)
    assert load_image(png).pixels.min() == 255  # transparent shows as white


@pytest.mark.parametrize("content, expected", [
    (b"", "empty file"),
    (b"hello, I am text, not a JPEG\n" * 10, "not an image"),
])
def test_non_images_raise_image_error(tmp_path, content, expected):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=expected):
        load_image(path)


def test_truncated_jpeg_raises_image_error(tmp_path):
    good = draw_photo(tmp_path / "good.jpg", [(0, 10, 10, 40)], size=(640, 480))
    data = _bytes(good)
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated|damaged|decode"):
        load_image(bad)


def test_image_over_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    path = draw_photo(tmp_path / "huge.png", size=(300, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 90,000 px is over twice this
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def test_heic_without_the_extra_names_the_fix(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_heif(name, *args, **kwargs):
        if name == "pillow_heif":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_heif)
    path = tmp_path / "x.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic")
    with pytest.raises(MissingExtraError, match=r"faceclust\[heif\]"):
        load_image(path)


def test_heic_with_the_extra_decodes(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif", reason="the heif extra is not installed")
    pillow_heif.register_heif_opener()
    path = tmp_path / "phone photo.HEIC"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, format="HEIF")
    image = load_image(path)
    assert image.pixels.shape == (48, 64, 3)
    assert image.pixels[24, 32, 0] > 150 and image.pixels[24, 32, 1] < 80


def test_webp_tiff_bmp_avif_decode(tmp_path):
    for ext, fmt in ((".webp", "WEBP"), (".tif", "TIFF"), (".bmp", "BMP"), (".avif", "AVIF")):
        path = draw_photo(tmp_path / f"x{ext}", [(1, 10, 10, 30)], size=(80, 60), fmt=fmt)
        assert load_image(path).pixels.shape == (60, 80, 3), ext


def test_decode_never_writes_to_the_original(tmp_path):
    photo = draw_photo(tmp_path / "x.jpg", [(0, 10, 10, 40)])
    before = (photo.read_bytes(), photo.stat().st_mtime_ns)
    decode_image(photo.read_bytes(), photo, max_side_policy(100))
    load_image(photo)
    assert (photo.read_bytes(), photo.stat().st_mtime_ns) == before


def test_content_hash_identifies_bytes(tmp_path):
    a = draw_photo(tmp_path / "a.png", [(0, 5, 5, 20)])
    b = tmp_path / "b.png"
    b.write_bytes(a.read_bytes())
    c = draw_photo(tmp_path / "c.png", [(1, 5, 5, 20)])
    ha, hb, hc = (load_image(p).content_hash for p in (a, b, c))
    assert ha == hb != hc


def test_a_read_that_stalls_is_given_up_with_a_clear_reason(tmp_path, monkeypatch):
    """A hung network share blocks read() in the kernel; the scan must not wait forever."""
    import threading
    import time

    from faceclust.photos import read as safeio

    photo = draw_photo(tmp_path / "slow.jpg", [(0, 10, 10, 40)])
    release = threading.Event()
    real_read = os.read

    def hung_read(fd, n):
        release.wait(30)
        return real_read(fd, n)

    monkeypatch.setattr(safeio.os, "read", hung_read)
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"no data for 0.3 s \(a slow or unresponsive network share\?\)"):
        safeio.read_photo_bytes(photo, stall_seconds=0.3)
    assert time.monotonic() - started < 5
    release.set()
    monkeypatch.undo()
    assert safeio.read_photo_bytes(photo) == photo.read_bytes()  # a stuck reader never blocks the next


def test_only_regular_files_are_read(tmp_path):
    from faceclust.photos import read as safeio

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # nobody writes: a blocking open would wait forever
    with pytest.raises(ImageError, match="a FIFO"):
        safeio.read_photo_bytes(fifo, stall_seconds=5)
    with pytest.raises(ImageError, match="a folder"):
        safeio.read_photo_bytes(tmp_path, stall_seconds=5)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(ImageError, match="too large"):
        safeio.read_photo_bytes(big, max_bytes=1024)


def test_an_atomic_file_is_whole_or_absent(tmp_path):
    from faceclust.files import atomic_file

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("killed in the middle")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with atomic_file(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with pytest.raises(OSError) as raised:
        with atomic_file(tmp_path / "missing" / "x.bin") as handle:
            pass
    assert raised.value.filename == str(tmp_path / "missing" / "x.bin")  # the target, not the temp file


def test_files_that_are_not_photos_are_counted_by_kind(tmp_path, monkeypatch):
    """A video, a sidecar and a text file are not read, and the summary says so (hidden files
    such as .DS_Store are not counted). A RAW file is read (tests/test_raw.py): a damaged one is
    a file error naming it."""
    import json

    from click.testing import CliRunner

    from faceclust.cli import main
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    root = tmp_path / "photos"
    draw_photo(root / "a.jpg", [(0, 40, 40, 60)])
    for name in ("clip.MP4", "sub/IMG_1.CR2", "a.jpg.xmp", "notes.txt", ".DS_Store"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not a photo")
    args = ["scan", str(root), "--catalog", str(tmp_path / "c.sqlite"), "--detector", "fake"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["skipped"] == {"video": 1, "sidecar": 1, "other": 1}
    assert summary["photos_seen"] == 2 and summary["errors"] == 1
    [(path, message)] = summary["error_samples"]
    assert path.endswith("IMG_1.CR2") and message.startswith("not a RAW file LibRaw can read")
    text = CliRunner().invoke(main, args).stdout
    assert "1 videos, 1 sidecars, 1 other files" in text


def test_capture_dates_come_from_exif_with_its_offset_else_the_file(tmp_path, monkeypatch):
    """DateTimeOriginal with OffsetTimeOriginal is an exact moment; without an offset it is
    local time; a photo without EXIF dates gets its file's time. export and people show them."""
    import json
    from datetime import datetime, timedelta, timezone

    from click.testing import CliRunner
    from PIL import Image

    from faceclust.cli import main
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    root = tmp_path / "photos"
    for name, date, offset in (("a.jpg", "2019:07:14 09:30:00", "+02:00"), ("b.jpg", "2021:01:02 03:04:05", None),
                               ("c.jpg", None, None)):
        draw_photo(root / name, [(0, 40, 40, 60)])
        exif = Image.Exif()
        if date:
            exif.get_ifd(0x8769)[0x9003] = date
            if offset:
                exif.get_ifd(0x8769)[0x9011] = offset
        with Image.open(root / name) as im:
            im.load()
            im.save(root / name, exif=exif.tobytes(), quality=95)
    catalog = tmp_path / "c.sqlite"
    assert CliRunner().invoke(main, ["scan", str(root), "--catalog", str(catalog), "--detector", "fake",
                                     "--quiet"]).exit_code == 0
    rows = CliRunner().invoke(main, ["export", "--catalog", str(catalog), "--format", "jsonl"]).stdout.splitlines()
    taken = {json.loads(r)["photo"].rsplit("/", 1)[1]: datetime.fromisoformat(json.loads(r)["taken_at"]) for r in rows}
    assert taken["a.jpg"] == datetime(2019, 7, 14, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    assert taken["b.jpg"].replace(tzinfo=None) == datetime(2021, 1, 2, 3, 4, 5)  # local time
    assert abs(taken["c.jpg"].timestamp() - (root / "c.jpg").stat().st_mtime) < 1.5
    assert CliRunner().invoke(main, ["cluster", "--catalog", str(catalog), "--quiet"]).exit_code == 0
    people = json.loads(CliRunner().invoke(main, ["people", "--catalog", str(catalog), "--json"]).stdout)
    assert len(people) == 1
    assert datetime.fromisoformat(people[0]["first_seen"]) == taken["a.jpg"]
    assert datetime.fromisoformat(people[0]["last_seen"]) == max(taken.values())


def test_photos_catalogued_before_dates_get_theirs_on_the_next_scan(tmp_path, monkeypatch):
    import sqlite3
    from datetime import datetime

    from click.testing import CliRunner
    from PIL import Image

    from faceclust.catalog import Catalog
    from faceclust.cli import main
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    root, other = tmp_path / "photos", tmp_path / "elsewhere"
    for folder in (root, other):
        draw_photo(folder / "a.jpg", [(0, 40, 40, 60)])
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = "2018:05:06 07:08:09"
        with Image.open(folder / "a.jpg") as im:
            im.load()
            im.save(folder / "a.jpg", exif=exif.tobytes(), quality=95)
    catalog = tmp_path / "c.sqlite"
    args = ["--catalog", str(catalog), "--detector", "fake", "--quiet"]
    assert CliRunner().invoke(main, ["scan", str(root), str(other), *args]).exit_code == 0
    db = sqlite3.connect(catalog)
    db.execute("UPDATE photos SET taken_at = NULL")  # as a catalog from before dates were stored
    db.commit()
    db.close()
    assert CliRunner().invoke(main, ["scan", str(root), *args]).exit_code == 0  # one root only
    with Catalog(catalog) as cat:
        dates = cat.photo_dates()
    assert list(dates) == [str(root / "a.jpg")]  # the photo not walked keeps no date, not a wrong one
    assert datetime.fromtimestamp(dates[str(root / "a.jpg")]) == datetime(2018, 5, 6, 7, 8, 9)


def test_a_head_read_returns_only_the_first_bytes(tmp_path):
    from faceclust.photos.read import read_photo_bytes

    path = tmp_path / "big.jpg"
    data = os.urandom(300_000)
    path.write_bytes(data)
    assert read_photo_bytes(path, head=131072) == data[:131072]
    assert read_photo_bytes(path, head=131072, max_bytes=1000) == data[:131072]  # the size limit is for whole reads
    small = tmp_path / "small.jpg"
    small.write_bytes(b"abc")
    assert read_photo_bytes(small, head=131072) == b"abc"


def test_copies_in_the_same_scan_take_the_faces_of_the_first_instead_of_being_detected(tmp_path, monkeypatch):
    """A backup folder of the same photos, scanned with the originals in one scan: the copies
    are recognised by content once their original is written, and get its faces."""
    import json
    import shutil

    from click.testing import CliRunner
    from conftest import FakeDetector

    from faceclust.cli import main
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    root = tmp_path / "photos"
    for k in range(3):
        draw_photo(root / "2024" / f"p{k}.jpg", [(k % 3, 40 + 20 * k, 40, 60)])
    (root / "zz-backup").mkdir()
    for k in range(3):
        shutil.copy(root / "2024" / f"p{k}.jpg", root / "zz-backup" / f"p{k}.jpg")  # walked after
    before = FakeDetector.calls
    args = ["scan", str(root), "--catalog", str(tmp_path / "c.sqlite"), "--detector", "fake", "--batch", "1",
            "--json"]
    summary = json.loads(CliRunner().invoke(main, args).stdout)
    assert summary["new"] == 3 and summary["copied"] == 3 and summary["faces_found"] == 3
    assert FakeDetector.calls - before == 3
    from faceclust.catalog import Catalog

    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.db.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 6


def test_a_copy_of_a_photo_edited_in_the_same_scan_gets_its_own_faces(tmp_path, monkeypatch):
    """a.jpg is catalogued; then edited (other faces) while a copy of its old version is added
    (walked after it): the copy must not take the edited photo's faces."""
    import json
    import os
    import shutil

    from click.testing import CliRunner

    from faceclust.catalog import Catalog
    from faceclust.cli import main
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    root = tmp_path / "photos"
    draw_photo(root / "a.jpg", [(0, 40, 40, 60)])
    args = ["scan", str(root), "--catalog", str(tmp_path / "c.sqlite"), "--detector", "fake", "--batch", "1", "--json"]
    assert CliRunner().invoke(main, args).exit_code == 0
    shutil.copy(root / "a.jpg", tmp_path / "old.jpg")
    draw_photo(root / "a.jpg", [(1, 100, 50, 50), (2, 200, 100, 40)])  # edited in place
    os.utime(root / "a.jpg", ns=(1, 2_000_000_000))
    shutil.copy(tmp_path / "old.jpg", root / "b-copy-of-old.jpg")
    summary = json.loads(CliRunner().invoke(main, args).stdout)
    assert summary["changed"] == 1
    with Catalog(tmp_path / "c.sqlite") as cat:
        boxes = {os.path.basename(p): sorted(tuple(b) for b in boxes)
                 for p, boxes in _boxes_by_photo(cat).items()}
    [copy_box] = boxes["b-copy-of-old.jpg"]  # the old photo's one face, detected in the copy
    assert copy_box == pytest.approx((40.0, 40.0, 100.0, 100.0), abs=1.5)
    assert len(boxes["a.jpg"]) == 2


def _boxes_by_photo(cat) -> dict:
    out: dict = {}
    for path, *box in cat.db.execute("SELECT p.path, f.left, f.top, f.right, f.bottom FROM faces f "
                                     "JOIN photos p ON p.id = f.photo_id"):
        out.setdefault(path, []).append(box)
    return out
