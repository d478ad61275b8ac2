"""Face tags other programs wrote (digiKam, Lightroom, Picasa, Windows Photo Gallery...), read
during a scan: MWG and Microsoft Photo regions from XMP sidecars (``photo.jpg.xmp``,
``photo.xmp``) and from the XMP inside a photo. Each named region is matched to a face the
scan found (by box overlap) and that face is given to the person of that name (made if
nobody has it), as a decision of the user: clustering keeps it there. A face the user already
placed, or rejected for that person, keeps the user's decision. One undoable history entry
per scan ("import face tags"). A source is read again only when it changes (or its photo does).
"""

from __future__ import annotations

import time
from pathlib import Path

from faceclust.errors import FaceclustError, MissingExtraError, UsageProblem
from faceclust.photos.formats import raw_partners
from faceclust.text import printable

MATCH_IOU = 0.2  # a region and a face this close are the same face; see _match
UNMATCHED_SHOWN = 5


def _match(tags: list[tuple[str, tuple]], faces: list[tuple[int, tuple]]) -> tuple[list[tuple[int, str]], list[str]]:
    """Pairs (face id, name) of tag boxes and detected boxes (left, top, right, bottom), one
    to one, best overlap first: intersection over union of at least MATCH_IOU, or each box's
    centre inside the other (programs draw a face's box tighter or looser than the detector
    does). Returns the pairs and the names left without a face."""
    pairs = []
    for ti, (_name, t) in enumerate(tags):
        for fi, (_face, f) in enumerate(faces):
            iw = max(0.0, min(t[2], f[2]) - max(t[0], f[0]))
            ih = max(0.0, min(t[3], f[3]) - max(t[1], f[1]))
            inter = iw * ih
            union = (t[2] - t[0]) * (t[3] - t[1]) + (f[2] - f[0]) * (f[3] - f[1]) - inter
            iou = inter / union if union > 0 else 0.0
            tc, fc = ((t[0] + t[2]) / 2, (t[1] + t[3]) / 2), ((f[0] + f[2]) / 2, (f[1] + f[3]) / 2)
            mutual = t[0] <= fc[0] <= t[2] and t[1] <= fc[1] <= t[3] and f[0] <= tc[0] <= f[2] and f[1] <= tc[1] <= f[3]
            if iou >= MATCH_IOU or mutual:
                pairs.append((iou + (1.0 if mutual else 0.0), ti, fi))
    used_t, used_f, out = set(), set(), []
    for _score, ti, fi in sorted(pairs, reverse=True):
        if ti not in used_t and fi not in used_f:
            used_t.add(ti)
            used_f.add(fi)
            out.append((faces[fi][0], tags[ti][0]))
    return out, [tags[i][0] for i in range(len(tags)) if i not in used_t]


def _one_shot(paths: list[Path]) -> bool:
    """RAW files and the one other photo of the same name (their JPEG): one shot, one sidecar."""
    partners = raw_partners([str(p) for p in paths])
    return len(partners) == len(paths) - 1


class TagImportMixin:
    """The tag import of :class:`~faceclust.scan.scanner.Scanner`."""

    def _import_tags(self, files, sidecars: dict[str, tuple[int, int]], fresh: set[str], embedded: set[str]) -> None:
        """``files``: the photos walked; ``sidecars``: the XMP files walked (path -> size,
        mtime); ``fresh``: photos whose faces this scan (re)made; ``embedded``: of those, the
        ones whose bytes may hold XMP regions.

        What is to be read is recorded first (committed), so a source whose read is cut short
        (no XMP library, --no-import, an interrupted scan) is read by a later scan."""
        known = self.catalog.tag_sources()
        by_name = {path.lower(): path for path in sidecars}  # IMG_1.JPG.XMP is IMG_1.JPG's too
        stems: dict[tuple[str, str], list[Path]] = {}
        for f in files:
            stems.setdefault((str(f.path.parent), f.path.stem.lower()), []).append(f.path)
        todo: list[tuple[str, str, tuple[int, int]]] = []  # (photo, source, signature)
        sidecar_todo = []
        for f in files:
            photo = str(f.path)
            if photo in embedded or known.get((photo, photo), (0, 0, True))[2] is False:
                todo.append((photo, photo, (f.size, f.mtime_ns)))
            candidates = [by_name.get((photo + ".xmp").lower())]
            sharing = stems[(str(f.path.parent), f.path.stem.lower())]
            if len(sharing) == 1 or _one_shot(sharing):  # photo.xmp is one photo's (or a RAW+JPEG pair's)
                candidates.append(by_name.get(str(f.path.with_suffix(".xmp")).lower()))
            for source in dict.fromkeys(c for c in candidates if c):
                signature = sidecars[source]
                last = known.get((source, photo))
                if photo in fresh or last is None or last != (*signature, True):
                    sidecar_todo.append((photo, source, signature))
        todo += sidecar_todo  # sidecars last: what they say wins over a photo's own XMP
        if not todo:
            return
        self.catalog.pending_tag_sources([(s, p) for p, s, _ in todo], [sig for _, _, sig in todo])
        if not self.options.import_tags:
            return
        try:
            from faceclust.photos import xmp
            xmp._pyexiv2()
        except MissingExtraError as exc:
            self.summary.warnings.append(f"face tags in {len(todo)} XMP sources were not read: {exc}")
            return
        from faceclust.locks import catalog_lock

        unmatched: list[str] = []
        unread: list[str] = []
        with catalog_lock(self.catalog.path, "people"), self.catalog.recorded("move", "import face tags") as entry:
            for photo, source, signature in todo:
                try:
                    self._import_one(photo, source, signature, unmatched, xmp)
                except Exception as exc:  # noqa: BLE001 - the photo itself is fine: a warning, once
                    unread.append(str(exc) if isinstance(exc, (FaceclustError, OSError)) else
                                  f"{printable(source)}: unexpected error ({type(exc).__name__}: {exc})")
                    photo_id = self.catalog.photo_id(photo)
                    if photo_id is not None:  # not read again until it changes
                        self.catalog.set_tag_source(source, photo_id, signature, 0, 0)
            entry.description = f"import face tags: {self.summary.tags_imported} faces named from XMP"
        if unread:  # one warning, not a line per sidecar (a NAS can hold thousands of odd ones)
            more = f" (and {len(unread) - UNMATCHED_SHOWN} more)" if len(unread) > UNMATCHED_SHOWN else ""
            self.summary.warnings.append(f"face tags not read from {len(unread)} XMP sources: "
                                         + "; ".join(unread[:UNMATCHED_SHOWN]) + more)
        self.summary.tags_unmatched += len(unmatched)
        if unmatched:
            more = f" (and {len(unmatched) - UNMATCHED_SHOWN} more)" if len(unmatched) > UNMATCHED_SHOWN else ""
            self.summary.warnings.append(
                f"{len(unmatched)} face tags from other programs match no face faceclust found; first: "
                + "; ".join(unmatched[:UNMATCHED_SHOWN]) + more)

    def _import_one(self, photo: str, source: str, signature, unmatched: list[str], xmp) -> None:
        from faceclust.photos.decode import shown_size, stored_geometry
        from faceclust.photos.read import read_photo_bytes

        photo_id = self.catalog.photo_id(photo)
        if photo_id is None:
            return  # not catalogued (it could not be read): nothing to put a name on
        if source == photo:  # the photo's own XMP, parsed from a copy in memory
            values = xmp.read_embedded_xmp(read_photo_bytes(photo, stall_seconds=self.options.stall_seconds), photo)
        else:
            values = xmp.read_xmp(Path(source), self.options.stall_seconds)
        tags = xmp.tagged_faces(values)
        matched = 0
        if tags:
            width, height, orientation = stored_geometry(Path(photo))
            shown_w, shown_h = shown_size(width, height, orientation)
            boxes = [(t.name, xmp.stored_to_shown(t.area, shown_w, shown_h, orientation)) for t in tags]
            pairs, missing = _match(boxes, self.catalog.photo_face_boxes(photo_id))
            unmatched += [f"{printable(photo)}: {name!r}" for name in missing]
            for face, name in pairs:
                matched += self._name_face(face, name, source)
        self.catalog.set_tag_source(source, photo_id, signature, len(tags), matched)

    def _name_face(self, face: int, name: str, source: str) -> int:
        catalog = self.catalog
        current = catalog.assignments_of([face]).get(face)
        people = catalog.people_named(name)
        if current is not None and current[1] == "user":
            earlier = catalog.imported_faces_of([face]).get(face)
            holder = catalog.person(current[0])
            if earlier is None or holder is None or holder["name"] != earlier[0]:
                return int(current[0] in people)  # the user's decision stands
            if current[0] in people:
                return 1  # already there
            # else: placed by an earlier tag and left there by the user: the new tag moves it
        person = people[0] if people else None
        if person is not None and catalog.is_rejected(face, person):
            return 0  # the user said this face is not that person
        if person is None:
            person = catalog.create_people(1)[0]
            catalog.set_person(person, name=name)
        try:
            catalog.move_face(face, person)
        except UsageProblem:  # another face of the photo is that person already
            return 0
        catalog.record_imported_face(face, name, source, time.time())
        self.summary.tags_imported += 1
        return 1
