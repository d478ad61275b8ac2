"""Face regions and people names written to XMP sidecars beside the photos, for digiKam,
Lightroom, darktable and every other program that reads Metadata Working Group regions.

Originals are never opened for writing: only ``photo.jpg.xmp`` (or ``photo.xmp``) sidecars
are written, each merged with what it already holds (:mod:`faceclust.photos.xmp`). A photo
gets the regions of its faces that belong to named, visible people; a sidecar faceclust wrote
before loses faceclust's part when those are gone. A photo changed since its last scan is left
for the next scan (its boxes may no longer fit). Running it again writes nothing when nothing
changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from faceclust.errors import ImageError
from faceclust.photos.decode import shown_size, stored_geometry
from faceclust.photos.sidecar import plan_sidecar, write_sidecar
from faceclust.photos.xmp import Region, XmpError, shown_to_stored, sidecar_path
from faceclust.records import ProgressCallback, ProgressEvent
from faceclust.text import printable


@dataclass
class XmpSummary:
    photos: int = 0  # photos with named people
    written: int = 0  # sidecars created or changed (or that would be, with dry_run)
    unchanged: int = 0
    cleared: int = 0  # sidecars whose faceclust part was removed (no named people left)
    skipped: int = 0  # photos changed or gone since their scan
    errors: list = field(default_factory=list)  # (path, message)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _photos(catalog):
    """(path, size, mtime_ns, width, height, [(box, name)]) for every existing photo, named
    faces of visible people only."""
    current, faces = None, []
    for row in catalog.db.execute(
            """SELECT p.id, p.path, p.size, p.mtime_ns, p.width, p.height,
                      f.left, f.top, f.right, f.bottom, pe.name
               FROM photos p LEFT JOIN faces f ON f.photo_id = p.id
               LEFT JOIN assignments a ON a.face_id = f.id
               LEFT JOIN people pe ON pe.id = a.person_id AND pe.hidden = 0
               WHERE p.status = 'ok' ORDER BY p.id, f.left"""):
        if current is None or row[0] != current[0]:
            if current is not None:
                yield (*current[1:], faces)
            current, faces = row[:6], []
        if row[10]:
            faces.append((tuple(row[6:10]), row[10]))
    if current is not None:
        yield (*current[1:], faces)


def write_xmp_sidecars(catalog_path, style: str = "photo.jpg.xmp", dry_run: bool = False,
                       progress: ProgressCallback | None = None) -> XmpSummary:
    """Write (or, with ``dry_run``, count) the sidecars of every catalogued photo."""
    from collections import Counter

    from faceclust.catalog import Catalog

    sidecar_path(Path("photo.jpg"), style)  # a bad style fails before any work
    progress = progress or (lambda event: None)
    summary = XmpSummary(dry_run=dry_run)
    with Catalog(catalog_path, create=False) as catalog:
        photos = list(_photos(catalog))
    # photo.xmp naming gives a.jpg and a.png one sidecar: neither is written, rather than one
    # photo's regions over the other's.
    shared = Counter(str(sidecar_path(Path(p[0]), style)).lower() for p in photos)
    progress(ProgressEvent("xmp", 0, len(photos)))
    for done, (path, size, mtime_ns, width, height, faces) in enumerate(photos, 1):
        sidecar = sidecar_path(Path(path), style)
        try:
            if shared[str(sidecar).lower()] > 1:
                if faces:
                    raise XmpError(f"{printable(sidecar)}: would be the sidecar of several photos with this name; "
                                   "use --sidecar-name photo.jpg.xmp")
            elif faces:
                _named(Path(path), size, mtime_ns, (width, height), faces, sidecar, dry_run, summary)
            elif os.path.lexists(sidecar):
                _clear(sidecar, dry_run, summary)
        except (XmpError, ImageError) as exc:
            summary.errors.append((str(sidecar), str(exc)))
        except OSError as exc:
            summary.errors.append((str(sidecar), f"{printable(sidecar)}: {exc.strerror or exc}"))
        if done % 200 == 0 or done == len(photos):
            progress(ProgressEvent("xmp", done, len(photos), errors=len(summary.errors)))
    return summary


def _clear(sidecar: Path, dry_run: bool, summary: XmpSummary) -> None:
    """faceclust's part of a sidecar goes when its people do."""
    try:
        plan = plan_sidecar(sidecar, [], (0, 0))
    except XmpError:
        return  # not XMP faceclust could have written (it checks what it writes): left alone
    if plan.changed:
        if not dry_run:
            write_sidecar(plan)
        summary.cleared += 1


def _named(path: Path, size: int, mtime_ns: int, shown: tuple, faces: list, sidecar: Path, dry_run: bool,
           summary: XmpSummary) -> None:
    summary.photos += 1
    try:
        stat = path.stat()
    except FileNotFoundError:
        summary.skipped += 1
        return
    if stat.st_size != size or stat.st_mtime_ns != mtime_ns:
        summary.skipped += 1  # changed since its scan: the boxes may not fit any more
        return
    stored_w, stored_h, orientation = stored_geometry(path)
    width, height = shown
    if not width or not height or (width, height) != shown_size(stored_w, stored_h, orientation):
        raise ImageError(f"{printable(path)}: its size differs from the catalog's; scan it again")
    regions = [Region(name, *shown_to_stored(box, width, height, orientation)) for box, name in faces]
    plan = plan_sidecar(sidecar, regions, (stored_w, stored_h))
    if not plan.changed:
        summary.unchanged += 1
        return
    if not dry_run:
        write_sidecar(plan)
    summary.written += 1
