"""The catalog's history: every decision and clustering run, and exactly what undoes it.

Part of the catalog (the only SQL): :class:`HistoryMixin` is mixed into ``Catalog``.

How an entry records its changes: while a recorded transaction runs, the one row of the
``recording`` table names its history entry, and triggers on the people tables copy every
row they insert, change or delete into ``undo_log`` (the old row as JSON). Outside recorded
transactions (a scan's batches) the table is empty and the triggers do nothing. The row is
written and removed inside the transaction, so no other connection ever sees it.

Undo replays an entry's log backwards: an inserted row is deleted, a changed or deleted row
is written back as it was (values are kept untyped, so a time comes back to the last bit).
Foreign keys are checked at the end, and a restored row whose face
has gone since (a photo deleted or edited and scanned again) is left out and counted.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from faceclust.errors import NotFound, UsageProblem

# table -> (primary key columns, every column), for the tables whose changes are undoable
LOGGED_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "people": (("id",), ("id", "name", "hidden", "created_at", "updated_at")),
    "assignments": (("face_id",), ("face_id", "person_id", "source", "updated_at")),
    "rejections": (("face_id", "person_id"), ("face_id", "person_id", "at")),
    "merges": (("old_id",), ("old_id", "new_id", "at")),
    "clustered": (("face_id",), ("face_id",)),
    "apart": (("person_a", "person_b"), ("person_a", "person_b", "at")),
}
# The tables of migration 5 (the history itself); later ones add their own triggers.
_HISTORY_TABLES = ("people", "assignments", "rejections", "merges", "clustered")
# Rows that point at faces and people: restored only where those still exist.
_REFERENCES = {"assignments": ("face_id", "person_id"), "rejections": ("face_id", "person_id"),
               "clustered": ("face_id", None)}
# The undo data of older entries is dropped (their history line stays): undo reaches this far.
UNDO_DEPTH = 200
DECISION_KINDS = ("name", "merge", "move", "reject", "hide", "show", "apart")


_MAX_KEYS = max(len(k) for k, _ in LOGGED_TABLES.values())
_MAX_COLS = max(len(c) for _, c in LOGGED_TABLES.values())


def _triggers(tables) -> str:
    parts = []
    key_cols = ", ".join(f"k{i}" for i in range(_MAX_KEYS))
    old_cols = ", ".join(f"c{i}" for i in range(_MAX_COLS))
    for table in tables:
        keys, cols = LOGGED_TABLES[table]
        def values(prefix, names, width):
            return ", ".join([f"{prefix}.{n}" for n in names] + ["NULL"] * (width - len(names)))

        for op, key, old in (("insert", values("NEW", keys, _MAX_KEYS), None),
                             ("update", values("NEW", keys, _MAX_KEYS), values("OLD", cols, _MAX_COLS)),
                             ("delete", values("OLD", keys, _MAX_KEYS), values("OLD", cols, _MAX_COLS))):
            old = old or ", ".join(["NULL"] * _MAX_COLS)
            parts.append(f"""
    CREATE TRIGGER {table}_undo_{op} AFTER {op.upper()} ON {table}
    WHEN EXISTS (SELECT 1 FROM recording)
    BEGIN
        INSERT INTO undo_log(history_id, tbl, op, {key_cols}, {old_cols})
        SELECT history_id, '{table}', '{op}', {key}, {old} FROM recording;
    END;""")
    return "".join(parts)


HISTORY_SCHEMA = """
    CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        description TEXT NOT NULL,
        details TEXT,
        undone_by INTEGER,
        undoable INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE undo_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        history_id INTEGER NOT NULL REFERENCES history(id) ON DELETE CASCADE,
        tbl TEXT NOT NULL,
        op TEXT NOT NULL,
        -- the row's key after the change, and its values before (untyped: kept exactly)
        k0, k1, c0, c1, c2, c3, c4
    );
    CREATE INDEX undo_log_history ON undo_log(history_id);
    CREATE TABLE recording (history_id INTEGER NOT NULL);
""" + _triggers(_HISTORY_TABLES)

# Migration 8: pairs of people the user said are two people ("no" to a merge suggestion).
APART_SCHEMA = """
    CREATE TABLE apart (
        person_a INTEGER NOT NULL,
        person_b INTEGER NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (person_a, person_b)
    ) WITHOUT ROWID;
""" + _triggers(("apart",))


@dataclass
class Entry:
    """A history entry being recorded; ``description`` and ``details`` may be completed
    before the transaction ends."""

    id: int
    kind: str
    description: str
    details: dict = field(default_factory=dict)


@dataclass
class UndoResult:
    undone: list[dict]
    rows_restored: int = 0
    rows_lost: int = 0  # restored rows left out because their face or person is gone


class HistoryMixin:
    """History and undo; mixed into :class:`faceclust.catalog.Catalog` (uses ``self.db``)."""

    @contextmanager
    def recorded(self, kind: str, description: str, details: dict | None = None) -> Iterator[Entry]:
        """One transaction whose changes to people, assignments, rejections, merges and
        clustered faces become history entry ``kind`` (undoable as a whole)."""
        with self.transaction():
            cur = self.db.execute("INSERT INTO history(at, kind, description, details) VALUES (?, ?, ?, ?)",
                                  (time.time(), kind, description, None))
            entry = Entry(int(cur.lastrowid), kind, description, dict(details or {}))
            self.db.execute("INSERT INTO recording(history_id) VALUES (?)", (entry.id,))
            try:
                yield entry
            finally:
                self.db.execute("DELETE FROM recording")
            if not self.db.execute("SELECT 1 FROM undo_log WHERE history_id=? LIMIT 1", (entry.id,)).fetchone():
                # Nothing changed (a nightly clustering with nothing new): no entry, so that
                # 'undo' reverts what did change.
                self.db.execute("DELETE FROM history WHERE id=?", (entry.id,))
                return
            self.db.execute("UPDATE history SET description=?, details=? WHERE id=?",
                            (entry.description, json.dumps(entry.details, default=str), entry.id))
            self._forget_old_undo_data()

    def _forget_old_undo_data(self) -> None:
        row = self.db.execute("SELECT id FROM history WHERE undoable=1 ORDER BY id DESC LIMIT 1 OFFSET ?",
                              (UNDO_DEPTH,)).fetchone()
        if row is not None:
            self.db.execute("DELETE FROM undo_log WHERE history_id <= ?", (row[0],))
            self.db.execute("UPDATE history SET undoable=0 WHERE id <= ?", (row[0],))

    def history(self, limit: int | None = None) -> list[dict]:
        """History entries, newest first."""
        rows = self.db.execute(
            "SELECT id, at, kind, description, details, undone_by, undoable FROM history ORDER BY id DESC"
            + (" LIMIT ?" if limit else ""), (limit,) if limit else ()).fetchall()
        return [{"id": r[0], "at": r[1], "kind": r[2], "description": r[3],
                 "details": json.loads(r[4]) if r[4] else {}, "undone_by": r[5],
                 "undoable": bool(r[6]) and r[2] != "undo" and r[5] is None} for r in rows]

    def undo(self, back_to: int | None = None) -> UndoResult:
        """Revert the newest entry still in effect, or every entry from ``back_to`` on
        (newest first), in one transaction; the undo is itself a history entry."""
        with self.transaction():
            live = self.db.execute(
                "SELECT id, kind, description, undoable FROM history WHERE kind <> 'undo' AND undone_by IS NULL "
                "ORDER BY id DESC").fetchall()
            if back_to is None:
                if not live:
                    raise NotFound("nothing to undo: the history holds no decision or clustering run in effect")
                chosen = live[:1]
            else:
                row = self.db.execute("SELECT kind, undone_by FROM history WHERE id=?", (back_to,)).fetchone()
                if row is None:
                    raise NotFound(f"no history entry {back_to}; 'faceclust history' lists them")
                if row[0] == "undo":
                    raise UsageProblem(f"entry {back_to} is an undo itself; give the entry to go back to")
                if row[1] is not None:
                    raise UsageProblem(f"entry {back_to} was already undone (by entry {row[1]})")
                chosen = [r for r in live if r[0] >= back_to]
            too_old = [r[0] for r in chosen if not r[3]]
            if too_old:
                raise UsageProblem(f"entry {too_old[-1]} is too old to undo (the last {UNDO_DEPTH} entries "
                                   "can be undone)")
            ids = [r[0] for r in chosen]
            described = ", ".join(f"#{r[0]} {r[2]}" for r in chosen)
            cur = self.db.execute(
                "INSERT INTO history(at, kind, description, details, undoable) VALUES (?, 'undo', ?, ?, 0)",
                (time.time(), f"undo {described}", json.dumps({"undid": ids})))
            undo_id = int(cur.lastrowid)
            self.db.execute("PRAGMA defer_foreign_keys=ON")  # rows come back in any order
            result = UndoResult([{"id": r[0], "kind": r[1], "description": r[2]} for r in chosen])
            restored: list[tuple[str, dict]] = []
            for history_id in ids:  # newest first
                for tbl, op, *values in self.db.execute(
                        f"SELECT tbl, op, {', '.join(f'k{i}' for i in range(_MAX_KEYS))}, "
                        f"{', '.join(f'c{i}' for i in range(_MAX_COLS))} FROM undo_log "
                        "WHERE history_id=? ORDER BY seq DESC", (history_id,)).fetchall():
                    keys, cols = LOGGED_TABLES[tbl]
                    key = values[:len(keys)]
                    old = None if op == "insert" else values[_MAX_KEYS:_MAX_KEYS + len(cols)]
                    row = self._revert(tbl, op, key, old)
                    if row is not None:
                        restored.append((tbl, row))
                self.db.execute("UPDATE history SET undone_by=? WHERE id=?", (undo_id, history_id))
                self.db.execute("DELETE FROM undo_log WHERE history_id=?", (history_id,))
            result.rows_restored = len(restored)
            result.rows_lost = self._drop_dangling(restored)
            self.db.execute("UPDATE history SET details=? WHERE id=?",
                            (json.dumps({"undid": ids, "rows_restored": result.rows_restored,
                                         "rows_lost": result.rows_lost}), undo_id))
        return result

    def _revert(self, tbl: str, op: str, key: list, old: list | None) -> dict | None:
        keys, cols = LOGGED_TABLES[tbl]
        where = " AND ".join(f"{k}=?" for k in keys)
        if op == "insert":
            self.db.execute(f"DELETE FROM {tbl} WHERE {where}", key)
            return None
        row = dict(zip(cols, old))
        # Written back in place (never delete-and-insert: deleting a person would cascade).
        if op == "update":
            sets = ", ".join(f"{c}=?" for c in cols)
            if self.db.execute(f"UPDATE {tbl} SET {sets} WHERE {where}", [*old, *key]).rowcount:
                return row
        old_key = [row[k] for k in keys]
        sets = ", ".join(f"{c}=?" for c in cols)
        if not self.db.execute(f"UPDATE {tbl} SET {sets} WHERE {where}", [*old, *old_key]).rowcount:
            self.db.execute(f"INSERT INTO {tbl}({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", old)
        return row

    def _drop_dangling(self, restored: list[tuple[str, dict]]) -> int:
        lost = 0
        for tbl, row in restored:
            face_col, person_col = _REFERENCES.get(tbl, (None, None))
            if face_col is None:
                continue
            gone = not self.db.execute("SELECT 1 FROM faces WHERE id=?", (row[face_col],)).fetchone()
            if person_col and not gone:
                gone = not self.db.execute("SELECT 1 FROM people WHERE id=?", (row[person_col],)).fetchone()
            if gone:
                keys = LOGGED_TABLES[tbl][0]
                self.db.execute(f"DELETE FROM {tbl} WHERE {' AND '.join(f'{k}=?' for k in keys)}",
                                [row[k] for k in keys])
                lost += 1
        return lost
