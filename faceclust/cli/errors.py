"""Errors become one line and an exit code; no traceback ever reaches a user.

Exit codes (restic's convention, documented in ``faceclust --help`` and the README):

    0    all good
    1    the run failed (nothing was lost: run it again once the cause is fixed)
    2    usage error (a bad option, a path that does not exist)
    3    finished, but some files could not be read (or album entries written)
    130  stopped by Ctrl-C or SIGTERM; progress is saved, run again to continue
"""

from __future__ import annotations

import errno
import os
import sqlite3

import click

from faceclust.errors import FaceclustError
from faceclust.text import printable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_STOPPED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "Exit codes: 0 all good; 1 the run failed; 2 usage error; 3 finished, but some files "
    "could not be read; 130 stopped (Ctrl-C or SIGTERM), progress saved."
)

_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and run again",
    errno.EDQUOT: "the disk quota is used up; free some space and run again",
    errno.EACCES: "permission denied; check the permissions or choose another place",
    errno.EPERM: "operation not permitted; check the permissions or choose another place",
    errno.ENOENT: "no such file or folder; check the path (a folder to write into must exist)",
    errno.EROFS: "the filesystem is read-only; choose a writable place",
    errno.ENOTDIR: "a part of the path is not a folder; check the path",
    errno.EISDIR: "that is a folder; give a file name",
    errno.EEXIST: "a file is in the way (is a part of the path a file, not a folder?); check the path",
    errno.ELOOP: "a symbolic link is in the way (faceclust does not follow one here); remove it",
    errno.ENAMETOOLONG: "the name is too long for the filesystem",
    errno.EIO: "input/output error (a failing disk or share?); check the disk and run again",
}


class CommandError(click.ClickException):
    """A one-line ``Error: ...`` with our exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(printable(message))
        self.exit_code = exit_code


class Stopped(click.ClickException):
    exit_code = EXIT_STOPPED

    def __init__(self) -> None:
        super().__init__("stopped; progress saved, run again to continue")

    def show(self, file=None) -> None:
        click.echo(self.message, err=True)


def os_error_message(exc: OSError) -> str:
    """``/missing/dir/r.html: no such file or folder; check the path...``"""
    reason = _OS_HINTS.get(exc.errno) or (exc.strerror or str(exc))
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n is not None]
    where = " -> ".join(printable(os.fsdecode(n) if isinstance(n, bytes) else n) for n in names)
    return f"{where}: {reason}" if where else reason


def sqlite_error_message(exc: sqlite3.Error, catalog) -> str:
    text = str(exc)
    where = f"the catalog {catalog}" if catalog else "the catalog"
    if "full" in text:
        return (f"the disk holding {where} is full; free some space and run again "
                "(the catalog is intact: each batch is saved whole or not at all)")
    if "locked" in text or "busy" in text:
        return f"{where} is busy: another faceclust process is writing to it; try again when it ends"
    if "readonly" in text or "read-only" in text:
        return f"{where} is read-only here; this command needs to write to it (check its permissions)"
    if "disk I/O" in text or "unable to open" in text:
        return f"{where} cannot be read or written ({text}); check the disk and its permissions"
    if "not a database" in text or "malformed" in text:
        return f"{where} is damaged or not a faceclust catalog ({text}); restore it from a backup"
    return f"{where}: {text}"


def translate(exc: BaseException, catalog=None) -> click.ClickException | None:
    """The click exception to raise for ``exc``; None to let it through (click's own)."""
    if isinstance(exc, (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit)):
        return None  # click's own, or an exit already decided (rich exits on a broken pipe)
    if isinstance(exc, KeyboardInterrupt):
        return Stopped()
    if isinstance(exc, FaceclustError):
        return CommandError(str(exc), exc.exit_code)
    if isinstance(exc, OSError):
        return CommandError(os_error_message(exc))
    if isinstance(exc, sqlite3.Error):
        return CommandError(sqlite_error_message(exc, catalog))
    if isinstance(exc, MemoryError):
        return CommandError("not enough memory; close other programs or work on fewer photos at a time")
    if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError):
        return click.UsageError(printable(str(exc)))  # the library's parameter checks
    if os.environ.get("FACECLUST_DEBUG"):
        return None
    return CommandError(f"internal error ({type(exc).__name__}: {exc}); this is a bug in faceclust, "
                        "please report it (FACECLUST_DEBUG=1 shows the details)")
