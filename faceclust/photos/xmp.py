"""XMP face regions: reading XMP (sidecars and a photo's own), the Metadata Working Group's
regions (``mwg-rs:Regions``) and Microsoft Photo's, and the orientation they are given in.
Merging faceclust's regions into a sidecar and writing it: :mod:`faceclust.photos.sidecar`.

The XMP data model is parsed by exiv2's XMP toolkit through ``pyexiv2`` (the ``xmp`` extra;
imported only here, on first use), always from bytes in memory: faceclust reads the files
itself (regular files only, with the scan's guard against a share that stops answering), so
the library never opens a user's file.

MWG regions are relative to the image as stored, before the EXIF orientation is applied
(MWG guidelines 2.0, 5.9: "region metadata is applied to the stored image"); faceclust's boxes
are in the photo as shown, so :func:`shown_to_stored` turns one into the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from faceclust.errors import FaceclustError, MissingExtraError
from faceclust.text import printable

NAMESPACE = "https://faceclust.org/ns/xmp/1.0/"
REGIONS = "Xmp.mwg-rs.Regions"
REGION_LIST = REGIONS + "/mwg-rs:RegionList"
DIMENSIONS = REGIONS + "/mwg-rs:AppliedToDimensions"
SUBJECT = "Xmp.dc.subject"
TAGS = "Xmp.digiKam.TagsList"
OURS_REGIONS = "Xmp.faceclust.Regions"
OURS_KEYWORDS = "Xmp.faceclust.Keywords"  # what faceclust added to dc:subject
OURS_TAGS = "Xmp.faceclust.Tags"  # what faceclust added to digiKam:TagsList
MAX_SIDECAR_BYTES = 16 << 20
PEOPLE_TAG = "People/"
SIDECAR_STYLES = ("photo.jpg.xmp", "photo.xmp")
# An XMP packet with nothing in it: the start of a new sidecar (exiv2 fills it).
EMPTY_PACKET = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
                ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>\n'
                '</x:xmpmeta>\n<?xpacket end="w"?>\n')


class XmpError(FaceclustError):
    """A sidecar that cannot be read or written (the message names it)."""


@dataclass(frozen=True)
class Region:
    """A named face region, normalised to the stored image: centre (x, y), size (w, h)."""

    name: str
    x: float
    y: float
    w: float
    h: float

    def signature(self) -> str:
        return f"{self.name}|{self.x:.4f},{self.y:.4f},{self.w:.4f},{self.h:.4f}"


# -- orientation -------------------------------------------------------------------------------

def shown_to_stored(box, shown_width: float, shown_height: float, orientation: int) -> tuple[float, float, float, float]:
    """(x, y, w, h) normalised centre and size in the stored image of a box (left, top,
    right, bottom) in pixels of the photo as shown (EXIF ``orientation`` applied)."""
    left, top, right, bottom = (float(v) for v in box)
    cx, cy = (left + right) / 2 / shown_width, (top + bottom) / 2 / shown_height
    w, h = (right - left) / shown_width, (bottom - top) / shown_height
    # Where a stored point lands when shown, per orientation; inverted here (shown -> stored).
    inverse = {1: lambda x, y: (x, y), 2: lambda x, y: (1 - x, y), 3: lambda x, y: (1 - x, 1 - y),
               4: lambda x, y: (x, 1 - y), 5: lambda x, y: (y, x), 6: lambda x, y: (y, 1 - x),
               7: lambda x, y: (1 - y, 1 - x), 8: lambda x, y: (1 - y, x)}
    sx, sy = inverse.get(orientation, inverse[1])(cx, cy)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return sx, sy, w, h


def stored_to_shown(region, shown_width: float, shown_height: float, orientation: int) -> tuple[float, float, float, float]:
    """The inverse of :func:`shown_to_stored`: a box (left, top, right, bottom) in pixels of the
    photo as shown from a region's normalised (x, y, w, h) in the stored image."""
    x, y, w, h = region
    forward = {1: lambda x, y: (x, y), 2: lambda x, y: (1 - x, y), 3: lambda x, y: (1 - x, 1 - y),
               4: lambda x, y: (x, 1 - y), 5: lambda x, y: (y, x), 6: lambda x, y: (1 - y, x),
               7: lambda x, y: (1 - y, 1 - x), 8: lambda x, y: (y, 1 - x)}
    cx, cy = forward.get(orientation, forward[1])(x, y)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return ((cx - w / 2) * shown_width, (cy - h / 2) * shown_height,
            (cx + w / 2) * shown_width, (cy + h / 2) * shown_height)


# -- sidecars ----------------------------------------------------------------------------------

def sidecar_path(photo: Path, style: str = SIDECAR_STYLES[0]) -> Path:
    """``photo.jpg.xmp`` (digiKam, darktable) or ``photo.xmp`` (Lightroom) beside the photo."""
    if style not in SIDECAR_STYLES:
        raise ValueError(f"sidecar style must be one of: {', '.join(SIDECAR_STYLES)}")
    photo = Path(photo)
    return photo.with_name(photo.name + ".xmp") if style == SIDECAR_STYLES[0] else photo.with_suffix(".xmp")


def _pyexiv2():
    try:
        import pyexiv2
    except ImportError as exc:
        raise MissingExtraError("reading and writing XMP needs pyexiv2: pip install 'faceclust[xmp]'") from exc
    if not getattr(_pyexiv2, "registered", False):
        pyexiv2.set_log_level(4)  # exiv2's own warnings would interleave with faceclust's lines
        pyexiv2.registerNs(NAMESPACE, "faceclust")
        _pyexiv2.registered = True
    return pyexiv2


def read_xmp(path: Path, stall_seconds: float | None = None) -> dict:
    """Every XMP property of a sidecar, flattened as exiv2 names them (``Xmp.ns.Struct/ns:Field``,
    ``...List[2]/...``). The file is read here (a regular file only, never through a symbolic
    link, with the scan's guard against a share that stops answering) and parsed in memory.
    Raises XmpError."""
    return read_xmp_bytes(read_sidecar_bytes(path, stall_seconds), str(path))


def read_sidecar_bytes(path: Path, stall_seconds: float | None = None) -> bytes:
    import stat

    from faceclust.errors import ImageError
    from faceclust.files import file_kind
    from faceclust.photos.read import read_photo_bytes

    try:
        st = os.lstat(path)
    except OSError as exc:
        raise XmpError(f"{printable(path)}: cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISLNK(st.st_mode):
        raise XmpError(f"{printable(path)}: is a symbolic link; faceclust leaves it as it is")
    if not stat.S_ISREG(st.st_mode):
        raise XmpError(f"{printable(path)}: is {file_kind(st.st_mode)}, not an XMP file; left as it is")
    try:
        return read_photo_bytes(path, stall_seconds=stall_seconds, max_bytes=MAX_SIDECAR_BYTES)
    except ImageError as exc:
        raise XmpError(f"{printable(path)}: {exc}") from exc


def read_xmp_bytes(data: bytes, name: str) -> dict:
    """The XMP of a sidecar's bytes, or embedded in a photo's bytes (read from memory: the XMP
    library never opens a file). Raises XmpError."""
    pyexiv2 = _pyexiv2()
    if not data.strip():
        raise XmpError(f"{printable(name)}: empty, not XMP; left as it is")
    try:
        with pyexiv2.ImageData(data) as image:
            return image.read_xmp()
    except (RuntimeError, OSError, UnicodeError, ValueError) as exc:
        raise XmpError(f"{printable(name)}: not readable as XMP ({str(exc).strip() or type(exc).__name__}); "
                       "left as it is") from exc


def read_embedded_xmp(data: bytes, name: str) -> dict:
    """The XMP inside a photo's bytes: through exiv2 (JPEG, TIFF, PNG...), else, for containers
    whose XMP this exiv2 does not find (HEIC), the XMP packet itself, located in the bytes and
    parsed alone. Raises XmpError."""
    values: dict = {}
    try:
        values = read_xmp_bytes(data, name)
    except XmpError:
        pass
    if any(key.startswith((REGIONS, "Xmp.MP.")) for key in values):
        return values
    start = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", start)
    if start < 0 or end < 0:
        return values
    return read_xmp_bytes(data[start:end + len(b"</x:xmpmeta>")], name)


def regions_of(xmp: dict) -> list[dict]:
    """The region list as one dict per region: field path (``/mwg-rs:Name``, ``/mwg-rs:Area``,
    ``/mwg-rs:Area/stArea:x``...) -> value, in order."""
    regions: dict[int, dict] = {}
    prefix = REGION_LIST + "["
    for key, value in xmp.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix):].partition("]")
            if index.isdigit():
                regions.setdefault(int(index), {})[rest] = value
    return [regions[i] for i in sorted(regions)]


def _region_signature(fields: dict) -> str | None:
    try:
        area = [float(fields[f"/mwg-rs:Area/stArea:{c}"]) for c in "xywh"]
    except (KeyError, ValueError, TypeError):
        return None
    return Region(str(fields.get("/mwg-rs:Name", "")), *area).signature()


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


# -- reading other programs' face tags ---------------------------------------------------------

MP_REGIONS = "Xmp.MP.RegionInfo/MPRI:Regions"


@dataclass(frozen=True)
class TaggedFace:
    """A named face region another program wrote: normalised centre and size in the stored
    image, and where it was found (``mwg`` or ``mp``)."""

    name: str
    area: tuple[float, float, float, float]
    kind: str


def tagged_faces(xmp: dict) -> list[TaggedFace]:
    """Named face regions in an XMP dict (see :func:`read_xmp`): MWG regions of type Face (or
    without a type), then Microsoft Photo's people regions; regions faceclust wrote itself
    (recorded in ``faceclust:Regions``) are not tags of another program and are left out."""
    ours = set(_as_list(xmp.get(OURS_REGIONS)))
    found: list[TaggedFace] = []
    for fields in regions_of(xmp):
        name = str(fields.get("/mwg-rs:Name", "")).strip()
        kind = str(fields.get("/mwg-rs:Type", "Face"))
        unit = str(fields.get("/mwg-rs:Area/stArea:unit", "normalized"))
        if not name or kind != "Face" or unit != "normalized" or _region_signature(fields) in ours:
            continue
        try:
            area = tuple(float(fields[f"/mwg-rs:Area/stArea:{c}"]) for c in "xywh")
        except (KeyError, ValueError):
            continue
        if _plausible(area):
            found.append(TaggedFace(name, area, "mwg"))
    mp: dict[int, dict] = {}
    for key, value in xmp.items():
        if key.startswith(MP_REGIONS + "["):
            index, _, rest = key[len(MP_REGIONS) + 1:].partition("]")
            if index.isdigit():
                mp.setdefault(int(index), {})[rest] = value
    for i in sorted(mp):
        name = str(mp[i].get("/MPReg:PersonDisplayName", "")).strip()
        try:
            left, top, w, h = (float(v) for v in str(mp[i].get("/MPReg:Rectangle", "")).split(","))
        except ValueError:
            continue
        area = (left + w / 2, top + h / 2, w, h)  # MP gives the top-left corner
        if name and _plausible(area) and not any(f.name == name and _overlap(f.area, area) > 0.5 for f in found):
            found.append(TaggedFace(name, area, "mp"))  # the same face tagged both ways counts once
    return found


def _plausible(area) -> bool:
    x, y, w, h = area
    return 0 < w <= 1 and 0 < h <= 1 and -0.5 <= x <= 1.5 and -0.5 <= y <= 1.5


def _overlap(a, b) -> float:
    """Intersection over union of two (x, y, w, h) centre-size boxes."""
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def embedded_xmp_possible(data: bytes) -> bool:
    """Whether a photo's bytes may hold face regions in embedded XMP (a cheap test before
    asking the XMP library): one of the region schemas' names appears in them. A JPEG keeps its
    XMP in the segments before the image data, so only its first 256 KB are searched."""
    if data[:2] == b"\xff\xd8":
        data = data[:256 * 1024]
    return b"metadataworkinggroup.com/schemas/regions" in data or b"ns.microsoft.com/photo/1.2" in data
