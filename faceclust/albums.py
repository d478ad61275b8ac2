"""Albums: one folder per person, filled with links to (or copies of) the original photos.

The only writer of albums, always inside the output folder. A manifest remembers what this
module created, so a re-run adds new photos, removes photos whose faces moved away, and never
touches a file it did not create. Originals are never modified.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from faceclust.errors import FaceclustError

from faceclust.scan import ALBUM_MARKER as MANIFEST  # the scan skips folders holding it
MODES = ("symlink", "hardlink", "copy")
UNKNOWN = "unknown"
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
MAX_NAME_BYTES = 120


class AlbumError(FaceclustError):
    pass


@dataclass
class AlbumSummary:
    people: int = 0
    added: int = 0
    removed: int = 0
    kept: int = 0
    errors: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def safe_folder_name(name: str | None, person_id: int) -> str:
    """A folder name valid on every common filesystem; ``person-0001`` when unnamed.

    Separators and control characters become ``_``, leading and trailing dots and spaces go
    (so ``..`` can never be a name), and Windows' reserved device names get a ``_`` prefix.
    """
    fallback = f"person-{person_id:04d}"
    text = _UNSAFE.sub("_", unicodedata.normalize("NFC", name or "")).strip(" .")
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
    photos in ``leave_out`` (duplicates of a photo that stays) are not placed."""
    visible = {p["id"]: p for p in people if not p["hidden"]}
    folders: dict[int, str] = {}
    used: set[str] = {UNKNOWN}
    for pid in sorted(visible):
        folder = safe_folder_name(visible[pid]["name"], pid)
        if folder.lower() in used:
            folder = f"{folder} ({pid})"
        used.add(folder.lower())
        folders[pid] = folder
    photos_of: dict[str | None, set[str]] = defaultdict(set)
    for person, _face, path, *_ in rows:
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


class AlbumWriter:
    def __init__(self, out: Path, mode: str = "symlink") -> None:
        if mode not in MODES:
            raise AlbumError(f"unknown album mode {mode!r}; choose one of: {', '.join(MODES)}")
        self.out = Path(out)
        self.mode = mode
        self.root = None

    def write(self, plan: dict[str, tuple[str, int | None]]) -> AlbumSummary:
        self.out.mkdir(parents=True, exist_ok=True)
        self.root = self.out.resolve()
        manifest = self._load_manifest()
        old_folders = {rel.split("/", 1)[0] for rel in manifest}
        summary = AlbumSummary(people=len({p for _, p in plan.values() if p is not None}))
        for rel in sorted(set(manifest) - set(plan)):
            self._remove(rel, manifest, summary)
        for rel, (source, _person) in sorted(plan.items()):
            entry = manifest.get(rel)
            if entry and entry["source"] == source and self._still_ours(rel, entry):
                summary.kept += 1
                continue
            if entry:
                self._remove(rel, manifest, summary)
            self._create(rel, source, manifest, summary)
        self._remove_empty_folders(old_folders - {rel.split("/", 1)[0] for rel in manifest})
        self._save_manifest(manifest)
        return summary

    # -- files ---------------------------------------------------------------------------------

    def _target(self, rel: str) -> Path:
        target = (self.root / rel)
        parent = target.parent.resolve()
        if parent != self.root and self.root not in parent.parents:
            raise AlbumError(f"refusing to write outside {self.root}: {rel}")
        return parent / target.name

    def _create(self, rel: str, source: str, manifest: dict, summary: AlbumSummary) -> None:
        try:
            target = self._target(rel)
            if os.path.lexists(target):
                summary.errors.append((rel, "a file not made by faceclust is in the way; left as it is"))
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = self._place(Path(source), target)
            st = target.lstat()
            manifest[rel] = {"source": source, "mode": mode, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            summary.added += 1
        except (OSError, AlbumError) as exc:
            summary.errors.append((rel, str(exc)))

    def _place(self, source: Path, target: Path) -> str:
        if self.mode == "symlink":
            os.symlink(os.path.abspath(source), target)
            return "symlink"
        if self.mode == "hardlink":
            try:
                os.link(source, target)
                return "hardlink"
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                # Another filesystem: a copy is the closest thing that works.
        shutil.copy2(source, target)
        return "copy"

    def _still_ours(self, rel: str, entry: dict) -> bool:
        """Is the file at ``rel`` the one we made (not replaced or edited by the user)?"""
        try:
            target = self._target(rel)
            st = target.lstat()
        except (OSError, AlbumError):
            return False
        if entry["mode"] == "symlink":
            return os.path.islink(target) and os.readlink(target) == os.path.abspath(entry["source"])
        return st.st_size == entry.get("size") and st.st_mtime_ns == entry.get("mtime_ns")

    def _remove(self, rel: str, manifest: dict, summary: AlbumSummary) -> None:
        entry = manifest.pop(rel)
        if not self._still_ours(rel, entry):
            return  # changed or gone since we made it: not ours to delete any more
        try:
            self._target(rel).unlink()
            summary.removed += 1
        except (OSError, AlbumError) as exc:
            summary.errors.append((rel, str(exc)))

    def _remove_empty_folders(self, folders: set[str]) -> None:
        """Folders this module made that no longer hold an album entry."""
        for name in folders:
            child = self.root / name
            if child.is_dir() and not child.is_symlink():
                try:
                    child.rmdir()  # only succeeds when empty: user files keep their folder
                except OSError:
                    pass

    # -- manifest ------------------------------------------------------------------------------

    def _load_manifest(self) -> dict:
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return dict(data.get("entries", {}))
        except (OSError, ValueError) as exc:
            raise AlbumError(f"the album manifest {path} is unreadable ({exc}); move it away to start afresh") from exc

    def _save_manifest(self, manifest: dict) -> None:
        path = self.root / MANIFEST
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"version": 1, "entries": manifest}, ensure_ascii=False, indent=0), encoding="utf-8")
        os.replace(tmp, path)


def write_albums(catalog_path, out: Path, mode: str = "symlink", include_unknown: bool = False,
                 skip_duplicates: bool = False) -> AlbumSummary:
    """Write (or update) one folder per visible person under ``out``; with ``skip_duplicates``
    only one photo of each group of duplicate photos is placed."""
    from faceclust.catalog import Catalog

    writer = AlbumWriter(out, mode)  # validates the mode before any work
    leave_out: frozenset[str] = frozenset()
    if skip_duplicates:
        from faceclust.dedupe import photos_to_leave_out

        leave_out = frozenset(photos_to_leave_out(catalog_path))
    with Catalog(catalog_path, create=False) as catalog:
        plan = plan_albums(catalog.person_faces(), catalog.people(), include_unknown, leave_out)
    return writer.write(plan)
