"""How duplicate photos look alike: a photo's size read from its header, a tiny grey
thumbnail, whether one is the other mirrored; cached per run (:mod:`faceclust.find.dedupe`)."""

from __future__ import annotations

import numpy as np

from faceclust.photos.decode import shown_size


def _read_photo(path: str) -> bytes:
    """A candidate's bytes, as the scan reads them (HEIC opener, no blocking on odd files)."""
    from pathlib import Path

    from faceclust.photos.decode import read_file
    from faceclust.photos.formats import ensure_opener

    ensure_opener(Path(path))
    return read_file(Path(path))


def photo_size(path: str) -> tuple[int, int] | None:
    """(width, height) after EXIF orientation, from the file's header; None if unreadable."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(_read_photo(path))) as im:
            width, height = im.size
            orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - an unreadable candidate is simply not a duplicate
        return None
    return shown_size(width, height, orientation)


def thumbnail(path: str, side: int = 24) -> np.ndarray | None:
    """A small grey image of the whole photo, zero-mean and unit-norm, for comparing photo
    content; None if unreadable. (Thumbnails of a square around the faces were tried: detector
    jitter moves the square, and copies then compared worse than distinct photos.)"""
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(_read_photo(path))) as im:
            im.draft("L", (side * 4, side * 4))
            im = ImageOps.exif_transpose(im.convert("L"))
            x = np.asarray(im.resize((side, side), Image.Resampling.BOX), np.float64)
    except Exception:  # noqa: BLE001 - an unreadable candidate is simply not a duplicate
        return None
    x = x - x.mean()
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else x


def is_mirror_image(a: np.ndarray, b: np.ndarray) -> bool:
    """True when thumbnail ``b`` looks more like ``a`` flipped left-right than like ``a``."""
    return float(np.sum(a * b[:, ::-1])) > float(np.sum(a * b))


class LookCache:
    def __init__(self) -> None:
        self.sizes: dict[str, tuple[int, int] | None] = {}
        self.thumbs: dict[str, np.ndarray | None] = {}

    def size(self, path: str):
        if path not in self.sizes:
            self.sizes[path] = photo_size(path)
        return self.sizes[path]

    def thumb(self, path: str):
        if path not in self.thumbs:
            self.thumbs[path] = thumbnail(path)
        return self.thumbs[path]
