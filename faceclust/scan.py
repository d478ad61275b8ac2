"""Walk photo folders and open images safely.

No models and no SQL here: this module turns paths into pixels. Originals are only ever read.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from faceclust.errors import ImageError, MissingExtraError
from faceclust.safeio import describe_os_error, file_kind, read_photo_bytes

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif",
     ".heic", ".heif", ".avif"}
)
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})

# Folders that NAS boxes, photo managers and operating systems fill with thumbnails,
# previews and trash: scanning them would catalog every face several times.
SKIPPED_DIRS = frozenset(
    {"@eadir", "#recycle", "#snapshot", "@recycle", "@tmp", "@sharebin", "$recycle.bin",
     ".thumbnails", ".thumbs", "thumbs", ".trash", ".trashes", "lost+found",
     ".@__thumb", "@__thumb", ".recycle", ".cache", "system volume information"}
)


# faceclust's own album folders hold links to photos already scanned: never scan them again.
# Any of its files marks one (the lock and journal come first, before any photo is placed).
ALBUM_MARKER = ".faceclust-albums.json"
ALBUM_FILES = frozenset({ALBUM_MARKER, ".faceclust-albums.journal", ".faceclust-albums.lock"})


@dataclass(frozen=True)
class PhotoFile:
    """A candidate image found on disk. ``same_as``: an earlier path of this walk to the very
    same file (a hard link, a symlinked file, a folder reached twice)."""

    path: Path
    size: int
    mtime_ns: int
    same_as: Path | None = None


@dataclass
class LoadedImage:
    """Pixels at working resolution, plus how they relate to the original.

    ``pixels`` is uint8 (H, W, 3) RGB, orientation-corrected. ``scale`` is working pixels per
    original (orientation-corrected) pixel: divide working coordinates by it to report
    coordinates in the original.
    """

    pixels: np.ndarray
    original_width: int
    original_height: int
    scale: float
    content_hash: str


@dataclass(frozen=True)
class WalkError:
    path: Path
    message: str


def is_skipped_dir(name: str) -> bool:
    return name.startswith(".") or name.lower() in SKIPPED_DIRS


def walk_photos(roots: Iterable[Path], errors: list[WalkError] | None = None,
                on_progress: Callable[[Path], None] | None = None) -> Iterator[PhotoFile]:
    """Yield image files under ``roots`` recursively, in a stable order.

    Hidden and NAS system folders are skipped. Symlinked folders are followed once: a folder
    already visited (same device and inode) is not entered again, so symlink cycles end.
    Unreadable folders are reported through ``errors`` and skipped. ``on_progress(path)`` is
    called before each folder is listed and each entry looked at (a watchdog's heartbeat).
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: dict[tuple[int, int], Path] = {}
    tick = on_progress or (lambda path: None)

    def once(path: Path, st: os.stat_result) -> PhotoFile:
        first = seen_files.setdefault((st.st_dev, st.st_ino), path)
        return PhotoFile(path, st.st_size, st.st_mtime_ns, None if first == path else first)

    for root in roots:
        root = Path(root)
        tick(root)
        try:
            st = root.stat()
        except OSError as exc:
            _report(errors, root, _stat_error(root, exc))
            continue
        if stat.S_ISREG(st.st_mode):
            if root.suffix.lower() in IMAGE_EXTENSIONS:
                yield once(root, st)
            continue
        if not stat.S_ISDIR(st.st_mode):
            _report(errors, root, f"{file_kind(st.st_mode)}, not a photo file; skipped")
            continue
        yield from _walk_dir(root, seen_dirs, errors, tick, once)


def _walk_dir(top: Path, seen: set[tuple[int, int]], errors: list[WalkError] | None,
              tick: Callable[[Path], None], once: Callable) -> Iterator[PhotoFile]:
    stack = [top]
    while stack:
        folder = stack.pop()
        tick(folder)
        try:
            st = folder.stat()
        except OSError as exc:
            _report(errors, folder, f"cannot read folder: {exc.strerror or exc}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            _report(errors, folder, f"cannot list folder: {exc.strerror or exc}")
            continue
        if any(entry.name in ALBUM_FILES for entry in entries):
            continue
        subdirs = []
        for entry in entries:
            tick(folder)
            try:
                if entry.is_dir(follow_symlinks=True):
                    if not is_skipped_dir(entry.name):
                        subdirs.append(Path(entry.path))
                    continue
                if entry.name.startswith(".") or Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:
                _report(errors, Path(entry.path), _stat_error(Path(entry.path), exc))
                continue
            if stat.S_ISREG(est.st_mode):
                yield once(Path(entry.path), est)
            else:  # a FIFO, device or socket named like a photo: opening it could block
                _report(errors, Path(entry.path), f"{file_kind(est.st_mode)}, not a photo file; skipped")
        # Reversed so that popping from the stack visits folders in name order.
        stack.extend(reversed(subdirs))


def _stat_error(path: Path, exc: OSError) -> str:
    import errno

    if exc.errno == errno.ENOENT and os.path.islink(path):
        return "broken symbolic link (what it points to is missing); skipped"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop; skipped"
    return describe_os_error(exc)


def _report(errors: list[WalkError] | None, path: Path, message: str) -> None:
    if errors is not None:
        errors.append(WalkError(path, message))


def content_hash(data: bytes) -> str:
    """Identity of a file's bytes: recognises moved, renamed and copied photos."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def read_file(path: Path, stall_seconds: float | None = None) -> bytes:
    """The bytes of a photo file: regular files only, never blocking forever (see
    :func:`faceclust.safeio.read_photo_bytes`). Raises :class:`ImageError`."""
    return read_photo_bytes(path, stall_seconds=stall_seconds)


_HEIF_REGISTERED = False


def ensure_opener(path: Path) -> None:
    """Make sure Pillow can open ``path``'s format: the optional HEIC/HEIF opener is registered
    once per process, for every command that opens photos (scan, report, dedupe, verify...).
    Raises :class:`MissingExtraError` naming the extra to install."""
    global _HEIF_REGISTERED
    if Path(path).suffix.lower() not in HEIF_EXTENSIONS:
        return
    try:
        import pillow_heif
    except ImportError:
        raise MissingExtraError(
            "HEIC/HEIF photos need the optional extra: pip install 'faceclust[heif]'"
        ) from None
    if not _HEIF_REGISTERED:
        pillow_heif.register_heif_opener()
        _HEIF_REGISTERED = True


ScalePolicy = Callable[[int, int], float]


def max_side_policy(max_side: int | None) -> ScalePolicy:
    """Working scale that caps the long side at ``max_side`` (never enlarges)."""

    def policy(width: int, height: int) -> float:
        if not max_side or max(width, height) <= max_side:
            return 1.0
        return max_side / max(width, height)

    return policy


def decode_image(data: bytes, path: Path, scale_for: ScalePolicy | None = None) -> LoadedImage:
    """Decode ``data`` (the bytes of ``path``) to RGB at a working resolution.

    EXIF orientation is applied. ``scale_for(width, height)`` gives the working scale (<= 1)
    from the orientation-corrected original size; for JPEG the decoder itself does most of
    the reduction (``Image.draft``), several times cheaper than a full decode.
    Every failure becomes an :class:`ImageError`.
    """
    from PIL import Image, ImageOps

    ensure_opener(path)
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        # No warnings.catch_warnings() here: it changes process-wide state and decode runs on
        # several threads. The command line silences library warnings once, at start.
        with Image.open(io.BytesIO(data)) as im:
            return _decode_opened(im, data, scale_for, Image, ImageOps)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large to decode safely: {exc}") from exc
    except Image.UnidentifiedImageError:
        raise ImageError("not an image, or a format Pillow cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc) or type(exc).__name__
        if "truncated" in message.lower() or isinstance(exc, EOFError):
            message = f"truncated or damaged file ({message})"
        raise ImageError(f"cannot decode: {message}") from exc
    except MemoryError as exc:
        raise ImageError("not enough memory to decode this image") from exc


_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


def _decode_opened(im, data: bytes, scale_for: ScalePolicy | None, Image, ImageOps) -> LoadedImage:
    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not lose the photo
        orientation = 1
    width, height = im.size
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    factor = min(1.0, scale_for(width, height)) if scale_for else 1.0
    if factor < 1.0 and im.format == "JPEG":
        # draft() keeps the decoded size >= the requested one (it divides by powers of two).
        stored = im.size
        im.draft("RGB", (max(1, int(stored[0] * factor)), max(1, int(stored[1] * factor))))
    im.load()
    im = _to_rgb(im, Image)
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    target = (max(1, round(width * factor)), max(1, round(height * factor)))
    if im.size != target:
        im = im.resize(target, Image.Resampling.BILINEAR)
    pixels = np.asarray(im, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"unexpected pixel layout {pixels.shape}")
    return LoadedImage(
        pixels=np.ascontiguousarray(pixels),
        original_width=width,
        original_height=height,
        scale=target[0] / width,
        content_hash=content_hash(data),
    )


def _to_rgb(im, Image):
    """Convert any Pillow mode to 8-bit RGB without clipping high bit depths."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's convert() would clip 16-bit values at 255: scale instead.
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent areas become white, as photo viewers show them.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(path: Path, scale_for: ScalePolicy | None = None) -> LoadedImage:
    """Read and decode one photo. Raises :class:`ImageError` (or MissingExtraError)."""
    return decode_image(read_file(path), path, scale_for)
