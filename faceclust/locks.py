"""Locks between faceclust processes: one writer at a time where two would step on each other.

SQLite already serialises single transactions. These locks cover what spans many
transactions: a scan (two scans of one catalog would both do all the work and fight over
moved photos), the people (a clustering run reads the faces, thinks, then writes; a decision
made meanwhile must not be overwritten), and an album folder (two ``albums`` runs would both
create and remove the same links).

Each lock is an advisory ``flock`` on a small file beside what it protects, holding the pid and
command of its holder. The kernel drops it when the process ends, however it ends (SIGKILL,
power cut), so a lock is never left stale. A second process waits, says once who it is waiting
for, and gives up with :class:`LockTimeout` after ``FACECLUST_LOCK_WAIT`` seconds
(default 600).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Callable

from faceclust.errors import LockTimeout, UsageProblem


class LockError(UsageProblem):
    """Something that is not faceclust's lock file is where it keeps one."""

DEFAULT_WAIT_SECONDS = 600.0
POLL_SECONDS = 0.2

# The command line sets this to print "waiting for ..." on stderr; the library stays silent.
on_wait: Callable[[str], None] = lambda message: None  # noqa: E731
# What the holder file says this process is doing (the command line sets the command name).
current_command = "faceclust"


def wait_seconds() -> float:
    value = os.environ.get("FACECLUST_LOCK_WAIT")
    try:
        return max(0.0, float(value)) if value else DEFAULT_WAIT_SECONDS
    except ValueError:
        return DEFAULT_WAIT_SECONDS


class FileLock:
    """``with FileLock(path, "this catalog"):`` holds an exclusive lock on ``path``.

    Re-entrant within one process (``run`` holds the scan lock and the people lock; a
    library call inside another that holds the lock does not wait for itself).
    """

    _held: dict[str, int] = {}

    def __init__(self, path: str | os.PathLike, what: str, timeout: float | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.what = what
        self.timeout = wait_seconds() if timeout is None else timeout
        self.fd: int | None = None
        self._nested = False

    def __enter__(self) -> "FileLock":
        import fcntl

        if self.path in FileLock._held:
            FileLock._held[self.path] += 1
            self._nested = True
            return self
        flags = (os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_NONBLOCK", 0))
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES):
                return self  # a read-only place: nobody can write there either
            if exc.errno == errno.ELOOP:
                raise LockError(f"{self.path} is a symbolic link where faceclust keeps its lock file; "
                                "remove it") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockError(f"{self.path} is not faceclust's lock file (not a regular file); remove it")
        started = time.monotonic()
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if not said:
                    on_wait(f"waiting for another faceclust run on {self.what} ({holder})...")
                    said = True
                if time.monotonic() - started >= self.timeout:
                    os.close(fd)
                    raise LockTimeout(
                        f"{self.what} is busy: another faceclust run ({holder}) has held it for "
                        f"over {self.timeout:.0f} s; try again when it ends "
                        "(FACECLUST_LOCK_WAIT sets how long to wait)") from None
                time.sleep(POLL_SECONDS)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {current_command}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, self.path) from exc
        self.fd = fd
        FileLock._held[self.path] = 1
        return self

    def held_elsewhere(self) -> str | None:
        """Who holds this lock now (another process), without taking it; None if nobody."""
        import fcntl

        if self.path in FileLock._held:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        return None

    def __exit__(self, *exc) -> None:
        if self._nested:
            FileLock._held[self.path] -= 1
            return
        if self.fd is None:
            return
        FileLock._held.pop(self.path, None)
        os.close(self.fd)  # closing releases the flock
        self.fd = None


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def catalog_lock(catalog_path: str | os.PathLike, part: str) -> FileLock:
    """The lock on one part of a catalog: ``scan`` or ``people``."""
    path = Path(catalog_path)
    what = {"scan": f"the catalog {path}", "people": f"the people of the catalog {path}"}.get(part, f"{path} ({part})")
    return FileLock(path.with_name(f"{path.name}.{part}.lock"), what)
