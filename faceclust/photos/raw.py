"""Camera RAW files (CR2, CR3, NEF, ARW, RAF, ORF, RW2, DNG...) through rawpy (LibRaw).

A RAW file carries a JPEG preview the camera made; when it is at least the working size (and
of the RAW's shape), that preview is what faceclust looks at: decoding it costs a fraction
of developing the sensor data. Otherwise the sensor data is developed by LibRaw, at half size
when that is still at least the working size. Either way the result is in the RAW's shown
orientation (LibRaw's ``flip`` applied), and sizes and boxes are in the RAW's full developed
pixels, shown orientation: the same coordinates a JPEG of the same shot has.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np

from faceclust.errors import ImageError, MissingExtraError

# LibRaw's flip -> the EXIF orientation that shows the stored image the same way (bit 2 of the
# flip: rows and columns swapped; mirrored flips are rare but exist).
FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


def _rawpy():
    try:
        import rawpy
    except ImportError:
        raise MissingExtraError("RAW photos need rawpy: pip install rawpy") from None
    return rawpy


def _detail(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else ""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return text.strip() or type(exc).__name__


def _open(rawpy, data: bytes):
    try:
        return rawpy.imread(io.BytesIO(data))
    except (rawpy.LibRawError, ValueError, OSError) as exc:
        raise ImageError(f"not a RAW file LibRaw can read ({_detail(exc)})") from None


def raw_geometry(data: bytes) -> tuple[int, int, int]:
    """(width, height, EXIF-style orientation) of a RAW file's developed image as stored."""
    rawpy = _rawpy()
    with _open(rawpy, data) as raw:
        sizes = raw.sizes
        return int(sizes.width), int(sizes.height), FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)


def decode_raw(data: bytes, scale_for: Callable[[int, int], float] | None):
    """(RGB uint8 pixels in the shown orientation at about the working size, shown width and
    height of the full image, EXIF capture time or None). Raises ImageError."""
    from faceclust.photos.decode import shown_size

    rawpy = _rawpy()
    with _open(rawpy, data) as raw:
        sizes = raw.sizes
        width, height = int(sizes.width), int(sizes.height)
        flip = int(sizes.flip)
        orientation = FLIP_TO_ORIENTATION.get(flip, 1)
        shown = shown_size(width, height, orientation)
        factor = min(1.0, scale_for(*shown)) if scale_for else 1.0
        target = (max(1, round(shown[0] * factor)), max(1, round(shown[1] * factor)))
        try:
            preview, taken_at = _preview(rawpy, raw, shown, target, orientation)
        except Exception:  # noqa: BLE001 - a preview LibRaw or Pillow cannot read: develop instead
            preview, taken_at = None, None
        if taken_at is None:
            taken_at = _libraw_time(raw)
        if preview is not None:
            return preview, shown[0], shown[1], taken_at
        half = min(width, height) // 2 >= min(target)
        try:
            rgb = raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)
        except (rawpy.LibRawError, ValueError, MemoryError) as exc:
            raise ImageError(f"cannot develop this RAW file ({_detail(exc)})") from None
        return np.ascontiguousarray(rgb, dtype=np.uint8), shown[0], shown[1], taken_at


def _libraw_time(raw) -> float | None:
    """LibRaw's own reading of the capture time (a datetime or seconds, by rawpy version)."""
    try:
        stamp = raw.other.timestamp
        seconds = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
    except (AttributeError, TypeError, ValueError, OverflowError, OSError):
        return None
    return seconds if seconds > 0 else None


def _preview(rawpy, raw, shown: tuple[int, int], target: tuple[int, int], orientation: int):
    """The camera's preview as RGB in the shown orientation, when it is big enough and of the
    RAW's shape; else None. Also the capture time from the preview's EXIF (None if absent)."""
    from PIL import Image

    from faceclust.photos.decode import exif_taken_at

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, ValueError, OSError):
        return None, None
    taken_at = None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(thumb.data)) as im:
                taken_at = exif_taken_at(im.getexif())
                size = im.size
                if max(size) < max(target):
                    return None, taken_at
                im.draft("RGB", (target[1], target[0]) if orientation in (5, 6, 7, 8) else target)
                image = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError):
            return None, None
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        image = np.asarray(thumb.data, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3 or max(image.shape[:2]) < max(target):
            return None, None
    else:
        return None, None
    # The preview is stored as the sensor is; turn (and mirror) it as the RAW is shown.
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    if method is not None:
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).transpose(method))
    h, w = image.shape[:2]
    if abs(w / h - shown[0] / shown[1]) > 0.02:  # a preview cropped to another shape: not usable
        return None, taken_at
    return np.ascontiguousarray(image), taken_at
