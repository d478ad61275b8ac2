"""A consistent copy of a catalog while other runs write to it (SQLite's online backup)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from faceclust.errors import UsageProblem
from faceclust.text import printable


def backup_catalog(source: Path | str, destination: Path | str) -> int:
    """Copy the catalog at ``source`` to the new file ``destination`` with SQLite's online
    backup: one consistent snapshot, even while another process writes to the catalog. The
    copy is checked, then renamed into place; an existing file is never overwritten.
    Returns the copy's size in bytes."""
    import tempfile

    from faceclust.errors import OutputError

    destination = Path(destination)
    if os.path.lexists(destination):
        raise UsageProblem(f"{printable(destination)} exists already; a backup never overwrites a file, "
                           "choose a new name")
    from faceclust.catalog import Catalog

    with Catalog(source, create=False) as catalog:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{destination.name[:40]}.", suffix=".tmp",
                                       dir=destination.parent if str(destination.parent) else ".")
        except OSError as exc:  # named after the backup asked for, not the temporary file
            raise OSError(exc.errno, exc.strerror, os.fspath(destination)) from exc
        os.close(fd)
        try:
            copy = sqlite3.connect(tmp)
            try:
                catalog.db.backup(copy)  # every page in one step: a single read snapshot
                check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                copy.close()
            if check != "ok":
                raise OutputError(f"the backup of {catalog.path} did not check out ({check}); nothing was written")
            os.replace(tmp, destination)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    return destination.stat().st_size
