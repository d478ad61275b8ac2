"""What the albums should hold: a folder per visible person (a name made safe for every
filesystem, never shared by two people), a link per photo. Pure planning: no files touched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

from faceclust.errors import OutputError
from faceclust.photos.walk import ALBUM_MARKER  # the album manifest's name
from faceclust.text import printable, strip_unsafe


class AlbumError(OutputError):
    exit_code = 2  # an album folder that cannot be used as asked: choose another


UNKNOWN = "unknown"


_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


MAX_NAME_BYTES = 120


def safe_folder_name(name: str | None, person_id: int) -> str:
    """A folder name valid on every common filesystem; ``person-0001`` when unnamed.

    Separators and control characters become ``_``, leading and trailing dots and spaces go
    (so ``..`` can never be a name), and Windows' reserved device names get a ``_`` prefix.
    """
    fallback = f"person-{person_id:04d}"
    # Bidi overrides (U+202E shows "gpj.exe" as "exe.jpg"), other invisible layout controls
    # and undecodable bytes go; separators and the other control characters become "_".
    text = strip_unsafe(unicodedata.normalize("NFC", _UNSAFE.sub("_", name or ""))).strip(" .")
    while len(text.encode("utf-8")) > MAX_NAME_BYTES:
        text = text[:-1].rstrip(" .")
    if not text.strip("_ ."):
        return fallback
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    return text


def _link_name(source: str, taken: set[str]) -> str:
    """The photo's own file name; a short hash of its path tells apart photos named alike."""
    base = Path(source).name
    if base.lower() not in taken:
        return base
    stem, suffix = os.path.splitext(base)
    tag = hashlib.blake2b(source.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f"{stem}~{tag}{suffix}"


def plan_albums(rows, people: list[dict], include_unknown: bool,
                leave_out: frozenset[str] = frozenset()) -> dict[str, tuple[str, int | None]]:
    """Relative path in OUT -> (source photo, person id) for every album entry wanted;
    photos in ``leave_out`` (duplicates of a photo that stays) are not placed. A RAW file and
    the JPEG of the same shot (same folder and name) are one photo: the JPEG is placed, in the
    albums of the people found in either."""
    from faceclust.photos.formats import raw_partners

    rows = list(rows)
    partner = raw_partners({row[2] for row in rows})
    visible = {p["id"]: p for p in people if not p["hidden"]}
    folders: dict[int, str] = {}
    used: set[str] = {UNKNOWN}
    for pid in sorted(visible):
        base = safe_folder_name(visible[pid]["name"], pid)
        folder, k = base, 1
        while folder.lower() in used:  # "Ann", "Ann (7)", "Ann (7-2)": never two people in one folder
            folder = f"{base} ({pid})" if k == 1 else f"{base} ({pid}-{k})"
            k += 1
        used.add(folder.lower())
        folders[pid] = folder
    photos_of: dict[str | None, set[str]] = defaultdict(set)
    for person, _face, path, *_ in rows:
        if path in partner and partner[path] not in leave_out:
            path = partner[path]
        if path in leave_out:
            continue
        if person is None:
            if include_unknown:
                photos_of[None].add(path)
        elif person in folders:
            photos_of[person].add(path)
    plan: dict[str, tuple[str, int | None]] = {}
    for person, paths in photos_of.items():
        folder = UNKNOWN if person is None else folders[person]
        taken: set[str] = set()
        for source in sorted(paths):
            name = _link_name(source, taken)
            taken.add(name.lower())
            plan[f"{folder}/{name}"] = (source, person)
    return plan


def check_outside_photos(out: Path, photo_paths=(), photo_folders=()) -> None:
    """The album folder must not hold catalogued photos or photo folders (OUT being the photo
    folder, or a folder above it): scans skip album folders, so the photos would vanish."""
    root = os.path.realpath(out)
    prefix = root.rstrip(os.sep) + os.sep

    def inside(folder: str) -> bool:
        folder = os.path.realpath(folder)
        return folder == root or folder.startswith(prefix)

    for path in photo_paths:
        if inside(os.path.dirname(path)):
            raise AlbumError(f"{printable(out)} holds catalogued photos ({printable(path)}); albums go in a "
                             "folder of their own, outside the photo folders (scans skip album folders)")
    for folder in photo_folders:
        if inside(folder):
            raise AlbumError(f"{printable(out)} is or holds the photo folder {printable(folder)}; albums go in a "
                             "folder of their own, outside the photo folders (scans skip album folders)")


def album_mode(out: Path) -> str | None:
    """How the album folder ``out`` was made (its manifest's most common mode), or None when
    it holds no readable manifest: a refresh then keeps making what is there."""
    from collections import Counter

    try:
        with open(Path(out) / ALBUM_MARKER, encoding="utf-8") as handle:  # read only; never followed to write
            entries = json.load(handle).get("entries", {})
        modes = Counter(e.get("mode") for e in entries.values() if e.get("mode") in ("symlink", "hardlink", "copy"))
    except (OSError, ValueError, AttributeError):
        return None
    return modes.most_common(1)[0][0] if modes else None
