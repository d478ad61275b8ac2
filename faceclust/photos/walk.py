"""Walking photo folders: the photo files under some roots, in a stable order.

Hidden and NAS system folders are skipped, and so are faceclust's own album folders; symlinked
folders are followed once; the same file reached twice (a hard link, a symlinked file) is
marked as such; what cannot be read is reported, never fatal. No decoding, no models, no SQL.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from faceclust.files import describe_os_error, file_kind
from faceclust.photos.formats import IMAGE_EXTENSIONS

# Folders that NAS boxes, photo managers and operating systems fill with thumbnails,
# previews and trash: scanning them would catalog every face several times.
SKIPPED_DIRS = frozenset(
    {"@eadir", "#recycle", "#snapshot", "@recycle", "@tmp", "@sharebin", "$recycle.bin",
     ".thumbnails", ".thumbs", "thumbs", ".trash", ".trashes", "lost+found",
     ".@__thumb", "@__thumb", ".recycle", ".cache", "system volume information"}
)


# faceclust's own album folders hold links to photos already scanned: never scan them again.
# Any of its files marks one (the lock and journal come first, before any photo is placed).
ALBUM_MARKER = ".faceclust-albums.json"


ALBUM_FILES = frozenset({ALBUM_MARKER, ".faceclust-albums.journal", ".faceclust-albums.lock"})


@dataclass(frozen=True)
class PhotoFile:
    """A candidate image found on disk. ``same_as``: an earlier path of this walk to the very
    same file (a hard link, a symlinked file, a folder reached twice)."""

    path: Path
    size: int
    mtime_ns: int
    same_as: Path | None = None


@dataclass(frozen=True)
class WalkError:
    path: Path
    message: str


def is_skipped_dir(name: str) -> bool:
    return name.startswith(".") or name.lower() in SKIPPED_DIRS


# Files that are not photos faceclust reads, counted by kind in the scan's summary so that users
# see what was left out (hidden files, ".DS_Store" and the like, are not counted).
SKIPPED_KINDS = {
    "video": {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".3gp", ".mts", ".m2ts", ".wmv", ".webm", ".mpg", ".mpeg"},
    "sidecar": {".xmp", ".aae", ".thm", ".pp3", ".dop", ".on1"},
}


def skipped_kind(name: str) -> str:
    """"video", "sidecar" or "other" for a file that is not read as a photo."""
    suffix = Path(name).suffix.lower()
    return next((kind for kind, suffixes in SKIPPED_KINDS.items() if suffix in suffixes), "other")


def walk_photos(roots: Iterable[Path], errors: list[WalkError] | None = None,
                on_progress: Callable[[Path], None] | None = None,
                skipped: dict[str, int] | None = None,
                sidecars: dict[str, tuple[int, int]] | None = None) -> Iterator[PhotoFile]:
    """Yield image files under ``roots`` recursively, in a stable order.

    Hidden and NAS system folders are skipped. Symlinked folders are followed once: a folder
    already visited (same device and inode) is not entered again, so symlink cycles end.
    Unreadable folders are reported through ``errors`` and skipped. ``on_progress(path)`` is
    called before each folder is listed and each entry looked at (a watchdog's heartbeat).
    ``skipped`` (kind -> count) counts the visible files that are not photos (see SKIPPED_KINDS).
    ``sidecars`` (path -> (size, mtime_ns)) receives the XMP sidecars seen in the folders.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: dict[tuple[int, int], Path] = {}
    tick = on_progress or (lambda path: None)

    def once(path: Path, st: os.stat_result) -> PhotoFile:
        first = seen_files.setdefault((st.st_dev, st.st_ino), path)
        return PhotoFile(path, st.st_size, st.st_mtime_ns, None if first == path else first)

    for root in roots:
        root = Path(root)
        tick(root)
        try:
            st = root.stat()
        except OSError as exc:
            _report(errors, root, _stat_error(root, exc))
            continue
        if stat.S_ISREG(st.st_mode):
            if root.suffix.lower() in IMAGE_EXTENSIONS:
                yield once(root, st)
            elif skipped is not None:
                kind = skipped_kind(root.name)
                skipped[kind] = skipped.get(kind, 0) + 1
            continue
        if not stat.S_ISDIR(st.st_mode):
            _report(errors, root, f"{file_kind(st.st_mode)}, not a photo file; skipped")
            continue
        yield from _walk_dir(root, seen_dirs, errors, tick, once, skipped, sidecars)


def _walk_dir(top: Path, seen: set[tuple[int, int]], errors: list[WalkError] | None,
              tick: Callable[[Path], None], once: Callable, skipped: dict[str, int] | None,
              sidecars: dict[str, tuple[int, int]] | None = None) -> Iterator[PhotoFile]:
    stack = [top]
    while stack:
        folder = stack.pop()
        tick(folder)
        try:
            st = folder.stat()
        except OSError as exc:
            _report(errors, folder, f"cannot read folder: {exc.strerror or exc}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            _report(errors, folder, f"cannot list folder: {exc.strerror or exc}")
            continue
        if any(entry.name in ALBUM_FILES for entry in entries):
            continue
        subdirs = []
        for entry in entries:
            tick(folder)
            try:
                if entry.is_dir(follow_symlinks=True):
                    if not is_skipped_dir(entry.name):
                        subdirs.append(Path(entry.path))
                    continue
                if entry.name.startswith("."):
                    continue
                if Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS:
                    if skipped is not None:
                        kind = skipped_kind(entry.name)
                        skipped[kind] = skipped.get(kind, 0) + 1
                    if sidecars is not None and entry.name.lower().endswith(".xmp"):
                        xst = entry.stat(follow_symlinks=True)
                        if stat.S_ISREG(xst.st_mode):
                            sidecars[entry.path] = (xst.st_size, xst.st_mtime_ns)
                    continue
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:
                _report(errors, Path(entry.path), _stat_error(Path(entry.path), exc))
                continue
            if stat.S_ISREG(est.st_mode):
                yield once(Path(entry.path), est)
            else:  # a FIFO, device or socket named like a photo: opening it could block
                _report(errors, Path(entry.path), f"{file_kind(est.st_mode)}, not a photo file; skipped")
        # Reversed so that popping from the stack visits folders in name order.
        stack.extend(reversed(subdirs))


def _stat_error(path: Path, exc: OSError) -> str:
    import errno

    if exc.errno == errno.ENOENT and os.path.islink(path):
        return "broken symbolic link (what it points to is missing); skipped"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop; skipped"
    return describe_os_error(exc)


def _report(errors: list[WalkError] | None, path: Path, message: str) -> None:
    if errors is not None:
        errors.append(WalkError(path, message))
