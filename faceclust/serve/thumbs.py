"""Face thumbnails and photo previews for ``faceclust serve``: cut from the original photo on
first request (decoded reduced, never written to), then kept in the cache folder
(``$XDG_CACHE_HOME/faceclust/thumbs``), keyed by the photo's content and the box, so an edited
photo gets new thumbnails and a moved one keeps its own."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from faceclust.catalog.browse import FaceSource
from faceclust.files import atomic_write, cache_dir

THUMB = 160  # pixels; shown at 80-120 CSS pixels, sharp on 2x screens
MARGIN = 0.25  # of the face's side, on every side
PREVIEW = 1600  # a photo's longest side in the photo view
VERSION = "1"  # part of every key: a change in how thumbnails are cut makes new ones


def _content_key(source: FaceSource) -> str:
    # The content hash when the scan stored one; else what identifies the file's version.
    return source.content_hash or f"{source.path}|{source.size}|{source.mtime_ns}"


class Thumbnails:
    """JPEG bytes of faces and photo previews, from the cache or made and cached."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else cache_dir() / "thumbs"

    def _cached(self, key: str, make) -> bytes:
        digest = hashlib.sha256(f"{VERSION}|{key}".encode("utf-8", "surrogateescape")).hexdigest()
        path = self.folder / digest[:2] / f"{digest}.jpg"
        try:
            return path.read_bytes()
        except OSError:
            pass
        data = make()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        except OSError:
            pass  # a read-only or full cache: serve it anyway, cut again next time
        return data

    def face(self, source: FaceSource) -> bytes:
        """A square THUMB-pixel JPEG of the face and a margin around it. Raises ImageError
        when the photo cannot be read."""
        box = ",".join(f"{v:.1f}" for v in source.box)
        return self._cached(f"face|{_content_key(source)}|{box}|{THUMB}", lambda: self._cut_face(source))

    def photo(self, source: FaceSource) -> bytes:
        """The photo, its longest side at most PREVIEW pixels, orientation applied."""
        return self._cached(f"photo|{_content_key(source)}|{PREVIEW}", lambda: self._preview(source))

    @staticmethod
    def _cut_face(source: FaceSource) -> bytes:
        from PIL import Image

        from faceclust.photos.decode import load_image

        left, top, right, bottom = source.box
        side = max(right - left, bottom - top, 1.0) * (1 + 2 * MARGIN)
        # Decode no larger than the face needs (a 12 MP photo is read at 1/4 or 1/8 scale).
        image = load_image(Path(source.path), lambda w, h: min(1.0, 2.0 * THUMB / side))
        s = image.scale
        cx, cy = (left + right) / 2 * s, (top + bottom) / 2 * s
        half = side * s / 2
        crop = Image.fromarray(image.pixels).crop((round(cx - half), round(cy - half),
                                                   round(cx + half), round(cy + half)))
        return _jpeg(crop.resize((THUMB, THUMB), Image.Resampling.LANCZOS))

    @staticmethod
    def _preview(source: FaceSource) -> bytes:
        from PIL import Image

        from faceclust.photos.decode import load_image, max_side_policy

        image = load_image(Path(source.path), max_side_policy(PREVIEW))
        return _jpeg(Image.fromarray(image.pixels))


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()
