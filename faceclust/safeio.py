"""Reading photos and writing outputs without the ways files can hurt a batch job.

* :func:`read_photo_bytes` opens without blocking (a FIFO or a device planted where a photo
  was never hangs the open), reads only regular files, bounds the size, and gives up on a read
  that stops making progress (a hung network share) instead of waiting forever.
* :func:`atomic_write` writes a whole file or nothing: a new temporary file created with
  ``O_CREAT|O_EXCL`` in the target's folder (a symlink planted at a predictable temporary name
  cannot redirect the write), flushed to disk, then renamed over the target (a symlink at the
  target is replaced, never followed).

No models, no SQL; typed errors only (:class:`ImageError` for a photo, ``OSError`` for outputs).
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Iterable

from faceclust.errors import ImageError
from faceclust.text import printable

# A photo read that delivers no data for this long is abandoned (the scan goes on). A 12 MP
# JPEG arrives in well under a second even from a slow share; a minute of nothing is a hang.
READ_STALL_SECONDS = 60.0
# Bigger files are not read: the biggest photo formats (a 100 MP 16-bit TIFF) stay below this.
MAX_PHOTO_BYTES = 1 << 30
_CHUNK = 1 << 20

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_photo_bytes(path: str | os.PathLike, *, stall_seconds: float | None = None,
                     max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``; every failure is an :class:`ImageError`.

    The open and the reads run on a helper thread, so a read stuck in the kernel (an NFS or SMB
    share that stopped answering) costs this call ``stall_seconds`` and no more; the helper
    is a daemon thread and never keeps the process alive.
    """
    stall = READ_STALL_SECONDS if stall_seconds is None else stall_seconds
    limit = MAX_PHOTO_BYTES if max_bytes is None else max_bytes
    job = _READERS.submit(os.fspath(path), limit)
    seen = -1
    while not job.done.wait(stall):
        if job.progress == seen:
            raise ImageError(f"no data for {stall:g} s (a slow or unresponsive network share?); "
                             "skipped, the next scan tries again")
        seen = job.progress
    if job.error is not None:
        raise job.error
    return job.data


class _ReadJob:
    def __init__(self, path: str, limit: int) -> None:
        self.path, self.limit = path, limit
        self.progress = 0
        self.data: bytes | None = None
        self.error: ImageError | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.data = _read(self.path, self.limit, self)
        except ImageError as exc:
            self.error = exc
        except OSError as exc:
            self.error = ImageError(describe_os_error(exc, "cannot read file"))
        except MemoryError:
            self.error = ImageError("not enough memory to read this file")
        finally:
            self.done.set()


class _ReaderPool:
    """Daemon threads that do the reads. A thread stuck in the kernel is simply never idle
    again: the next read starts a new one, and a stuck thread never keeps the process alive."""

    def __init__(self) -> None:
        import queue

        self._jobs: "queue.SimpleQueue[_ReadJob]" = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, path: str, limit: int) -> _ReadJob:
        job = _ReadJob(path, limit)
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._work, name="faceclust-read", daemon=True).start()
        self._jobs.put(job)
        return job

    def _work(self) -> None:
        while True:
            self._jobs.get().run()
            with self._lock:
                self._idle += 1


_READERS = _ReaderPool()


def _read(path: str, limit: int, job: "_ReadJob") -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)  # of what was opened, not of what the walk saw
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{file_kind(st.st_mode)}, not a photo file; skipped")
        if st.st_size > limit:
            raise ImageError(f"file is too large ({st.st_size / 2**30:.1f} GiB; photos up to "
                             f"{limit / 2**30:.0f} GiB are read)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise ImageError(f"file is too large (over {limit / 2**30:.0f} GiB)")
            chunks.append(chunk)
            job.progress += 1
        return b"".join(chunks)
    finally:
        os.close(fd)


def describe_os_error(exc: OSError, what: str = "cannot read") -> str:
    """``cannot read: permission denied`` and the like: the reason in words, no path (the
    caller names the file)."""
    import errno

    reason = (exc.strerror or str(exc)).rstrip(".")
    hints = {errno.ELOOP: "symbolic link loop", errno.ENAMETOOLONG: "name too long"}
    if exc.errno in hints:
        reason = hints[exc.errno]
    return f"{what}: {reason[:1].lower()}{reason[1:]}"


_UMASK: int | None = None


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it)."""
    global _UMASK
    if _UMASK is None:
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as status:
                _UMASK = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
        except (OSError, StopIteration, ValueError, IndexError):
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return _UMASK


def atomic_write(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``data`` in one step (all or nothing, even after a kill).

    Raises ``OSError`` naming ``path`` (its folder is missing or not writable, the disk is
    full...), never the temporary file's name.
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    target = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:40]}.", suffix=".tmp", dir=target.parent or ".")
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, os.fspath(target)) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def protect_inputs(output: str | os.PathLike, protected: "Iterable[str | os.PathLike]" = ()) -> None:
    """Refuse an output path that would overwrite what faceclust reads: one of ``protected``
    (a catalog and the files beside it, a catalogued photo), or any existing file named like a
    photo. Raises :class:`OutputError`."""
    from faceclust.errors import OutputError
    from faceclust.scan import IMAGE_EXTENSIONS

    real = os.path.realpath(output)
    for path in protected:
        if real == os.path.realpath(path):
            raise OutputError(f"{printable(output)} is {printable(path)}, which faceclust reads (a catalog, its "
                              "index or a photo); choose another file to write")
    if os.path.lexists(output) and Path(output).suffix.lower() in IMAGE_EXTENSIONS:
        raise OutputError(f"{printable(output)} exists and is named like a photo; faceclust never writes over "
                          "photos, choose another file name")


def copy_regular_file(source: str | os.PathLike, name: str, dir_fd: int) -> None:
    """Copy the regular file ``source`` to a new file ``name`` in the folder ``dir_fd``
    (created with O_EXCL|O_NOFOLLOW: never through something already there), with its
    permission bits and times, flushed to disk. Raises OSError or ImageError."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    src = os.open(source, flags)
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{file_kind(st.st_mode)}, not a photo file; not copied")
        os.set_blocking(src, True)
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                      0o600, dir_fd=dir_fd)
        try:
            while True:
                chunk = os.read(src, _CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view):]
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(dst)
        except BaseException:
            os.close(dst)
            dst = -1
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        finally:
            if dst >= 0:
                os.close(dst)
    finally:
        os.close(src)
