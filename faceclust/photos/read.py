"""Reading photo files without the ways a file can hang a batch job.

:func:`read_photo_bytes` opens without blocking (a FIFO or a device planted where a photo was
never hangs the open), reads only regular files, bounds the size, and gives up on a read that
stops making progress (a hung network share) instead of waiting forever.
"""

from __future__ import annotations

import os
import stat
import threading

from faceclust.errors import ImageError
from faceclust.files import CHUNK, describe_os_error, file_kind

# A photo read that delivers no data for this long is abandoned (the scan goes on). A 12 MP
# JPEG arrives in well under a second even from a slow share; a minute of nothing is a hang.
READ_STALL_SECONDS = 60.0


# Bigger files are not read: the biggest photo formats (a 100 MP 16-bit TIFF) stay below this.
MAX_PHOTO_BYTES = 1 << 30


def read_photo_bytes(path: str | os.PathLike, *, stall_seconds: float | None = None,
                     max_bytes: int | None = None, head: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``; every failure is an :class:`ImageError`.

    The open and the reads run on a helper thread, so a read stuck in the kernel (an NFS or SMB
    share that stopped answering) costs this call ``stall_seconds`` and no more; the helper
    is a daemon thread and never keeps the process alive. ``head``: only the first ``head``
    bytes (for metadata), whatever the file's size.
    """
    stall = READ_STALL_SECONDS if stall_seconds is None else stall_seconds
    limit = MAX_PHOTO_BYTES if max_bytes is None else max_bytes
    job = _READERS.submit(os.fspath(path), limit, head)
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
    def __init__(self, path: str, limit: int, head: int | None = None) -> None:
        self.path, self.limit, self.head = path, limit, head
        self.progress = 0
        self.data: bytes | None = None
        self.error: ImageError | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.data = _read(self.path, self.limit, self, self.head)
        except ImageError as exc:
            self.error = exc
        except OSError as exc:
            self.error = ImageError(describe_os_error(exc, "cannot read file"))
        except MemoryError:
            self.error = ImageError("not enough memory to read this file")
        except Exception as exc:  # noqa: BLE001 - never a None that looks like data
            self.error = ImageError(f"unexpected error while reading ({type(exc).__name__}: {exc})")
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

    def submit(self, path: str, limit: int, head: int | None = None) -> _ReadJob:
        job = _ReadJob(path, limit, head)
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


def _read(path: str, limit: int, job: "_ReadJob", head: int | None = None) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)  # of what was opened, not of what the walk saw
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{file_kind(st.st_mode)}, not a photo file; skipped")
        if head is not None:
            limit = head
        elif st.st_size > limit:
            raise ImageError(f"file is too large ({st.st_size / 2**30:.1f} GiB; photos up to "
                             f"{limit / 2**30:.0f} GiB are read)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, CHUNK if head is None else min(CHUNK, head - total))
            if not chunk:
                break
            total += len(chunk)
            if head is not None and total >= head:
                chunks.append(chunk)
                break
            if total > limit:
                raise ImageError(f"file is too large (over {limit / 2**30:.0f} GiB)")
            chunks.append(chunk)
            job.progress += 1
        return b"".join(chunks)
    finally:
        os.close(fd)
