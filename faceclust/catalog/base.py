"""The catalog's core: opening (migrations, read-only fallback), transactions, runs, errors,
settings and counts."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from faceclust.catalog.history import APART_SCHEMA, HISTORY_SCHEMA
from faceclust.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from faceclust.catalog.sql import BUSY_SECONDS, Snapshot, Transaction, sql_path, statements, text_factory
from faceclust.errors import CatalogError, NotFound, UsageProblem
from faceclust.records import iso_time
from faceclust.text import printable


def catalog_files(path: Path | str) -> list[Path]:
    """The catalog and every file faceclust keeps beside it (journal, index, locks)."""
    path = Path(path)
    return [path, *(path.with_name(path.name + suffix) for suffix in (
        "-wal", "-shm", "-journal", ".faiss", ".faiss.json", ".scan.lock", ".people.lock"))]


def protected_outputs(catalog: "CatalogBase", output: Path | str) -> None:
    """Refuse ``output`` when it is the catalog, a file beside it, or one of its photos."""
    from faceclust.photos.protect import protect_inputs

    photo = catalog.db.execute("SELECT path FROM photos WHERE path=CAST(? AS TEXT)",
                               (sql_path(os.path.abspath(output)),)).fetchone()
    protect_inputs(output, [*catalog_files(catalog.path), *([photo[0]] if photo else [])])


def default_catalog_path() -> Path:
    """``$FACECLUST_CATALOG``, else ``$XDG_DATA_HOME/faceclust/catalog.sqlite``
    (``~/.local/share/faceclust/catalog.sqlite``)."""
    env = os.environ.get("FACECLUST_CATALOG")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "faceclust" / "catalog.sqlite"


def _reason(exc: OSError) -> str:
    import errno

    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "a part of its path is a file, not a folder; check the path"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; choose a place you can write to"
    if exc.errno == errno.EROFS:
        return "the filesystem is read-only; choose a writable place"
    return (exc.strerror or str(exc)).lower()


def _open_problem(path: Path, exc: sqlite3.Error) -> str:
    """Why SQLite could not open ``path``, in words (it only says "unable to open")."""
    if len(path.name.encode("utf-8", "surrogateescape")) > 255:
        return "the file name is too long for the filesystem"
    folder = path.parent if str(path.parent) else Path(".")
    if not os.access(folder, os.W_OK | os.X_OK) and not path.exists():
        return "the folder is not writable; choose a place you can write to"
    if path.exists() and not os.access(path, os.R_OK):
        return "permission denied; check the file's permissions"
    return f"{exc}; check the path and its permissions"


class CatalogBase:
    """Opening a catalog (creating or migrating it; read-only where it cannot be written),
    transactions, runs and their errors, settings, counts."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        self.read_only = False
        if self.path.is_dir():
            raise UsageProblem(f"{printable(self.path)} is a folder; the catalog is a file (give a file name)")
        if not create and not self.path.exists():
            raise NotFound(f"no catalog at {printable(self.path)}; run 'faceclust scan PHOTOS --catalog "
                           f"{printable(self.path)}' first")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"cannot create the catalog {printable(self.path)}: {_reason(exc)}") from exc
        try:
            self._connect()
        except sqlite3.OperationalError as exc:
            if not self.path.exists():
                raise CatalogError(f"cannot create the catalog {printable(self.path)}: {_open_problem(self.path, exc)}") from exc
            self._connect_read_only(exc)
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{printable(self.path)} is not a faceclust catalog ({exc}); give the catalog's "
                               "file, or a new name to start one") from exc

    def _connect(self) -> None:
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=BUSY_SECONDS)
        self.db.text_factory = text_factory
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self._configure()
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def _configure(self) -> None:
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # INSERT OR REPLACE then fires the delete triggers of the row it replaces: the
        # history's undo data (catalog_history) sees the old row.
        self.db.execute("PRAGMA recursive_triggers=ON")

    def _connect_read_only(self, first: sqlite3.Error) -> None:
        """A catalog this process cannot write (a read-only share, another user's file): open
        it for reading; a command that writes then fails with a clear "read-only" message."""
        from urllib.parse import quote

        uri = "file:" + quote(os.path.abspath(self.path))
        for options in ("?mode=ro", "?mode=ro&immutable=1"):  # immutable: no -shm can be made
            try:
                self.db = sqlite3.connect(uri + options, uri=True, isolation_level=None, timeout=BUSY_SECONDS)
                self.db.text_factory = text_factory
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError:
                try:
                    self.db.close()
                except Exception:  # noqa: BLE001
                    pass
                continue
            self._configure()
            self.read_only = True
            if version < SCHEMA_VERSION:
                self.db.close()
                raise CatalogError(f"the catalog {printable(self.path)} is read-only here and from an older "
                                   "faceclust; open it once where it can be written to, to upgrade it")
            if version > SCHEMA_VERSION:
                self._migrate()  # says: upgrade faceclust
            return
        raise CatalogError(f"cannot open the catalog {printable(self.path)}: {_open_problem(self.path, first)}") from first

    def __enter__(self) -> "CatalogBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"catalog {self.path} has schema version {version}, newer than this faceclust "
                f"understands ({SCHEMA_VERSION}); upgrade faceclust"
            )
        if version == SCHEMA_VERSION:
            return
        # Tables are rebuilt (migration 4): with foreign keys on, dropping the old table would
        # cascade into the rows that refer to it. They are checked before each commit instead.
        self.db.execute("PRAGMA foreign_keys=OFF")
        try:
            for number in range(version, SCHEMA_VERSION):
                with self.transaction():
                    self._apply(number)
                    problems = self.db.execute("PRAGMA foreign_key_check").fetchall()
                    if problems:
                        raise CatalogError(f"catalog {self.path}: migration {number + 1} left "
                                           f"{len(problems)} dangling references; it was not applied")
        finally:
            self.db.execute("PRAGMA foreign_keys=ON")

    def _apply(self, number: int) -> None:
        script = {"history": HISTORY_SCHEMA, "apart": APART_SCHEMA}.get(MIGRATIONS[number], MIGRATIONS[number])
        for statement in statements(script):
            self.db.execute(statement)
        self.db.execute(f"PRAGMA user_version={number + 1}")

    def transaction(self) -> "Transaction":
        return Transaction(self.db)

    def snapshot(self) -> "Snapshot":
        """Reads inside see one state of the catalog (no write lock taken)."""
        return Snapshot(self.db)

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def start_run(self, command: str, options: dict) -> int:
        """A new run. The caller holds the lock of ``command``: an earlier run of it that is
        still 'running' was killed (SIGKILL, power cut) and is marked so."""
        with self.transaction():
            self.db.execute("UPDATE runs SET status='killed' WHERE status='running' AND command=?", (command,))
            cur = self.db.execute(
                "INSERT INTO runs(command, options, started_at) VALUES (?, ?, ?)",
                (command, json.dumps(options, default=str), time.time()),
            )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, summary: dict, status: str = "ok") -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET finished_at=?, status=?, summary=? WHERE id=?",
                (time.time(), status, json.dumps(summary, default=str), run_id),
            )

    def record_errors(self, run_id: int | None, items: Iterable[tuple[str, str]]) -> None:
        now = time.time()
        with self.transaction():
            self.db.executemany(
                "INSERT INTO errors(run_id, path, message, at) VALUES (?, CAST(? AS TEXT), ?, ?)",
                [(run_id, sql_path(path), message, now) for path, message in items],
            )

    def recorded_errors(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of the (path, message) pairs recorded by an earlier run."""
        out = set()
        for path, message in pairs:
            if self.db.execute("SELECT 1 FROM errors WHERE path=CAST(? AS TEXT) AND message=? LIMIT 1",
                               (sql_path(path), message)).fetchone():
                out.add((path, message))
        return out

    def photo_errors(self, limit: int = 20) -> list[tuple[str, str]]:
        """(path, message) of photos that could not be read at their last scan, by path."""
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT path, error FROM photos WHERE status='error' ORDER BY path LIMIT ?", (limit,))]

    def errors(self, run_id: int | None = None) -> list[tuple[str, str]]:
        if run_id is None:
            rows = self.db.execute("SELECT path, message FROM errors ORDER BY id")
        else:
            rows = self.db.execute("SELECT path, message FROM errors WHERE run_id=? ORDER BY id", (run_id,))
        return [(r[0], r[1]) for r in rows]

    def setting(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))

    def counts(self) -> dict:
        one = lambda sql, *a: self.db.execute(sql, a).fetchone()[0]  # noqa: E731
        by_status = dict(self.db.execute("SELECT status, COUNT(*) FROM photos GROUP BY status").fetchall())
        return {
            "photos": by_status.get("ok", 0),
            "photos_with_faces": one(
                "SELECT COUNT(DISTINCT f.photo_id) FROM faces f JOIN photos p ON p.id=f.photo_id WHERE p.status='ok'"),
            "photos_with_errors": by_status.get("error", 0),
            "photos_gone": by_status.get("gone", 0),
            "faces": one("SELECT COUNT(*) FROM faces f JOIN photos p ON p.id=f.photo_id WHERE p.status='ok'"),
            "embeddings_by_model": dict(self.db.execute(
                "SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id").fetchall()),
            "people": one("SELECT COUNT(*) FROM people WHERE hidden = 0 AND id IN "
                          "(SELECT a.person_id FROM assignments a JOIN faces f ON f.id = a.face_id "
                          "JOIN photos p ON p.id = f.photo_id WHERE p.status = 'ok')"),
            "named_people": one("SELECT COUNT(*) FROM people WHERE name IS NOT NULL"),
            "hidden_people": one("SELECT COUNT(*) FROM people WHERE hidden = 1"),
            "runs": one("SELECT COUNT(*) FROM runs"),
            "schema_version": self.schema_version,
        }

    def last_run(self) -> dict | None:
        row = self.db.execute(
            "SELECT id, command, started_at, finished_at, status, summary FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"id": row[0], "command": row[1], "started_at": iso_time(row[2]), "finished_at": iso_time(row[3]),
                "status": row[4], "summary": json.loads(row[5]) if row[5] else None}
