"""SQL helpers every part of the catalog shares: lossless path binding, float32 BLOBs, migration
scripts split into statements, and the transaction every write runs in."""

from __future__ import annotations

import sqlite3

import numpy as np

# How long a write waits for another process's transaction (a scan batch, a clustering run's
# final write) before the command fails with "the catalog is busy".
BUSY_SECONDS = 60.0


def statements(script: str) -> list[str]:
    """The statements of a migration script (triggers hold ';' inside BEGIN ... END)."""
    out, current = [], ""
    for piece in script.split(";"):
        current += piece
        if sqlite3.complete_statement(current + ";"):
            if current.strip():
                out.append(current.strip())
            current = ""
        else:
            current += ";"
    if current.strip():
        out.append(current.strip())
    return out


def sql_path(path: str) -> str | bytes:
    """A path as it is bound to SQL: as text, or, when it is not valid UTF-8 (a file name in
    Latin-1 from an old camera or a Windows share, which Python holds as surrogate escapes),
    its raw bytes, which SQL turns into text with ``CAST(? AS TEXT)``. Read back through the
    connection's text factory, the path is exactly the ``str`` that os.fsdecode gives."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape")


def text_factory(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (nested use is flattened)."""

    BEGIN = "BEGIN IMMEDIATE"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self):
        if not self.db.in_transaction:
            self.db.execute(self.BEGIN)
            self.outer = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")


class Snapshot(Transaction):
    """A deferred BEGIN ... COMMIT around reads, so they see one state of the catalog without
    taking the write lock; inside a transaction already, nothing more is done."""

    BEGIN = "BEGIN"


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '\\'``, with ``%``, ``_`` and ``\\`` in ``text`` matched as
    themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def column_arrays(cursor, dtypes: tuple) -> list[np.ndarray]:
    """A query's columns as arrays of ``dtypes``, fetched in blocks."""
    blocks: list[list[np.ndarray]] = [[] for _ in dtypes]
    while rows := cursor.fetchmany(65536):
        for out, column, dtype in zip(blocks, zip(*rows), dtypes):
            out.append(np.array(column, dtype))
    return [np.concatenate(b) if b else np.zeros(0, d) for b, d in zip(blocks, dtypes)]
