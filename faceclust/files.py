"""Writing outputs without the ways files can hurt: whole or nothing, never through a symlink.

* :func:`atomic_write` writes a whole file or nothing: a new temporary file created with
  ``O_CREAT|O_EXCL`` in the target's folder (a symlink planted at a predictable temporary name
  cannot redirect the write), flushed to disk, then renamed over the target (a symlink at the
  target is replaced, never followed).
* :func:`copy_regular_file` copies into a new file that nothing can be planted at.
* :func:`file_kind` and :func:`describe_os_error` put file problems in words.

The bottom layer: imports nothing of faceclust but errors and text.
"""

from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from faceclust.errors import ImageError

CHUNK = 1 << 20

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def cache_dir() -> Path:
    """``$FACECLUST_CACHE``, else ``$XDG_CACHE_HOME/faceclust`` (``~/.cache/faceclust``): what
    faceclust can rebuild (training features, thumbnails), never anything the user made."""
    env = os.environ.get("FACECLUST_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "faceclust"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


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


def temp_name_prefix(path: str | os.PathLike) -> str:
    """How the temporary files :func:`atomic_file` makes for ``path`` begin (they end ``.tmp``)."""
    return f".{Path(path).name[:40]}."


def remove_stale_temps(dir_fd: int, name: str) -> None:
    """Remove what killed :func:`atomic_file` writes of ``name`` left in the folder ``dir_fd``
    (their half-written temporary files). Only for a caller holding the folder's lock: no
    other writer of ``name`` may be running."""
    prefix = temp_name_prefix(name)
    with os.scandir(dir_fd) as entries:
        stale = [e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(".tmp")
                 and e.is_file(follow_symlinks=False)]
    for stale_name in stale:
        try:
            os.unlink(stale_name, dir_fd=dir_fd)
        except OSError:
            pass


@contextmanager
def atomic_file(path: str | os.PathLike):
    """``with atomic_file(path) as handle:`` a binary file that becomes ``path`` in one step
    when the block ends without an error (all or nothing, even after a kill); written as it
    goes, so a large output is never held in memory. Raises ``OSError`` naming ``path`` (its
    folder is missing or not writable, the disk is full...), never the temporary file's name."""
    target = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_name_prefix(target), suffix=".tmp", dir=target.parent or ".")
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            yield handle
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


def atomic_write(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``data`` in one step (see :func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(data.encode(encoding) if isinstance(data, str) else data)


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
                chunk = os.read(src, CHUNK)
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
