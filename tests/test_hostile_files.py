"""A corpus of hostile files, generated here, scanned by the real command line.

Each file is named after its kind and is decided up front to be *good* (a photo Pillow can
decode, however odd: it must end up catalogued as 'ok', with its face if one was drawn) or
*bad* (it must be recorded with a reason: a photos row in 'error', or, for what the folder
walk itself refuses -- FIFOs, broken and looping symlinks -- a row of the errors table).
Good photos are interleaved with the bad ones in the same folders, so a bad file that
derails a batch shows up as a good photo missing from the catalog.

The scan runs in its own process with a timeout: a hang fails the test instead of pytest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MARKER_COLOURS, draw_photo
from PIL import Image, ImageDraw

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not hasattr(os, "symlink"),
                                reason="the corpus needs POSIX FIFOs and symbolic links")

FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"
DETECT_ARGS = ["--detector", "fake", "--min-face", "20"]
CLI_TIMEOUT = 120
SIZE = (320, 240)
SIDE = 40
BOX_TOLERANCE = 3  # lossy formats move a square's edge by a pixel or so

DECODE_FAILURE = r"truncat|damaged|cannot decode|not an image"


@dataclass
class Expect:
    kind: str
    good: bool
    faces: tuple = ()  # boxes (left, top, right, bottom) a good photo must have, in its pixels
    size: tuple | None = None  # (width, height) catalogued for a good photo, orientation applied
    reason: str | None = None  # regex the recorded reason of a bad file must match
    walk: bool = False  # refused by the walk: recorded in the errors table, never in photos


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.expect: dict[str, Expect] = {}
        self.not_photos: list[str] = []  # neither photos nor errors (a folder named x.jpg)
        self._faces = 0

    def path(self, rel: str | bytes) -> str:
        """The catalog's spelling of a path: os.path.abspath of the root joined with the name
        (a non-UTF-8 name arrives as surrogate escapes, exactly as os.fsdecode gives it)."""
        if isinstance(rel, bytes):
            return os.fsdecode(os.path.join(os.fsencode(self.root), rel))
        return os.path.join(self.root, rel)

    def next_face(self) -> tuple[int, int, int, int]:
        """A face at a new place for every photo: no two good photos have the same bytes, so
        none is catalogued as a copy of another."""
        i = self._faces
        self._faces += 1
        x = 8 + (i * 23) % (SIZE[0] - SIDE - 16)
        y = 8 + (i * 37) % (SIZE[1] - SIDE - 16)
        return (i % len(MARKER_COLOURS), x, y, SIDE)

    def write(self, rel: str | bytes, data: bytes) -> str:
        path = self.path(rel)
        os.makedirs(os.path.dirname(os.fsencode(path)), exist_ok=True)
        with open(os.fsencode(path), "wb") as handle:
            handle.write(data)
        return path

    def good(self, rel, data: bytes, kind: str, faces=(), size=SIZE) -> str:
        path = self.write(rel, data)
        self.expect[path] = Expect(kind, True, tuple(box(f) for f in faces), size)
        return path

    def bad(self, rel, data: bytes, kind: str, reason: str) -> str:
        path = self.write(rel, data)
        self.expect[path] = Expect(kind, False, reason=reason)
        return path

    def by_pillow(self, rel, data: bytes, kind: str, faces) -> None:
        """A file whose fate is what plain Pillow (LOAD_TRUNCATED_IMAGES off, as faceclust
        uses it) makes of it: if Pillow decodes every pixel, the photo is good, if not, bad.
        For a JPEG missing only its EOI marker or a PNG missing only IEND this differs
        between Pillow versions and neither answer is wrong; faceclust must agree with it."""
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
            decodes = True
        except Exception:  # noqa: BLE001 - any failure means "does not decode"
            decodes = False
        if decodes:
            self.good(rel, data, kind + " (Pillow decodes it: good)", faces)
        else:
            self.bad(rel, data, kind + " (Pillow refuses it: bad)", DECODE_FAILURE)

    def walk_error(self, path: str, kind: str, reason: str) -> None:
        self.expect[path] = Expect(kind, False, reason=reason, walk=True)

    def of(self, good: bool, walk: bool | None = None) -> dict[str, Expect]:
        return {p: e for p, e in self.expect.items()
                if e.good == good and (walk is None or e.walk == walk)}


def box(face) -> tuple[int, int, int, int]:
    _, x, y, side = face
    return (x, y, x + side, y + side)


def picture(faces=(), size=SIZE, mode="RGB") -> Image.Image:
    im = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(im)
    for colour, x, y, side in faces:
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=MARKER_COLOURS[colour])
    return im if mode == "RGB" else im.convert(mode)


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **options)
    return out.getvalue()


def jpeg(face, **options) -> bytes:
    return encode(picture([face]), "JPEG", **{"quality": 95, **options})


def png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def png_bomb(width: int, height: int) -> bytes:
    """A real 1-bit PNG of width x height zero pixels: ~100 KB on disk for 900 Mpx."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def with_jpeg_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """``data`` (a JPEG) with one more APPn segment right after SOI."""
    return data[:2] + struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload + data[2:]


def with_png_chunk_after_ihdr(png: bytes, tag: bytes, data: bytes) -> bytes:
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + png_chunk(tag, data) + png[end_of_ihdr:]


def exif_with_one_entry(entry: bytes) -> bytes:
    """An APP1 EXIF payload: little-endian TIFF header, IFD0 holding ``entry`` alone."""
    return b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00" + entry


def build_corpus(root: Path) -> Corpus:
    c = Corpus(root)
    a, b = "a", "b"

    # Plain good photos, interleaved with the hostile ones in every folder.
    for rel, fmt in ((f"{a}/good_plain_1.jpg", None), (f"{a}/good_plain_2.png", None),
                     (f"{b}/good_plain_3.jpg", None), (f"{b}/good_plain_4.webp", "WEBP")):
        face = c.next_face()
        path = draw_photo(Path(c.path(rel)), [face], fmt=fmt, **({"lossless": True} if fmt else {}))
        c.expect[str(path)] = Expect("plain good photo", True, (box(face),), SIZE)

    # -- truncated and non-image files: bad ------------------------------------------------
    source = jpeg(c.next_face(), quality=90)
    sos = source.index(b"\xff\xda")
    after_sos_header = sos + 2 + struct.unpack(">H", source[sos + 2:sos + 4])[0]
    for rel, cut in (("truncated_jpeg_2_bytes_soi_only.jpg", 2),
                     ("truncated_jpeg_10_bytes.jpg", 10),
                     ("truncated_jpeg_headers_only.jpg", after_sos_header),
                     ("truncated_jpeg_half.jpg", len(source) // 2),
                     ("truncated_jpeg_90_percent.jpg", len(source) * 9 // 10)):
        c.bad(f"{a}/{rel}", source[:cut], f"JPEG cut at {cut} of {len(source)} bytes",
              DECODE_FAILURE)
    face = c.next_face()
    c.by_pillow(f"{b}/truncated_jpeg_missing_eoi.jpg", jpeg(face, quality=90)[:-2],
                "JPEG without its last 2 bytes (EOI)", [face])
    png = encode(picture([c.next_face()]), "PNG")
    c.bad(f"{b}/truncated_png_half.png", png[:len(png) // 2], "PNG cut in half", DECODE_FAILURE)
    face = c.next_face()
    c.by_pillow(f"{a}/truncated_png_missing_iend.png", encode(picture([face]), "PNG")[:-12],
                "PNG without its IEND chunk", [face])
    c.bad(f"{b}/zero_byte.jpg", b"", "zero-byte file", r"empty|0 bytes")
    c.bad(f"{a}/text_named_as.jpg", b"Shopping list:\n- milk\n- eggs\n" * 20,
          "text named .jpg", r"not an image")
    c.bad(f"{b}/html_named_as.png",
          b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
          b"<body><h1>Not Found</h1></body></html>\n", "HTML named .png", r"not an image")
    c.bad(f"{a}/decompression_bomb_30000x30000.png", png_bomb(30000, 30000),
          "PNG decompression bomb (900 Mpx, 1-bit, ~100 KB)", r"too large")
    source = jpeg(c.next_face())
    sof = source.index(b"\xff\xc0")
    c.bad(f"{b}/decompression_bomb_65000x65000.jpg",
          source[:sof + 5] + struct.pack(">HH", 65000, 65000) + source[sof + 9:],
          "JPEG declaring 65000x65000 (4.2 Gpx)", r"too large")

    # -- odd but decodable: good -----------------------------------------------------------
    face = c.next_face()
    c.good(f"{a}/cmyk.jpg", encode(picture([face], mode="CMYK"), "JPEG", quality=95),
           "CMYK JPEG", [face])
    face = c.next_face()
    c.good(f"{b}/progressive.jpg", jpeg(face, quality=90, progressive=True),
           "progressive JPEG", [face])
    ramp = Image.new("I;16", (96, 64))
    ramp.putdata([(x * 65535) // 95 for _ in range(64) for x in range(96)])
    c.good(f"{a}/png_16bit_grey.png", encode(ramp, "PNG"), "16-bit greyscale PNG", size=(96, 64))
    face = c.next_face()
    pal = Image.new("P", SIZE, 0)
    pal.putpalette([128, 128, 128, *MARKER_COLOURS[face[0]], 90, 90, 90])
    draw = ImageDraw.Draw(pal)
    draw.rectangle([face[1], face[2], face[1] + SIDE - 1, face[2] + SIDE - 1], fill=1)
    draw.rectangle([SIZE[0] - 30, SIZE[1] - 30, SIZE[0] - 1, SIZE[1] - 1], fill=2)
    c.good(f"{b}/palette_with_alpha.png", encode(pal, "PNG", transparency=bytes([0, 255, 128])),
           "palette PNG with per-entry alpha (tRNS)", [face])
    la = Image.new("LA", (64, 48))
    la.putdata([(x * 4, y * 5) for y in range(48) for x in range(64)])
    c.good(f"{a}/la_grey_alpha.png", encode(la, "PNG"), "LA (grey + alpha) PNG", size=(64, 48))
    for rel, fmt, options in ((f"{b}/animated.gif", "GIF", {}),
                              (f"{a}/animated.webp", "WEBP", {"lossless": True})):
        first, second = c.next_face(), c.next_face()
        c.good(rel, encode(picture([first]), fmt, save_all=True, append_images=[picture([second])],
                           duration=100, loop=0, **options),
               f"animated {fmt}: the first frame's face, not the second's", [first])
    c.good(f"{b}/tiny_1x1.png", encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"),
           "1x1 pixel", size=(1, 1))
    c.good(f"{a}/long_thin_20000x10.png", encode(Image.new("RGB", (20000, 10), (128,) * 3), "PNG"),
           "20000x10 (long and thin)", size=(20000, 10))
    for orientation in (0, 9, 65535):
        exif = Image.Exif()
        exif[0x0112] = orientation
        face = c.next_face()
        c.good(f"{b}/exif_orientation_{orientation}.jpg", jpeg(face, exif=exif),
               f"EXIF orientation {orientation} (invalid: no rotation)", [face])
    face = c.next_face()
    c.good(f"{a}/exif_corrupt_garbage.jpg",
           with_jpeg_segment(jpeg(face), 0xE1, b"Exif\x00\x00" + bytes(range(256)) * 2),
           "EXIF block of garbage", [face])
    # An orientation entry with 2**31-1 values, pointing past the end of the block.
    face = c.next_face()
    c.good(f"{b}/exif_corrupt_bad_offsets.jpg",
           with_jpeg_segment(jpeg(face), 0xE1, exif_with_one_entry(
               b"\x12\x01\x03\x00\xff\xff\xff\x7f\x00\x00\x00\x00")),
           "EXIF with impossible counts and offsets", [face])
    # Orientation tags Pillow parses but whose value is no integer: reading them raises.
    for rel, kind, entry in (
            ("exif_orientation_ascii.jpg", "EXIF orientation stored as the text 'abc'",
             b"\x12\x01\x02\x00\x04\x00\x00\x00abc\x00\x00\x00\x00\x00"),
            ("exif_orientation_rational_1_over_0.jpg", "EXIF orientation stored as 1/0",
             (b"\x12\x01\x05\x00\x01\x00\x00\x00\x1a\x00\x00\x00\x00\x00\x00\x00"
              b"\x01\x00\x00\x00\x00\x00\x00\x00"))):
        face = c.next_face()
        c.good(f"{a}/{rel}", with_jpeg_segment(jpeg(face), 0xE1, exif_with_one_entry(entry)),
               kind, [face])
    face = c.next_face()
    exif = Image.Exif()
    exif[0x9286] = b"ASCII\x00\x00\x00" + b"x" * 2_000_000
    c.good(f"{a}/exif_huge_2mb.png", encode(picture([face]), "PNG", exif=exif),
           "2 MB EXIF (PNG eXIf)", [face])
    face = c.next_face()
    c.good(f"{b}/icc_huge_2mb.jpg", jpeg(face, icc_profile=os.urandom(2_000_000)),
           "2 MB ICC profile of random bytes", [face])
    face = c.next_face()
    c.good(f"{a}/icc_corrupt.png",
           with_png_chunk_after_ihdr(encode(picture([face]), "PNG"), b"iCCP",
                                     b"broken\x00\x00not a zlib stream"),
           "ICC profile that does not decompress", [face])
    first, second = c.next_face(), c.next_face()
    c.good(f"{b}/multipage.tif",
           encode(picture([first]), "TIFF", save_all=True, append_images=[picture([second])]),
           "2-page TIFF: the first page", [first])

    # -- names: good -----------------------------------------------------------------------
    long_name = "name_250_bytes_" + "x" * (250 - len("name_250_bytes_") - len(".jpg")) + ".jpg"
    assert len(long_name.encode()) == 250
    for rel, kind in ((f"{a}/{long_name}", "250-byte name"),
                      (f"{b}/name_with\nnewline.jpg", "name with a newline"),
                      (f"{a}/-leading_dash.jpg", "name with a leading dash")):
        face = c.next_face()
        c.good(rel, jpeg(face), kind, [face])
    face = c.next_face()
    c.good(b"b/latin1_caf\xe9.jpg", jpeg(face), "non-UTF-8 name", [face])
    face = c.next_face()
    c.good(f"{a}/folder_named_like_a_photo.jpg/inside_a_folder_named_x.jpg", jpeg(face),
           "photo inside a folder named x.jpg", [face])
    c.not_photos.append(c.path(f"{a}/folder_named_like_a_photo.jpg"))

    try:  # the heif extra is optional for faceclust, so is this kind
        import pillow_heif
    except ImportError:
        pass
    else:
        pillow_heif.register_heif_opener()
        face = c.next_face()
        c.good(f"{b}/real_heic.heic", encode(picture([face]), "HEIF", quality=95),
               "real HEIC", [face])

    # -- what the walk must refuse without opening: bad ------------------------------------
    fifo = c.path(f"{a}/fifo_named_as.jpg")
    os.mkfifo(fifo)
    c.walk_error(fifo, "FIFO named .jpg", r"FIFO")
    dangling = c.path(f"{b}/dangling_symlink.jpg")
    os.symlink(c.path(f"{b}/no_such_photo.jpg"), dangling)
    c.walk_error(dangling, "dangling symlink", r"broken symbolic link|no such file")
    loop_a, loop_b = c.path(f"{a}/symlink_loop_a.jpg"), c.path(f"{a}/symlink_loop_b.jpg")
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    c.walk_error(loop_a, "symlink loop (a -> b)", r"loop")
    c.walk_error(loop_b, "symlink loop (b -> a)", r"loop")
    return c


def snapshot(root: Path) -> dict:
    """Every entry under root by its kind; regular files with their sha256 and mtime."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    out[path] = ("file", hashlib.sha256(handle.read()).hexdigest(), st.st_mtime_ns)
            else:
                out[path] = (stat.S_IFMT(st.st_mode),)
    return out


def run_cli(cwd: Path, *args) -> tuple[int, str, str]:
    env = dict(os.environ)
    env.pop("FACECLUST_DEBUG", None)  # it lets internal errors through as tracebacks on purpose
    try:
        proc = subprocess.run([sys.executable, str(FAKE_CLI), *map(str, args)], cwd=cwd, env=env,
                              capture_output=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"").decode("utf-8", "replace")[-3000:]
        pytest.fail(f"faceclust {args[0]} did not finish in {CLI_TIMEOUT} s (a hang); "
                    f"stderr so far:\n{stderr}")
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def read_catalog(path: Path):
    db = sqlite3.connect(str(path))
    db.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    try:
        photos = {p: (s, e, w, h) for p, s, e, w, h in
                  db.execute("SELECT path, status, error, width, height FROM photos")}
        errors = defaultdict(list)
        for p, message in db.execute("SELECT path, message FROM errors"):
            errors[p].append(message)
        faces = defaultdict(list)
        for p, *ltrb in db.execute("SELECT p.path, f.left, f.top, f.right, f.bottom "
                                   "FROM faces f JOIN photos p ON p.id = f.photo_id"):
            faces[p].append(tuple(ltrb))
    finally:
        db.close()
    return photos, errors, faces


def shown(path: str) -> str:
    return repr(os.path.relpath(path, start=os.path.dirname(os.path.dirname(path))))


def same_boxes(found, wanted) -> bool:
    return len(found) == len(wanted) and all(
        any(all(abs(f - w) <= BOX_TOLERANCE for f, w in zip(fb, wb)) for fb in found)
        for wb in wanted)


def outputs(out: str, err: str) -> str:
    return f"\nstdout: {out[-2000:]}\nstderr: {err[-3000:]}"


@pytest.fixture(scope="module")
def first_scan(tmp_path_factory):
    """The corpus, its state before any scan, and the first scan of it. Shared by the tests of
    this module: the rerun test needs exactly this first scan behind it."""
    base = tmp_path_factory.mktemp("hostile")
    corpus = build_corpus(base / "photos")
    before = snapshot(corpus.root)
    catalog = base / "catalog.sqlite"
    result = run_cli(base, "scan", corpus.root, "--catalog", catalog, *DETECT_ARGS, "--json")
    return corpus, before, catalog, base, result


def test_the_corpus_is_what_the_issue_asks_for(first_scan):
    corpus = first_scan[0]
    kinds = {e.kind for e in corpus.expect.values()}
    assert len(kinds) >= 25, sorted(kinds)
    assert len(corpus.of(good=True)) >= 25 and len(corpus.of(good=False)) >= 12


def test_scan_of_hostile_files_finishes_and_records_every_file(first_scan):
    corpus, _, catalog, base, (code, out, err) = first_scan
    good, bad = corpus.of(good=True), corpus.of(good=False)
    bad_photos, bad_walk = corpus.of(good=False, walk=False), corpus.of(good=False, walk=True)

    assert "Traceback" not in out and "Traceback" not in err, outputs(out, err)
    # Pillow's warnings about odd tags name its own source lines: not for a user's eyes.
    assert "Warning" not in err and "site-packages" not in err, outputs(out, err)
    assert code == 3, f"exit code {code} (3: finished, some files unreadable)" + outputs(out, err)
    summary = json.loads(out)

    photos, errors, faces = read_catalog(catalog)
    problems = []
    for path, e in sorted(good.items()):
        row = photos.get(path)
        where = f"good {e.kind} {shown(path)}"
        if row is None or row[0] != "ok":
            problems.append(f"{where}: expected ok, got {row}; errors: {errors.get(path)}")
            continue
        if (row[2], row[3]) != e.size:
            problems.append(f"{where}: size {(row[2], row[3])}, expected {e.size}")
        if not same_boxes(faces.get(path, []), e.faces):
            problems.append(f"{where}: faces {faces.get(path, [])}, expected {list(e.faces)}")
    for path, e in sorted(bad_photos.items()):
        row = photos.get(path)
        if (row is None or row[0] != "error" or not row[1]
                or not re.search(e.reason, row[1], re.IGNORECASE)):
            problems.append(f"bad {e.kind} {shown(path)}: expected status 'error' with a reason "
                            f"matching /{e.reason}/, got {row}")
    for path, e in sorted(bad_walk.items()):
        if path in photos:
            problems.append(f"bad {e.kind} {shown(path)}: refused by the walk, yet has a photos "
                            f"row {photos[path]}")
        if not any(m and re.search(e.reason, m, re.IGNORECASE) for m in errors.get(path, [])):
            problems.append(f"bad {e.kind} {shown(path)}: no errors row matching /{e.reason}/ "
                            f"(got {errors.get(path)})")
    for path in corpus.not_photos:
        if path in photos or path in errors:
            problems.append(f"folder {shown(path)} was taken for a file: {photos.get(path)} "
                            f"{errors.get(path)}")
    extra = set(photos) - set(good) - set(bad_photos)
    if extra:
        problems.append(f"catalogued paths not in the corpus: {sorted(map(shown, extra))}")
    assert not problems, "\n".join(problems)

    assert summary["photos_seen"] == len(good) + len(bad_photos)
    assert summary["new"] == len(good)
    assert summary["errors"] == len(bad) and summary["known_errors"] == 0
    assert summary["faces_found"] == sum(len(e.faces) for e in good.values())
    assert summary["photos_with_faces"] == sum(1 for e in good.values() if e.faces)
    assert 0 < len(summary["error_samples"]) <= 20
    assert all(path in bad and message for path, message in summary["error_samples"])
    assert f"{len(bad)} files could not be read" in err

    code, out, err = run_cli(base, "status", "--catalog", catalog, "--json")
    assert code == 0 and "Traceback" not in out + err, outputs(out, err)
    status = json.loads(out)
    assert status["photos"] == len(good)
    assert status["photos_with_errors"] == len(bad_photos)
    assert 0 < len(status["files_with_errors"]) <= 20
    assert all(f["path"] in bad_photos and f["error"] for f in status["files_with_errors"])


def test_rerun_counts_the_same_failures_as_known_and_never_touches_originals(first_scan):
    corpus, before, catalog, base, _ = first_scan
    code, out, err = run_cli(base, "scan", corpus.root, "--catalog", catalog, *DETECT_ARGS,
                             "--json")
    assert "Traceback" not in out and "Traceback" not in err, outputs(out, err)
    assert code == 0, f"exit code {code}: nothing new failed, so 0" + outputs(out, err)
    summary = json.loads(out)
    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["known_errors"] == len(corpus.of(good=False))
    assert summary["new"] == 0 and summary["unchanged"] == len(corpus.of(good=True))
    # Nothing written, renamed, touched or left behind in the photo folders by either scan.
    assert snapshot(corpus.root) == before


def test_a_file_swapped_for_a_fifo_or_deleted_after_the_walk(tmp_path, monkeypatch):
    from faceclust.faces.detect import DetectOptions
    from faceclust.scan import walker as pipeline
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    root = tmp_path / "photos"
    photos = [draw_photo(root / f"sub{i % 2}" / f"photo_{i}.jpg", [(i % 4, 20 + 25 * i, 30, SIDE)],
                         quality=95) for i in range(6)]
    swapped, deleted = photos[1], photos[4]
    real_walk = pipeline.walk_photos
    walked = []

    def walk_then_swap(roots, errors=None, **options):
        # Only once the walk has seen every file as a regular one: the race the reader
        # must survive (a FIFO opened blocking waits forever for a writer).
        walked.extend(real_walk(roots, errors, **options))
        os.unlink(swapped)
        os.mkfifo(swapped)
        os.unlink(deleted)
        yield from walked

    monkeypatch.setattr(pipeline, "walk_photos", walk_then_swap)
    outcome = {}

    def scan():
        try:
            outcome["summary"] = scan_library(
                tmp_path / "c.sqlite", [root],
                ScanOptions(detect=DetectOptions(detector="fake", min_face=20), embedder="fake"))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            outcome["error"] = exc

    worker = threading.Thread(target=scan, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the scan hung on a file swapped for a FIFO or deleted"
    assert "error" not in outcome, repr(outcome.get("error"))
    assert sorted(str(f.path) for f in walked) == sorted(map(str, photos))

    rows, _, faces = read_catalog(tmp_path / "c.sqlite")
    status, reason = rows[str(swapped)][:2]
    assert status == "error" and reason and "FIFO" in reason, rows[str(swapped)]
    if str(deleted) in rows:
        status, reason = rows[str(deleted)][:2]
        assert status == "error" and reason, rows[str(deleted)]
    for photo in photos:
        if photo not in (swapped, deleted):
            assert rows[str(photo)][0] == "ok", (photo, rows.get(str(photo)))
            assert len(faces[str(photo)]) == 1
    assert outcome["summary"].errors == 1 + (str(deleted) in rows)
