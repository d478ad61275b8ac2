"""Merging faceclust's face regions and people keywords into an XMP sidecar, and writing it.

A merge changes only what faceclust wrote before. The sidecar records what faceclust added
(``faceclust:Regions``: its regions' signatures; ``faceclust:Keywords`` and ``faceclust:Tags``:
the names it added to ``dc:subject`` and ``digiKam:TagsList``), so a region or keyword from
another program, or one the user edited there, is kept as it is; so is everything else under
``mwg-rs:Regions`` (extensions) and in the sidecar. A sidecar faceclust owns nothing in is left
alone when there is nothing to add.

Writing: the new packet is made in memory from the sidecar's bytes (exiv2's IPTC and EXIF
mirrors of the XMP are dropped first, so they cannot write deleted keywords back), parsed again
and checked (faceclust's part as planned, every other property unchanged), written to a
temporary file beside the sidecar and renamed over it in one step, with the old file's
permissions (and owner, where allowed). The sidecar is read again just before: a sidecar
another program changed meanwhile is not overwritten.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from faceclust.photos.xmp import (
    DIMENSIONS,
    EMPTY_PACKET,
    OURS_KEYWORDS,
    OURS_REGIONS,
    OURS_TAGS,
    PEOPLE_TAG,
    REGION_LIST,
    REGIONS,
    SUBJECT,
    TAGS,
    Region,
    XmpError,
    _as_list,
    _pyexiv2,
    _region_signature,
    read_sidecar_bytes,
    read_xmp_bytes,
    regions_of,
)
from faceclust.text import printable


def _owned(key: str) -> bool:
    """Keys a merge may change: the region list and its dimensions, the two keyword lists,
    faceclust's records. Everything else is the other programs' and must stay as it was."""
    return (key == REGIONS or key.startswith((REGION_LIST, DIMENSIONS, "Xmp.faceclust."))
            or key in (SUBJECT, TAGS))


def _normal(values: dict) -> dict:
    return {k: (_as_list(v) if isinstance(v, list) else str(v)) for k, v in values.items()}


@dataclass
class SidecarPlan:
    """What a merge changes: the properties faceclust may change, before and after."""

    path: Path
    exists: bool
    data: bytes  # the sidecar as read (the empty packet for a new one)
    before: dict  # every property, as read
    owned_after: dict = field(default_factory=dict)

    def owned_before(self) -> dict:
        return {k: v for k, v in self.before.items() if _owned(k)}

    @property
    def changed(self) -> bool:
        return _normal(self.owned_before()) != _normal(self.owned_after)


def plan_sidecar(path: Path, regions: list[Region], stored_size: tuple[int, int],
                 stall_seconds: float | None = None) -> SidecarPlan:
    """Read ``path`` (if it exists) and work out its faceclust part with these regions (the
    photo's named faces, normalised to the stored image of ``stored_size`` pixels) and their
    names as keywords. Raises XmpError for a sidecar that is not a readable XMP file."""
    exists = os.path.lexists(path)
    data = read_sidecar_bytes(path, stall_seconds) if exists else EMPTY_PACKET.encode("utf-8")
    before = read_xmp_bytes(data, str(path)) if exists else {}
    plan = SidecarPlan(Path(path), exists, data, before)
    after = {k: v for k, v in before.items() if _owned(k) and not k.startswith("Xmp.faceclust.")}
    ours = set(_as_list(before.get(OURS_REGIONS)))
    items = regions_of(before)
    foreign = [r for r in items if _region_signature(r) not in ours]
    if regions or len(foreign) < len(items):  # the region list changes
        for key in [k for k in after if k == REGIONS or k.startswith((REGION_LIST, DIMENSIONS))]:
            del after[key]
        others = [k for k in before if k.startswith(REGIONS + "/") and not _owned(k)]  # e.g. extensions
        dims = {k: v for k, v in before.items() if k.startswith(DIMENSIONS)}
        if regions and not (foreign and dims):  # the photo's stored size, for faceclust's regions
            dims = {DIMENSIONS: 'type="Struct"', DIMENSIONS + "/stDim:w": str(int(stored_size[0])),
                    DIMENSIONS + "/stDim:h": str(int(stored_size[1])), DIMENSIONS + "/stDim:unit": "pixel"}
        if foreign or regions:
            after[REGIONS] = 'type="Struct"'
            after.update(dims)
            after[REGION_LIST] = 'type="Bag"'
            fields = list(foreign) + [{"": 'type="Struct"', "/mwg-rs:Name": r.name, "/mwg-rs:Type": "Face",
                                       "/mwg-rs:Area": 'type="Struct"',
                                       **{f"/mwg-rs:Area/stArea:{c}": f"{v:.6f}"
                                          for c, v in zip("xywh", (r.x, r.y, r.w, r.h))},
                                       "/mwg-rs:Area/stArea:unit": "normalized"} for r in regions]
            for i, item in enumerate(fields, 1):
                for rest, value in item.items():
                    after[f"{REGION_LIST}[{i}]{rest}"] = value
        elif others:
            after[REGIONS] = 'type="Struct"'  # another program's extensions stay in their struct
    names = list(dict.fromkeys(r.name for r in regions))
    for key, record, make in ((SUBJECT, OURS_KEYWORDS, lambda n: n), (TAGS, OURS_TAGS, lambda n: PEOPLE_TAG + n)):
        old = _as_list(before.get(key))
        added_before = set(_as_list(before.get(record)))
        wanted = [make(n) for n in names]
        kept = [k for k in old if k not in added_before or k in wanted]
        new = kept + [k for k in wanted if k not in kept]
        added = [k for k in wanted if k in added_before or k not in old]
        after.pop(key, None)
        if new == old and key in before:
            after[key] = before[key]  # as it was, type and all
        elif new:
            after[key] = new
        if added:
            after[record] = added
    if regions:
        after[OURS_REGIONS] = [r.signature() for r in regions]
    plan.owned_after = after
    return plan


def write_sidecar(plan: SidecarPlan, stall_seconds: float | None = None) -> None:
    """Apply a changed plan (see the module's docstring). Raises XmpError; the sidecar is then
    as it was."""
    pyexiv2 = _pyexiv2()
    path = plan.path
    label = printable(path)
    if plan.exists:
        if read_sidecar_bytes(path, stall_seconds) != plan.data:
            raise XmpError(f"{label}: changed by another program meanwhile; left as it is, run again")
    elif os.path.lexists(path):
        raise XmpError(f"{label}: made by another program meanwhile; left as it is, run again")
    if not plan.owned_after and not any(not _owned(k) for k in plan.before):
        # Nothing is left (faceclust made this sidecar alone): exiv2 does not write an empty
        # packet, so the empty packet is written as it is.
        _replace(path, EMPTY_PACKET.encode("utf-8"), plan.exists)
        return
    try:
        with pyexiv2.ImageData(plan.data) as image:
            image.clear_iptc()  # exiv2's mirrors of the XMP: they would write deleted keywords back
            image.clear_exif()
            drop = {k: None for k in plan.before if _owned(k) and not (k == REGIONS and k in plan.owned_after)}
            if drop:
                image.modify_xmp(drop)
            values = {}
            for key, value in plan.owned_after.items():
                if key == REGIONS and key not in drop and key in plan.before:
                    continue  # kept: setting a struct again would empty it (another program's extensions)
                if isinstance(value, list) and key not in (OURS_REGIONS, OURS_KEYWORDS, OURS_TAGS):
                    image.modify_xmp({key: 'type="Seq"' if key == TAGS else 'type="Bag"'})
                values[key] = value
            if values:
                image.modify_xmp(values)
            packet = image.get_bytes()
    except (RuntimeError, OSError, UnicodeError, ValueError) as exc:
        raise XmpError(f"{label}: could not be written as XMP ({str(exc).strip()}); left as it is") from exc
    written = read_xmp_bytes(packet, str(path))
    theirs_before = {k: v for k, v in plan.before.items() if not _owned(k)}
    theirs_after = {k: v for k, v in written.items() if not _owned(k)}
    ours_after = {k: v for k, v in written.items() if _owned(k)}
    if _normal(theirs_after) != _normal(theirs_before) or _normal(ours_after) != _normal(plan.owned_after):
        raise XmpError(f"{label}: the XMP library did not write what was asked; left as it is")
    _replace(path, packet, plan.exists)


def _replace(path: Path, packet: bytes, exists: bool) -> None:
    temp = None
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(packet)
            handle.flush()
            os.fsync(handle.fileno())
        if exists:
            st = os.stat(path)
            os.chmod(temp, st.st_mode & 0o7777)
            try:
                os.chown(temp, st.st_uid, st.st_gid)
            except OSError:
                pass  # not allowed (another user's file): the new file is this user's
        else:
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(temp, 0o666 & ~mask)
        os.replace(temp, path)
        temp = None
    except OSError as exc:
        raise XmpError(f"{printable(path)}: could not be written ({exc.strerror or exc}); "
                       "check the folder's permissions") from exc
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass
