"""Opening photos: bytes to RGB pixels at a working resolution, EXIF orientation applied.

No models and no SQL here: this module turns paths into pixels. Originals are only ever read.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from faceclust.errors import ImageError
from faceclust.photos.formats import RAW_EXTENSIONS, ensure_opener
from faceclust.photos.read import read_photo_bytes


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
    taken_at: float | None = None  # EXIF DateTimeOriginal as seconds since the epoch, if the photo has one
    # (width, height) the pixels are still to be resized to (``WorkingSize(resize="later")``):
    # see :func:`at_working_size`. None: ``pixels`` are at the working size.
    resize_to: tuple[int, int] | None = None


def content_hash(data: bytes) -> str:
    """Identity of a file's bytes: recognises moved, renamed and copied photos."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def read_file(path: Path, stall_seconds: float | None = None) -> bytes:
    """The bytes of a photo file: regular files only, never blocking forever (see
    :func:`faceclust.photos.read.read_photo_bytes`). Raises :class:`ImageError`."""
    return read_photo_bytes(path, stall_seconds=stall_seconds)


ScalePolicy = Callable[[int, int], float]

RESIZES = ("pillow", "torch", "later")


@dataclass(frozen=True)
class WorkingSize:
    """A :data:`ScalePolicy` that also says how the decoded pixels are brought to that size:
    ``"pillow"`` (bilinear, antialiased: thumbnails, the report), ``"torch"`` (the same filter,
    about 2.5x faster on uint8 photos: what faces are found on, so that a scan, a search and
    a re-embedding see the same pixels), or ``"later"``: the pixels are left at the size the
    JPEG decoder gave (``LoadedImage.resize_to`` set), for :func:`at_working_size` to finish
    with torch once it is loaded (a scan decodes its first photos while torch imports)."""

    scale_for: ScalePolicy
    resize: str = "pillow"

    def __post_init__(self) -> None:
        if self.resize not in RESIZES:
            raise ValueError(f"resize must be one of: {', '.join(RESIZES)}")

    def __call__(self, width: int, height: int) -> float:
        return self.scale_for(width, height)


def resize_pixels(pixels: np.ndarray, size: tuple[int, int], how: str = "pillow") -> np.ndarray:
    """uint8 RGB ``pixels`` resized to ``size`` (width, height), bilinear, antialiased when
    shrinking: by Pillow or by torch (within one or two levels of each other; each is the
    same on every run and thread count)."""
    if how == "pillow":
        from PIL import Image

        return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR), np.uint8)
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        if not pixels.flags.writeable or not pixels.flags.c_contiguous:
            pixels = np.array(pixels)  # torch warns about read-only arrays (Pillow's are)
        planes = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        shrinking = size[0] < pixels.shape[1] or size[1] < pixels.shape[0]
        out = F.interpolate(planes, size=(size[1], size[0]), mode="bilinear", align_corners=False,
                            antialias=shrinking)[0].numpy()
    # The result comes as planes: copied back a plane at a time (4x faster than a transpose).
    pixels = np.empty((size[1], size[0], 3), np.uint8)
    for channel in range(3):
        pixels[:, :, channel] = out[channel]
    return pixels


def at_working_size(image: LoadedImage) -> LoadedImage:
    """``image`` with its pixels at the working size: resized by torch if decoded with
    ``resize="later"``, else itself."""
    if image.resize_to is None:
        return image
    return replace(image, pixels=resize_pixels(image.pixels, image.resize_to, "torch"), resize_to=None)


def max_side_policy(max_side: int | None) -> ScalePolicy:
    """Working scale that caps the long side at ``max_side`` (never enlarges)."""

    def policy(width: int, height: int) -> float:
        if not max_side or max(width, height) <= max_side:
            return 1.0
        return max_side / max(width, height)

    return policy


def decode_image(data: bytes, path: Path, scale_for: ScalePolicy | None = None, *,
                 known_hash: str | None = None) -> LoadedImage:
    """Decode ``data`` (the bytes of ``path``) to RGB at a working resolution.

    EXIF orientation is applied. ``scale_for(width, height)`` gives the working scale (<= 1)
    from the orientation-corrected original size; for JPEG the decoder itself does most of
    the reduction (``Image.draft``), several times cheaper than a full decode.
    ``known_hash``: :func:`content_hash` of these very bytes, when the caller has it (hashing
    is another pass over every byte). Every failure becomes an :class:`ImageError`.
    """
    from PIL import Image, ImageOps

    ensure_opener(path)
    if not data:
        raise ImageError("empty file (0 bytes)")
    digest = known_hash if known_hash is not None else content_hash(data)
    if Path(path).suffix.lower() in RAW_EXTENSIONS:
        return _decode_raw(data, scale_for, digest)
    try:
        # No warnings.catch_warnings() here: it changes process-wide state and decode runs on
        # several threads. The command line silences library warnings once, at start.
        with Image.open(io.BytesIO(data)) as im:
            return _decode_opened(im, digest, scale_for, Image, ImageOps)
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


def shown_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of a photo stored ``width`` x ``height`` as shown with this EXIF
    orientation (5-8 swap the sides)."""
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _decode_raw(data: bytes, scale_for: ScalePolicy | None, digest: str) -> LoadedImage:
    from faceclust.photos.raw import decode_raw

    try:
        pixels, width, height, taken_at = decode_raw(data, scale_for)
    except MemoryError as exc:
        raise ImageError("not enough memory to decode this RAW file") from exc
    factor = min(1.0, scale_for(width, height)) if scale_for else 1.0
    target = (max(1, round(width * factor)), max(1, round(height * factor)))
    pixels, later = _to_working_size(np.ascontiguousarray(pixels), target, _resize_of(scale_for))
    return LoadedImage(pixels=pixels, original_width=width, original_height=height,
                       scale=target[0] / width, content_hash=digest, taken_at=taken_at,
                       resize_to=later)


# "later" keeps pixels of at most this many times the working size's area (a JPEG decoded at
# 1/2, 1/4 or 1/8 scale: under 4x); bigger ones (PNG, TIFF, HEIC have no reduced decode: a
# 12 MP photo is 36 MB) are resized at once, waiting for torch if it is still importing.
LATER_AT_MOST = 4


def _to_working_size(pixels: np.ndarray, target: tuple[int, int], resize: str):
    """(pixels, resize_to): resized now, or left for :func:`at_working_size`."""
    if (pixels.shape[1], pixels.shape[0]) == target:
        return pixels, None
    if resize == "later":
        if pixels.shape[0] * pixels.shape[1] <= LATER_AT_MOST * target[0] * target[1]:
            return pixels, target
        resize = "torch"
    return resize_pixels(pixels, target, resize), None


def _resize_of(scale_for: ScalePolicy | None) -> str:
    return scale_for.resize if isinstance(scale_for, WorkingSize) else "pillow"


def _decode_opened(im, digest: str, scale_for: ScalePolicy | None, Image, ImageOps) -> LoadedImage:
    try:
        exif = im.getexif()
        orientation = int(exif.get(0x0112, 1))
    except Exception:  # a broken EXIF block must not lose the photo
        exif, orientation = None, 1
    taken_at = exif_taken_at(exif)
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
    resize = _resize_of(scale_for)
    if resize == "pillow" and im.size != target:
        im = im.resize(target, Image.Resampling.BILINEAR)  # before the copy to numpy: a smaller one
    pixels = np.asarray(im, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"unexpected pixel layout {pixels.shape}")
    pixels, later = _to_working_size(np.ascontiguousarray(pixels), target, resize)
    return LoadedImage(
        pixels=pixels,
        original_width=width,
        original_height=height,
        scale=target[0] / width,
        content_hash=digest,
        taken_at=taken_at,
        resize_to=later,
    )


def exif_taken_at(exif) -> float | None:
    """EXIF DateTimeOriginal (else DateTimeDigitized, else DateTime) as seconds since the epoch:
    with OffsetTimeOriginal when present, else as this machine's local time. None when absent
    or unreadable (a zeroed "0000:00:00 00:00:00" is absent)."""
    from datetime import datetime, timedelta, timezone

    if exif is None:
        return None
    try:
        sub = exif.get_ifd(0x8769)
    except Exception:
        sub = {}
    for tag, offset_tag in ((0x9003, 0x9011), (0x9004, 0x9012), (0x0132, 0x9010)):
        text = sub.get(tag) if tag != 0x0132 else exif.get(tag)
        if not isinstance(text, str):
            continue
        try:
            when = datetime.strptime(text.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue
        offset = sub.get(offset_tag)
        if isinstance(offset, str) and len(offset.strip()) >= 6 and offset.strip()[0] in "+-":
            try:
                sign = 1 if offset.strip()[0] == "+" else -1
                hours, minutes = int(offset.strip()[1:3]), int(offset.strip()[4:6])
                when = when.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
            except ValueError:
                pass
        try:
            return when.timestamp()  # naive: local time
        except (OverflowError, OSError, ValueError):
            return None
    return None


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


def taken_at_from_head(data: bytes, path: Path) -> float | None:
    """The EXIF capture time from the first bytes of a photo (where JPEG, TIFF and most HEIC
    files keep their EXIF), or None."""
    from PIL import Image

    try:
        ensure_opener(path)  # HEIC without its extra: no date from EXIF, not a failed scan
        with Image.open(io.BytesIO(data)) as im:
            return exif_taken_at(im.getexif())
    except Exception:  # a header cut short, an odd file: no date from EXIF
        return None


def stored_geometry(path: Path) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) of a photo as stored, from its header (no decode;
    a RAW file: its developed image and LibRaw's flip). Raises ImageError."""
    from PIL import Image

    if Path(path).suffix.lower() in RAW_EXTENSIONS:
        from faceclust.photos.raw import raw_geometry

        return raw_geometry(read_photo_bytes(path))
    ensure_opener(path)
    try:
        with Image.open(path) as im:
            try:
                orientation = int(im.getexif().get(0x0112, 1))
            except Exception:  # noqa: BLE001 - a broken EXIF block: as decode_image reads it
                orientation = 1
            return im.size[0], im.size[1], orientation if 1 <= orientation <= 8 else 1
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}") from exc
    except (Image.UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read its header: {exc}") from exc
