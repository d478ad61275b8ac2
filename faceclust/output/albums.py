"""Albums: one folder per person, filled with links to (or copies of) the original photos.

The only writer of albums, always inside the output folder. A manifest remembers what this
module created, so a re-run adds new photos, removes photos whose faces moved away, and never
touches a file it did not create. Originals are never modified.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from faceclust.errors import FaceclustError
from faceclust.files import atomic_write, copy_regular_file, remove_stale_temps
from faceclust.output.album_plan import AlbumError, check_outside_photos, plan_albums
from faceclust.photos.walk import ALBUM_FILES
from faceclust.photos.walk import ALBUM_MARKER as MANIFEST  # the scan skips folders holding it
from faceclust.records import ProgressEvent
from faceclust.text import printable

MODES = ("symlink", "hardlink", "copy")




@dataclass
class AlbumSummary:
    people: int = 0
    added: int = 0
    removed: int = 0
    kept: int = 0
    errors: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


JOURNAL = ".faceclust-albums.journal"
LOCK = ".faceclust-albums.lock"
assert {MANIFEST, JOURNAL, LOCK} == ALBUM_FILES  # the scan skips folders holding any of them
_TMP_PREFIX = ".faceclust-tmp-"


class AlbumWriter:
    """Writes a plan into OUT, and only ever inside it.

    Every file operation goes through descriptors of OUT and of its person folders, opened
    without following symlinks: a symlink planted inside OUT (as a person folder, or where a
    link or temporary file will be made) can never redirect a write or a delete elsewhere.
    Before each file is made or removed, the intent is appended to a journal; the manifest is
    rewritten (atomically) at the end and the journal dropped. A run killed at any moment
    leaves a journal that the next run replays, so it ends as a clean run would: nothing made
    by faceclust is orphaned, nothing of the user's is taken for faceclust's. Copies are made
    under a temporary name and linked into place, so no half-written copy ever has a photo's
    name. One run at a time per OUT (a lock file beside the manifest).
    """

    def __init__(self, out: Path, mode: str = "symlink", progress=None) -> None:
        self.progress = progress or (lambda event: None)
        if mode not in MODES:
            raise AlbumError(f"unknown album mode {mode!r}; choose one of: {', '.join(MODES)}")
        self.out = Path(out)
        self.mode = mode
        self.root = None
        self._root_fd: int | None = None
        self._folder_fds: dict[str, int] = {}
        self._journal = None

    def write(self, plan: dict[str, tuple[str, int | None]]) -> AlbumSummary:
        from faceclust.locks import FileLock

        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise AlbumError(f"{printable(self.out)} exists and is not a folder; choose another album folder") from None
        self.root = self.out.resolve()
        with FileLock(self.root / LOCK, f"the album folder {printable(self.out)}"):
            self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
            try:
                return self._write(plan)
            finally:
                self._close()

    def _write(self, plan: dict[str, tuple[str, int | None]]) -> AlbumSummary:
        remove_stale_temps(self._root_fd, MANIFEST)  # a killed run's half-written manifest (lock held)
        had_manifest = self._own_file(MANIFEST) is not None
        manifest = self._load_manifest()
        old_folders = {rel.split("/", 1)[0] for rel in manifest}
        old_folders |= self._replay_journal(manifest)
        if not had_manifest:
            self._save_manifest(manifest)  # from the first moment, scans know OUT for an album folder
        # The replay saved what the journal said; this run's journal starts empty.
        self._journal = os.fdopen(self._open_own(JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w",
                                  encoding="utf-8")
        summary = AlbumSummary(people=len({p for _, p in plan.values() if p is not None}))
        for rel in sorted(set(manifest) - set(plan)):
            self._remove(rel, manifest, summary)
        total, last = len(plan), 0.0
        self.progress(ProgressEvent("albums", 0, total))
        for done, (rel, (source, _person)) in enumerate(sorted(plan.items()), 1):
            if time.monotonic() - last > 0.2 or done == total:
                last = time.monotonic()
                self.progress(ProgressEvent("albums", done, total))
            entry = manifest.get(rel)
            if entry and entry["source"] == source and self._still_ours(rel, entry):
                summary.kept += 1
                continue
            if entry:
                self._remove(rel, manifest, summary)
            self._create(rel, source, manifest, summary)
        self._remove_empty_folders(old_folders - {rel.split("/", 1)[0] for rel in manifest})
        self._save_manifest(manifest)
        self._journal.close()
        self._journal = None
        os.unlink(JOURNAL, dir_fd=self._root_fd)
        return summary

    def _close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        for fd in self._folder_fds.values():
            os.close(fd)
        self._folder_fds.clear()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    # -- folders, never through a symlink ------------------------------------------------------

    def _folder(self, name: str, create: bool = False) -> int:
        """A descriptor of OUT/name, a real folder (a symlink there is refused)."""
        if name in self._folder_fds:
            return self._folder_fds[name]
        if "/" in name or name in ("", ".", ".."):
            raise AlbumError(f"refusing a folder name outside {printable(self.root)}: {printable(name)}")
        if create:
            try:
                os.mkdir(name, 0o777, dir_fd=self._root_fd)
            except FileExistsError:
                pass
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(name, flags, dir_fd=self._root_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise AlbumError(f"{printable(name)} in {printable(self.root)} is not a folder made by faceclust "
                                 "(a symlink or a file); left as it is") from None
            raise
        self._folder_fds[name] = fd
        return fd

    @staticmethod
    def _split(rel: str) -> tuple[str, str]:
        folder, _, name = rel.partition("/")
        if not name or "/" in name or name in (".", ".."):
            raise AlbumError(f"refusing an album entry outside its folder: {printable(rel)}")
        return folder, name

    def _lstat(self, rel: str) -> os.stat_result | None:
        folder, name = self._split(rel)
        try:
            return os.stat(name, dir_fd=self._folder(folder), follow_symlinks=False)
        except (FileNotFoundError, AlbumError):
            return None

    # -- files ---------------------------------------------------------------------------------

    def _log(self, record: dict) -> None:
        self._journal.write(json.dumps(record) + "\n")
        self._journal.flush()  # in the kernel before the file exists: survives a kill

    def _create(self, rel: str, source: str, manifest: dict, summary: AlbumSummary) -> None:
        try:
            folder, name = self._split(rel)
            fd = self._folder(folder, create=True)
            if self._lstat(rel) is not None:
                summary.errors.append((rel, "a file not made by faceclust is in the way; left as it is"))
                return
            tmp = f"{_TMP_PREFIX}{os.urandom(6).hex()}" if self.mode != "symlink" else None
            self._log({"add": rel, "source": source, "mode": self.mode, "tmp": tmp})
            mode = self._place(source, fd, name, tmp)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            manifest[rel] = {"source": source, "mode": mode, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            self._log({"added": rel, **manifest[rel]})
            summary.added += 1
        except FileExistsError:
            summary.errors.append((rel, "a file not made by faceclust is in the way; left as it is"))
        except (OSError, FaceclustError) as exc:
            summary.errors.append((rel, _reason(exc)))

    def _place(self, source: str, fd: int, name: str, tmp: str | None) -> str:
        """Make ``name`` in the folder ``fd``; never replaces anything already there."""
        if self.mode == "symlink":
            os.symlink(os.path.abspath(source), name, dir_fd=fd)
            return "symlink"
        if self.mode == "hardlink":
            try:
                os.link(source, name, dst_dir_fd=fd)
                return "hardlink"
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP):
                    raise
                # Another filesystem: a copy is the closest thing that works.
        copy_regular_file(source, tmp, fd)
        try:
            os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)  # fails if something appeared there
            os.unlink(tmp, dir_fd=fd)
        except FileExistsError:
            os.unlink(tmp, dir_fd=fd)
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                os.unlink(tmp, dir_fd=fd)
                raise
            # No hard links here (FAT, some SMB shares): rename, checked just before.
            try:
                os.stat(name, dir_fd=fd, follow_symlinks=False)
                os.unlink(tmp, dir_fd=fd)
                raise FileExistsError(errno.EEXIST, "exists", name) from None
            except FileNotFoundError:
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        return "copy"

    def _still_ours(self, rel: str, entry: dict) -> bool:
        """Is the file at ``rel`` the one we made (not replaced or edited by the user)?"""
        st = self._lstat(rel)
        if st is None:
            return False
        if entry["mode"] == "symlink":
            folder, name = self._split(rel)
            return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=self._folder(folder)) == os.path.abspath(entry["source"])
        return (stat.S_ISREG(st.st_mode) and st.st_size == entry.get("size")
                and st.st_mtime_ns == entry.get("mtime_ns"))

    def _remove(self, rel: str, manifest: dict, summary: AlbumSummary) -> None:
        entry = manifest.pop(rel)
        if not self._still_ours(rel, entry):
            return  # changed or gone since we made it: not ours to delete any more
        try:
            folder, name = self._split(rel)
            self._log({"remove": rel})
            os.unlink(name, dir_fd=self._folder(folder))
            summary.removed += 1
        except (OSError, AlbumError) as exc:
            summary.errors.append((rel, _reason(exc)))

    def _remove_empty_folders(self, folders: set[str]) -> None:
        """Folders this module made that no longer hold an album entry."""
        for name in folders:
            fd = self._folder_fds.pop(name, None)
            if fd is not None:
                os.close(fd)
            try:
                os.rmdir(name, dir_fd=self._root_fd)  # only when empty, never through a symlink
            except OSError:
                pass

    # -- manifest and journal -------------------------------------------------------------------

    def _open_own(self, name: str, flags: int) -> int:
        """A descriptor of faceclust's own file ``name`` in OUT: never through a symlink, never
        blocking on a FIFO planted there, a regular file or an :class:`AlbumError`."""
        path = self.root / name
        flags |= os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(name, flags, 0o666, dir_fd=self._root_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                raise AlbumError(f"{printable(path)} is not faceclust's file (a symbolic link, FIFO or folder "
                                 "is in its place); move it away") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise AlbumError(f"{printable(path)} is not faceclust's file (not a regular file); move it away")
        os.set_blocking(fd, True)
        return fd

    def _own_file(self, name: str) -> str | None:
        """The text of faceclust's file ``name`` in OUT, or None when there is none."""
        try:
            fd = self._open_own(name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def _load_manifest(self) -> dict:
        text = self._own_file(MANIFEST)
        if text is None:
            return {}
        try:
            return dict(json.loads(text).get("entries", {}))
        except (ValueError, AttributeError) as exc:
            raise AlbumError(f"the album manifest {printable(self.root / MANIFEST)} is unreadable ({exc}); "
                             "move it away to start afresh") from exc

    def _replay_journal(self, manifest: dict) -> set[str]:
        """Finish the bookkeeping of a run that was killed: what it made is ours, what it was
        making is cleaned up. Returns the folders the journal names (for empty-folder cleanup)."""
        text = self._own_file(JOURNAL)
        if text is None:
            return set()
        pending: dict[str, dict] = {}
        folders: set[str] = set()
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line being written when the run was killed
            if not isinstance(record, dict):
                continue
            rel = record.get("add") or record.get("added") or record.get("remove")
            if isinstance(rel, str):
                folders.add(rel.split("/", 1)[0])
            if "add" in record:
                pending[record["add"]] = record
            elif "added" in record:
                pending.pop(record["added"], None)
                manifest[record["added"]] = {k: record[k] for k in ("source", "mode", "size", "mtime_ns")}
            elif "remove" in record:
                if self._lstat(record["remove"]) is None:
                    manifest.pop(record["remove"], None)
        for rel, record in pending.items():
            self._settle(rel, record, manifest)
        self._save_manifest(manifest)
        return folders

    def _settle(self, rel: str, record: dict, manifest: dict) -> None:
        try:
            folder, name = self._split(rel)
            fd = self._folder(folder)
        except (OSError, AlbumError):
            return
        if record.get("tmp"):
            try:
                os.unlink(record["tmp"], dir_fd=fd)
            except OSError:
                pass
        st = self._lstat(rel)
        if st is None:
            return
        source = record["source"]
        mode = None  # what was made, if it is ours
        try:
            if record["mode"] == "symlink":
                if stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=fd) == os.path.abspath(source):
                    mode = "symlink"
            elif stat.S_ISREG(st.st_mode):
                src = os.stat(source)
                if (st.st_dev, st.st_ino) == (src.st_dev, src.st_ino):
                    mode = "hardlink"
                elif st.st_size == src.st_size:  # a copy linked into place (made whole, never partial)
                    mode = "copy"
        except OSError:
            mode = None
        if mode is not None:
            manifest[rel] = {"source": source, "mode": mode, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def _save_manifest(self, manifest: dict) -> None:
        # ensure_ascii: a photo path that is not UTF-8 is kept exactly, as \udcXX escapes.
        atomic_write(self.root / MANIFEST, json.dumps({"version": 1, "entries": manifest}, indent=0))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        from faceclust.files import describe_os_error

        return describe_os_error(exc, "cannot write")
    return str(exc)


def write_albums(catalog_path, out: Path, mode: str = "symlink", include_unknown: bool = False,
                 skip_duplicates: bool = False, progress=None) -> AlbumSummary:
    """Write (or update) one folder per visible person under ``out``; with ``skip_duplicates``
    only one photo of each group of duplicate photos is placed."""
    from faceclust.catalog import Catalog

    writer = AlbumWriter(out, mode, progress)  # validates the mode before any work
    leave_out: frozenset[str] = frozenset()
    if skip_duplicates:
        from faceclust.find.dedupe import photos_to_leave_out

        leave_out = frozenset(photos_to_leave_out(catalog_path))
    with Catalog(catalog_path, create=False) as catalog:
        rows = catalog.person_faces()
        check_outside_photos(out, (row[2] for row in rows))
        plan = plan_albums(rows, catalog.people(), include_unknown, leave_out)
    return writer.write(plan)


