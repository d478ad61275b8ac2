"""The catalog: the only module that speaks SQL.

SQLite in WAL mode. Photos, faces (box, score, landmarks), embeddings (float32 BLOB keyed by
model identity), scan runs and per-file errors. The schema is versioned with
``PRAGMA user_version`` and numbered migrations; each batch is one transaction, so a killed
scan loses at most the batch in flight and never leaves half a photo behind.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from faceclust.catalog_history import HISTORY_SCHEMA, HistoryMixin
from faceclust.errors import CatalogError, NotFound, UsageProblem
from faceclust.records import FaceArrays, FaceTable, PhotoResult, PhotoState, iso_time
from faceclust.text import printable

MIGRATIONS: list[str] = [
    # 1: photos, faces, embeddings, runs, errors
    """
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        width INTEGER,
        height INTEGER,
        status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'gone')),
        error TEXT,
        detect_identity TEXT,
        run_id INTEGER,
        updated_at REAL NOT NULL
    );
    CREATE INDEX photos_hash ON photos(content_hash);
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        left REAL NOT NULL, top REAL NOT NULL, right REAL NOT NULL, bottom REAL NOT NULL,
        score REAL NOT NULL,
        landmarks BLOB NOT NULL
    );
    CREATE INDEX faces_photo ON faces(photo_id);
    CREATE TABLE embeddings (
        face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (face_id, model_id)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        options TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL DEFAULT 'running',
        summary TEXT
    );
    CREATE TABLE errors (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        path TEXT NOT NULL,
        message TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX errors_run ON errors(run_id);
    """,
    # 2: people, who each face belongs to, and the user's decisions
    """
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        name TEXT,
        hidden INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE assignments (
        face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        source TEXT NOT NULL CHECK (source IN ('cluster', 'recognized', 'user')),
        updated_at REAL NOT NULL
    );
    CREATE INDEX assignments_person ON assignments(person_id);
    CREATE TABLE rejections (
        face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        PRIMARY KEY (face_id, person_id)
    ) WITHOUT ROWID;
    CREATE TABLE merges (
        old_id INTEGER PRIMARY KEY,
        new_id INTEGER NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE clustered (
        face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE
    );
    """,
    # 3: catalog-wide settings (the embedding model its last scan chose)
    """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: person ids are never reused. Without AUTOINCREMENT SQLite gave a merged-away id to the
    # next new person while the merge still redirected that id to the merge target. The
    # sequence starts above every id ever given (merged-away ones included), and aliases that
    # already point away from a live person (catalogs hit by the bug) are dropped: a live id
    # always means that person.
    """
    CREATE TABLE people_v4 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT,
        hidden INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    INSERT INTO people_v4(id, name, hidden, created_at, updated_at)
        SELECT id, name, hidden, created_at, updated_at FROM people;
    DROP TABLE people;
    ALTER TABLE people_v4 RENAME TO people;
    DELETE FROM sqlite_sequence WHERE name = 'people';
    INSERT INTO sqlite_sequence(name, seq) SELECT 'people', MAX(
        COALESCE((SELECT MAX(id) FROM people), 0),
        COALESCE((SELECT MAX(old_id) FROM merges), 0),
        COALESCE((SELECT MAX(new_id) FROM merges), 0));
    DELETE FROM merges WHERE old_id IN (SELECT id FROM people);
    CREATE INDEX errors_path ON errors(path);
    """,
    # 5: the history of decisions and clustering runs, with what undoes each (see catalog_history)
    "history",
    # 6: face ids are never reused either: an edited photo's new faces used to take the ids of
    # the old ones, so a decision about face 17 (or its undo) could land on another face.
    """
    CREATE TABLE faces_v6 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        left REAL NOT NULL, top REAL NOT NULL, right REAL NOT NULL, bottom REAL NOT NULL,
        score REAL NOT NULL,
        landmarks BLOB NOT NULL
    );
    INSERT INTO faces_v6(id, photo_id, left, top, right, bottom, score, landmarks)
        SELECT id, photo_id, left, top, right, bottom, score, landmarks FROM faces;
    DROP TABLE faces;
    ALTER TABLE faces_v6 RENAME TO faces;
    CREATE INDEX faces_photo ON faces(photo_id);
    """,
    # 7: other paths to a catalogued photo's own file (a hard link, a symlinked file, the same
    # folder reached through a second path such as Synology's /var/services/photo): not a copy
    # to catalogue twice, but remembered so an unchanged one is not read again.
    """
    CREATE TABLE aliases (
        path TEXT PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# An edited photo's faces are detected again; a new face within this chord distance (unit
# descriptors) of an old one is taken to be that face and keeps its person and rejections.
# Edits move a face's descriptor by 0.04-0.08 (median), 0.21 at most (JPEG q60, 5% crop,
# brightness, 75% resize, 3° rotation; benchmarks/bench_edits.py), while two different people
# are closer than 0.37 in only 0.1% of pairs (celeba_train); the matching is also one to one.
CARRY_OVER_DISTANCE = 0.3
CARRY_OVER_IOU = 0.5
# How long a write waits for another process's transaction (a scan batch, a clustering run's
# final write) before the command fails with "the catalog is busy".
BUSY_SECONDS = 60.0


def _relative_iou(a, size_a, b, size_b) -> float:
    """IoU of two boxes given in pixels of photos of different sizes, in relative coordinates."""
    wa, ha = (float(v or 1) for v in size_a)
    wb, hb = (float(v or 1) for v in size_b)
    a = np.array([a[0] / wa, a[1] / ha, a[2] / wa, a[3] / ha])
    b = np.array([b[0] / wb, b[1] / hb, b[2] / wb, b[3] / hb])
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def catalog_files(path: Path | str) -> list[Path]:
    """The catalog and every file faceclust keeps beside it (journal, index, locks)."""
    path = Path(path)
    return [path, *(path.with_name(path.name + suffix) for suffix in (
        "-wal", "-shm", "-journal", ".faiss", ".faiss.json", ".scan.lock", ".people.lock"))]


def protected_outputs(catalog: "Catalog", output: Path | str) -> None:
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


def _statements(script: str) -> list[str]:
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


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


class Catalog(HistoryMixin):
    """An open catalog. Use as a context manager or call :meth:`close`."""

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
        self.db.text_factory = _text
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
                self.db.text_factory = _text
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

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "Catalog":
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
        script = HISTORY_SCHEMA if MIGRATIONS[number] == "history" else MIGRATIONS[number]
        for statement in _statements(script):
            self.db.execute(statement)
        self.db.execute(f"PRAGMA user_version={number + 1}")

    def transaction(self) -> "_Transaction":
        return _Transaction(self.db)

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # -- runs and errors -------------------------------------------------------------------

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

    # -- settings --------------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))

    # -- photos ----------------------------------------------------------------------------

    def photo_states(self) -> dict[str, PhotoState]:
        rows = self.db.execute(
            "SELECT id, path, size, mtime_ns, content_hash, status, detect_identity, error FROM photos"
        )
        return {r[1]: PhotoState(*r) for r in rows}

    def photos_missing_embeddings(self, model_id: str) -> list[PhotoState]:
        """Photos whose faces have no embedding from ``model_id`` (a new or changed model)."""
        rows = self.db.execute(
            """SELECT DISTINCT p.id, p.path, p.size, p.mtime_ns, p.content_hash, p.status, p.detect_identity,
                      p.error FROM photos p JOIN faces f ON f.photo_id = p.id
               LEFT JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?
               WHERE p.status = 'ok' AND e.face_id IS NULL ORDER BY p.path""",
            (model_id,),
        )
        return [PhotoState(*r) for r in rows]

    def face_landmarks(self, photo_id: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.execute("SELECT id, landmarks FROM faces WHERE photo_id=? ORDER BY id", (photo_id,)).fetchall()
        ids = np.array([r[0] for r in rows], np.int64)
        marks = np.array([np.frombuffer(r[1], "<f4").reshape(5, 2) for r in rows], np.float32).reshape(-1, 5, 2)
        return ids, marks

    def write_results(self, results: Sequence[PhotoResult], model_id: str, detect_identity: str,
                      run_id: int | None) -> None:
        """Write one batch of processed photos in one transaction."""
        now = time.time()
        self._replaced_faces = False
        with self.transaction():
            for result in results:
                _WRITERS[result.kind](self, result, model_id, detect_identity, run_id, now)
            if self._replaced_faces:
                self._drop_empty_people()  # unnamed people whose faces left with an edit

    def write_embeddings(self, face_ids: np.ndarray, vectors: np.ndarray, model_id: str) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO embeddings(face_id, model_id, vector) VALUES (?, ?, ?)",
                [(int(f), model_id, _blob(v)) for f, v in zip(face_ids, vectors)],
            )

    def mark_gone(self, photo_ids: Iterable[int]) -> int:
        ids = [(int(i),) for i in photo_ids]
        with self.transaction():
            self.db.executemany("UPDATE photos SET status='gone', updated_at=? WHERE id=?",
                                [(time.time(), i) for (i,) in ids])
        return len(ids)

    def _upsert_photo(self, r: PhotoResult, status: str, detect_identity: str | None,
                      run_id: int | None, now: float) -> int:
        self.db.execute(
            """INSERT INTO photos(path, size, mtime_ns, content_hash, width, height, status, error,
                                  detect_identity, run_id, updated_at)
               VALUES (CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,
                   content_hash=excluded.content_hash, width=excluded.width, height=excluded.height,
                   status=excluded.status, error=excluded.error,
                   detect_identity=excluded.detect_identity, run_id=excluded.run_id,
                   updated_at=excluded.updated_at""",
            (sql_path(r.path), r.size, r.mtime_ns, r.content_hash, r.width, r.height, status, r.error,
             detect_identity, run_id, now),
        )
        self.db.execute("DELETE FROM aliases WHERE path=CAST(? AS TEXT)", (sql_path(r.path),))  # a photo now
        return int(self.db.execute("SELECT id FROM photos WHERE path=CAST(? AS TEXT)",
                                   (sql_path(r.path),)).fetchone()[0])

    def _write_faces(self, r: PhotoResult, model_id: str, detect_identity: str, run_id, now) -> None:
        before = self._faces_before_redetection(r.path, model_id)
        photo_id = self._upsert_photo(r, "ok", detect_identity, run_id, now)
        if self.db.execute("DELETE FROM faces WHERE photo_id=?", (photo_id,)).rowcount:
            self._bump_faces_version()
        faces = r.faces if r.faces is not None else FaceArrays.empty()
        new_ids = []
        for i in range(len(faces)):
            left, top, right, bottom = (float(v) for v in faces.boxes[i])
            cur = self.db.execute(
                "INSERT INTO faces(photo_id, left, top, right, bottom, score, landmarks) VALUES (?,?,?,?,?,?,?)",
                (photo_id, left, top, right, bottom, float(faces.scores[i]), _blob(faces.landmarks[i])),
            )
            self.db.execute("INSERT INTO embeddings(face_id, model_id, vector) VALUES (?, ?, ?)",
                            (cur.lastrowid, model_id, _blob(faces.embeddings[i])))
            new_ids.append(cur.lastrowid)
        if before and new_ids:
            self._carry_decisions(before, new_ids, faces, (r.width, r.height), now)

    def _faces_before_redetection(self, path: str, model_id: str) -> dict | None:
        """The faces a changed photo had, with who they were, read before they are replaced."""
        photo = self.db.execute("SELECT id, width, height FROM photos WHERE path=CAST(? AS TEXT)",
                                (sql_path(path),)).fetchone()
        if photo is None:
            return None
        rows = self.db.execute(
            """SELECT f.id, f.left, f.top, f.right, f.bottom, e.vector, a.person_id, a.source, c.face_id
               FROM faces f LEFT JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?
               LEFT JOIN assignments a ON a.face_id = f.id LEFT JOIN clustered c ON c.face_id = f.id
               WHERE f.photo_id = ? ORDER BY f.id""", (model_id, photo[0])).fetchall()
        if not rows:
            return None
        rejected = {}
        for face_id, person in self.db.execute(
                "SELECT r.face_id, r.person_id FROM rejections r JOIN faces f ON f.id = r.face_id WHERE f.photo_id=?",
                (photo[0],)):
            rejected.setdefault(face_id, []).append(person)
        return {"size": (photo[1], photo[2]), "faces": [
            {"box": np.array(row[1:5], np.float64), "vector": None if row[5] is None else np.frombuffer(row[5], "<f4"),
             "person": row[6], "source": row[7], "clustered": row[8] is not None, "rejected": rejected.get(row[0], [])}
            for row in rows]}

    def _carry_decisions(self, before: dict, new_ids: list[int], faces: FaceArrays, size, now: float) -> None:
        """An edited photo (new bytes: detected again) keeps who its faces are. Old and new faces
        are paired one to one, nearest first: by descriptor (chord distance of unit vectors within
        CARRY_OVER_DISTANCE), or, for old faces without a descriptor from this model (the model
        changed too), by where they are in the photo (IoU of boxes in relative coordinates at
        least CARRY_OVER_IOU). A paired new face takes the old one's person, how it got there,
        its rejections and its clustered mark; an old face left unpaired takes them away."""
        old = before["faces"]
        candidates = []  # (rank, old index, new index): descriptor pairs before box pairs
        unit = lambda x: x / max(float(np.linalg.norm(x)), 1e-12)  # noqa: E731
        new_vectors = [unit(np.asarray(v, np.float64)) for v in faces.embeddings]
        for i, face in enumerate(old):
            for j in range(len(new_ids)):
                if face["vector"] is not None and len(face["vector"]) == len(new_vectors[j]):
                    d = float(np.linalg.norm(unit(face["vector"].astype(np.float64)) - new_vectors[j]))
                    if d <= CARRY_OVER_DISTANCE:
                        candidates.append((d, i, j))
                elif face["vector"] is None:
                    iou = _relative_iou(face["box"], before["size"], faces.boxes[j], size)
                    if iou >= CARRY_OVER_IOU:
                        candidates.append((10.0 - iou, i, j))
        used_old, used_new = set(), set()
        for _rank, i, j in sorted(candidates):
            if i in used_old or j in used_new:
                continue
            used_old.add(i)
            used_new.add(j)
            face = old[i]
            if face["person"] is not None:
                self.db.execute("INSERT INTO assignments(face_id, person_id, source, updated_at) VALUES (?, ?, ?, ?)",
                                (new_ids[j], face["person"], face["source"], now))
            for person in face["rejected"]:
                self.db.execute("INSERT OR IGNORE INTO rejections(face_id, person_id, at) VALUES (?, ?, ?)",
                                (new_ids[j], person, now))
            if face["clustered"]:
                self.db.execute("INSERT OR IGNORE INTO clustered(face_id) VALUES (?)", (new_ids[j],))

    def _bump_faces_version(self) -> None:
        """Face ids can be reused after a photo's faces are replaced; this counter, part of the
        index fingerprint, tells the index that its rows are stale anyway."""
        self._replaced_faces = True
        self.db.execute("""INSERT INTO settings(key, value) VALUES ('faces_version', '1')
                           ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1""")

    def _write_error(self, r: PhotoResult, model_id, detect_identity, run_id, now) -> None:
        self._upsert_photo(r, "error", None, run_id, now)
        # Faces from an earlier version stay, hidden with the photo (every reader keeps to 'ok'
        # photos): when it decodes again (a file caught half-written, a NAS read error), its new
        # faces take over who the old ones were instead of starting from nobody.
        if not r.known_error:  # the same failure of the same file is recorded once
            self.db.execute("INSERT INTO errors(run_id, path, message, at) VALUES (?, CAST(? AS TEXT), ?, ?)",
                            (run_id, sql_path(r.path), r.error or "unknown error", now))

    def _write_moved(self, r: PhotoResult, model_id, detect_identity, run_id, now) -> None:
        # A stale row at the new path (an earlier error, a deleted file) gives way to the moved one.
        self.db.execute("DELETE FROM photos WHERE path=CAST(? AS TEXT) AND id<>?", (sql_path(r.path), r.source_id))
        self.db.execute("DELETE FROM aliases WHERE path=CAST(? AS TEXT)", (sql_path(r.path),))
        self.db.execute(
            "UPDATE photos SET path=CAST(? AS TEXT), size=?, mtime_ns=?, status='ok', error=NULL, run_id=?, "
            "updated_at=? WHERE id=?",
            (sql_path(r.path), r.size, r.mtime_ns, run_id, now, r.source_id),
        )

    def _write_alias(self, r: PhotoResult, model_id, detect_identity, run_id, now) -> None:
        # A path catalogued as a photo of its own before (now the same file as another): gone.
        self.db.execute("UPDATE photos SET status='gone', updated_at=? WHERE path=CAST(? AS TEXT) AND id<>?",
                        (now, sql_path(r.path), r.source_id))
        self.db.execute("INSERT OR REPLACE INTO aliases(path, photo_id, size, mtime_ns) VALUES "
                        "(CAST(? AS TEXT), ?, ?, ?)", (sql_path(r.path), r.source_id, r.size, r.mtime_ns))

    def aliases(self) -> dict[str, tuple[int, int, int]]:
        """path -> (photo id, size, mtime_ns) of other paths to catalogued photos' files."""
        return {r[0]: (r[1], r[2], r[3]) for r in self.db.execute(
            "SELECT path, photo_id, size, mtime_ns FROM aliases")}

    def _write_touched(self, r: PhotoResult, model_id, detect_identity, run_id, now) -> None:
        self.db.execute("UPDATE photos SET size=?, mtime_ns=?, status='ok', error=NULL, run_id=?, updated_at=? "
                        "WHERE path=CAST(? AS TEXT)",
                        (r.size, r.mtime_ns, run_id, now, sql_path(r.path)))

    def _write_copied(self, r: PhotoResult, model_id, detect_identity, run_id, now) -> None:
        src = self.db.execute("SELECT width, height, detect_identity FROM photos WHERE id=?",
                              (r.source_id,)).fetchone()
        r.width, r.height = src[0], src[1]
        before = self._faces_before_redetection(r.path, model_id)  # an edit made it a copy of another
        photo_id = self._upsert_photo(r, "ok", src[2], run_id, now)
        if self.db.execute("DELETE FROM faces WHERE photo_id=?", (photo_id,)).rowcount:
            self._bump_faces_version()
        new_ids, boxes, vectors = [], [], []
        for face in self.db.execute(
            """SELECT f.id, f.left, f.top, f.right, f.bottom, f.score, f.landmarks, e.vector FROM faces f
               LEFT JOIN embeddings e ON e.face_id = f.id AND e.model_id = ? WHERE f.photo_id=? ORDER BY f.id""",
            (model_id, r.source_id),
        ).fetchall():
            cur = self.db.execute(
                "INSERT INTO faces(photo_id, left, top, right, bottom, score, landmarks) VALUES (?,?,?,?,?,?,?)",
                (photo_id, *face[1:7]),
            )
            self.db.execute(
                "INSERT INTO embeddings(face_id, model_id, vector) SELECT ?, model_id, vector FROM embeddings WHERE face_id=?",
                (cur.lastrowid, face[0]),
            )
            new_ids.append(cur.lastrowid)
            boxes.append(face[1:5])
            vectors.append(np.frombuffer(face[7], "<f4") if face[7] is not None else None)
        if before and new_ids and all(v is not None for v in vectors):
            copied = FaceArrays(np.array(boxes, np.float32), np.ones(len(new_ids), np.float32),
                                np.zeros((len(new_ids), 5, 2), np.float32), np.stack(vectors))
            self._carry_decisions(before, new_ids, copied, (r.width, r.height), now)

    # -- reading ---------------------------------------------------------------------------

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

    def iter_faces(self, model_id: str | None) -> Iterator[tuple]:
        """(face_id, photo path, left, top, right, bottom, score, vector bytes or None, person id
        or None) for faces of photos that exist, ordered by path then face id."""
        yield from self.db.execute(
            """SELECT f.id, p.path, f.left, f.top, f.right, f.bottom, f.score, e.vector, a.person_id
               FROM faces f JOIN photos p ON p.id = f.photo_id
               LEFT JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?
               LEFT JOIN assignments a ON a.face_id = f.id
               WHERE p.status = 'ok' ORDER BY p.path, f.id""",
            (model_id,),
        )

    def embeddings(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(face_ids int64 (n,), vectors float32 (n, d)) for faces of existing photos."""
        rows = self.db.execute(
            """SELECT e.face_id, e.vector FROM embeddings e JOIN faces f ON f.id = e.face_id
               JOIN photos p ON p.id = f.photo_id WHERE e.model_id = ? AND p.status = 'ok'
               ORDER BY e.face_id""",
            (model_id,),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        if not rows:
            return ids, np.zeros((0, 0), np.float32)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), -1)
        return ids, vectors.astype(np.float32)

    def fingerprint(self, model_id: str) -> str:
        """Changes whenever the set of indexed faces changes (stale index detection)."""
        row = self.db.execute(
            """SELECT COUNT(*), COALESCE(MAX(e.face_id), 0), COALESCE(SUM(e.face_id), 0)
               FROM embeddings e JOIN faces f ON f.id = e.face_id JOIN photos p ON p.id = f.photo_id
               WHERE e.model_id = ? AND p.status = 'ok'""",
            (model_id,),
        ).fetchone()
        version = self.setting("faces_version") or "0"
        return f"{model_id}:{row[0]}:{row[1]}:{row[2]}:{version}"

    # -- people ----------------------------------------------------------------------------

    def face_table(self, model_id: str) -> FaceTable:
        """Every face of an existing photo with an embedding from ``model_id``, by face id."""
        rows = self.db.execute(
            """SELECT f.id, f.photo_id, f.right - f.left, f.score, e.vector
               FROM faces f JOIN photos p ON p.id = f.photo_id
               JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?
               WHERE p.status = 'ok' ORDER BY f.id""",
            (model_id,),
        ).fetchall()
        n = len(rows)
        vectors = (np.frombuffer(b"".join(r[4] for r in rows), "<f4").reshape(n, -1).astype(np.float32)
                   if n else np.zeros((0, 128), np.float32))
        return FaceTable(
            face_ids=np.fromiter((r[0] for r in rows), np.int64, n),
            photo_ids=np.fromiter((r[1] for r in rows), np.int64, n),
            widths=np.fromiter((r[2] for r in rows), np.float32, n),
            scores=np.fromiter((r[3] for r in rows), np.float32, n),
            vectors=vectors,
        )

    def assignments(self) -> dict[int, tuple[int, str]]:
        """face id -> (person id, source)."""
        return {r[0]: (r[1], r[2]) for r in self.db.execute("SELECT face_id, person_id, source FROM assignments")}

    def clustered_faces(self) -> set[int]:
        """Faces some clustering run has already considered (re-runs leave them be)."""
        return {r[0] for r in self.db.execute("SELECT face_id FROM clustered")}

    def mark_clustered(self, face_ids: Iterable[int]) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO clustered(face_id) VALUES (?)", [(int(f),) for f in face_ids])

    def rejections(self) -> list[tuple[int, int]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT face_id, person_id FROM rejections ORDER BY face_id")]

    def create_people(self, count: int) -> list[int]:
        now = time.time()
        with self.transaction():
            return [int(self.db.execute("INSERT INTO people(created_at, updated_at) VALUES (?, ?)",
                                        (now, now)).lastrowid) for _ in range(count)]

    def write_clustering(self, rows: Iterable[tuple[int, int, str]], new_people: int, *, replace: bool,
                         clustered: Iterable[int]) -> dict[int, int]:
        """A clustering run's result in one transaction: ``new_people`` people are created, and
        ``rows`` (face, person, source) whose person is a placeholder ``-1 .. -new_people``
        go to them. With ``replace`` every assignment not in ``rows`` goes (a full
        re-clustering, whose rows keep the user's decisions); only what changes is written, so a run's undo data stays small.
        Faces deleted meanwhile by a scan are left out. Returns placeholder -> person id."""
        now = time.time()
        with self.transaction():
            created = self.create_people(new_people)
            mapping = {-(i + 1): pid for i, pid in enumerate(created)}
            wanted = {int(f): (mapping.get(int(p), int(p)), src) for f, p, src in rows}
            current = {r[0]: (r[1], r[2]) for r in self.db.execute(
                "SELECT face_id, person_id, source FROM assignments")}
            if replace:  # ``rows`` holds every assignment to keep, the user's included
                stale = [(f,) for f in current if f not in wanted]
                self.db.executemany("DELETE FROM assignments WHERE face_id=?", stale)
            changed = [(f, p, src, now, f) for f, (p, src) in wanted.items() if current.get(f) != (p, src)]
            self.db.executemany(
                """INSERT INTO assignments(face_id, person_id, source, updated_at)
                   SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM faces WHERE id=?)
                   ON CONFLICT(face_id) DO UPDATE SET person_id=excluded.person_id, source=excluded.source,
                       updated_at=excluded.updated_at""", changed)
            self.db.executemany("INSERT OR IGNORE INTO clustered(face_id) SELECT ? WHERE EXISTS "
                                "(SELECT 1 FROM faces WHERE id=?)", [(int(f), int(f)) for f in clustered])
            self._drop_empty_people()  # also a new person whose faces a scan removed meanwhile
        return mapping

    def add_assignments(self, rows: Iterable[tuple[int, int, str]]) -> None:
        now = time.time()
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO assignments(face_id, person_id, source, updated_at) VALUES (?, ?, ?, ?)",
                [(int(f), int(p), src, now) for f, p, src in rows])

    def _drop_empty_people(self) -> None:
        self.db.execute(
            """DELETE FROM people WHERE name IS NULL AND hidden = 0
               AND id NOT IN (SELECT DISTINCT person_id FROM assignments)
               AND id NOT IN (SELECT DISTINCT person_id FROM rejections)""")

    def resolve_person(self, ref: str | int) -> int:
        """A person id from an id (following merges) or an exact name."""
        text = str(ref).strip()
        if text.isdigit():
            pid = int(text)
            for _ in range(100):  # merges form chains; a loop would be a bug, not data
                if self.db.execute("SELECT 1 FROM people WHERE id=?", (pid,)).fetchone():
                    return pid  # a live id is that person, whatever was merged before
                row = self.db.execute("SELECT new_id FROM merges WHERE old_id=?", (pid,)).fetchone()
                if row is None:
                    break
                pid = int(row[0])
            raise NotFound(f"no person {text}; 'faceclust people' lists them")
        rows = self.db.execute("SELECT id FROM people WHERE name=?", (text,)).fetchall()
        if len(rows) == 1:
            return int(rows[0][0])
        if not rows:
            raise NotFound(f"no person named {printable(repr(text))}; 'faceclust people' lists them")
        raise UsageProblem(f"{len(rows)} people are named {printable(repr(text))}; use an id ('faceclust people')")

    def person(self, person_id: int) -> dict | None:
        row = self.db.execute("SELECT id, name, hidden FROM people WHERE id=?", (int(person_id),)).fetchone()
        return None if row is None else {"id": row[0], "name": row[1], "hidden": bool(row[2])}

    def people_named(self, name: str) -> list[int]:
        return [int(r[0]) for r in self.db.execute("SELECT id FROM people WHERE name=? ORDER BY id", (name,))]

    def face_exists(self, face_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM faces WHERE id=?", (int(face_id),)).fetchone() is not None

    def set_person(self, person_id: int, *, name: str | None = None, hidden: bool | None = None) -> None:
        with self.transaction():
            if name is not None:
                self.db.execute("UPDATE people SET name=?, updated_at=? WHERE id=?", (name, time.time(), person_id))
            if hidden is not None:
                self.db.execute("UPDATE people SET hidden=?, updated_at=? WHERE id=?",
                                (int(hidden), time.time(), person_id))

    def merge_people(self, target: int, sources: Sequence[int]) -> None:
        """Move every face, decision and name of ``sources`` into ``target``; one transaction."""
        now = time.time()
        with self.transaction():
            for source in sources:
                if source == target:
                    continue
                self.db.execute("UPDATE assignments SET person_id=?, updated_at=? WHERE person_id=?",
                                (target, now, source))
                self.db.execute("UPDATE OR IGNORE rejections SET person_id=? WHERE person_id=?", (target, source))
                self.db.execute(
                    """UPDATE people SET name = COALESCE(name, (SELECT name FROM people WHERE id=?)),
                       updated_at=? WHERE id=?""", (source, now, target))
                self.db.execute("UPDATE merges SET new_id=? WHERE new_id=?", (target, source))
                self.db.execute("INSERT OR REPLACE INTO merges(old_id, new_id, at) VALUES (?, ?, ?)",
                                (source, target, now))
                self.db.execute("DELETE FROM people WHERE id=?", (source,))
            # Merging says "same person": pin the faces so re-clustering keeps them together.
            self.db.execute("UPDATE assignments SET source='user' WHERE person_id=?", (target,))

    def assignments_of(self, face_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
        """face id -> (person id, source) for those of ``face_ids`` that belong to someone."""
        out = {}
        for face in face_ids:
            row = self.db.execute("SELECT person_id, source FROM assignments WHERE face_id=?", (int(face),)).fetchone()
            if row is not None:
                out[int(face)] = (int(row[0]), row[1])
        return out

    def shared_photos(self, people: Sequence[int]) -> list[tuple[str, list[int]]]:
        """Photos where two or more of ``people`` have a face: (path, face ids), by path."""
        marks = ",".join("?" * len(people))
        rows = self.db.execute(
            f"""SELECT p.path, group_concat(f.id) FROM assignments a JOIN faces f ON f.id = a.face_id
                JOIN photos p ON p.id = f.photo_id WHERE a.person_id IN ({marks}) AND p.status = 'ok'
                GROUP BY f.photo_id HAVING COUNT(DISTINCT a.person_id) > 1 ORDER BY p.path""",
            [int(p) for p in people]).fetchall()
        return [(path, sorted(int(f) for f in faces.split(","))) for path, faces in rows]

    def move_face(self, face_id: int, person_id: int) -> None:
        with self.transaction():
            clash = self.db.execute(
                """SELECT other.id FROM faces me JOIN faces other ON other.photo_id = me.photo_id AND other.id <> me.id
                   JOIN assignments a ON a.face_id = other.id AND a.person_id = ?
                   WHERE me.id = ?""", (person_id, face_id)).fetchone()
            if clash is not None:
                raise UsageProblem(f"face {clash[0]} of the same photo already belongs to person {person_id}: "
                                   "one person appears once in a photo; move that face elsewhere first")
            self.db.execute("DELETE FROM rejections WHERE face_id=? AND person_id=?", (face_id, person_id))
            self.db.execute(
                "INSERT OR REPLACE INTO assignments(face_id, person_id, source, updated_at) VALUES (?, ?, 'user', ?)",
                (face_id, person_id, time.time()))
            self._drop_empty_people()

    def reject_face(self, face_id: int) -> int | None:
        """"Not this person": the face leaves its person for good. Returns that person."""
        with self.transaction():
            row = self.db.execute("SELECT person_id FROM assignments WHERE face_id=?", (face_id,)).fetchone()
            if row is None:
                return None
            self.db.execute("INSERT OR IGNORE INTO rejections(face_id, person_id, at) VALUES (?, ?, ?)",
                            (face_id, row[0], time.time()))
            self.db.execute("DELETE FROM assignments WHERE face_id=?", (face_id,))
        return int(row[0])

    def people(self) -> list[dict]:
        """id, name, hidden, faces, photos for every person (existing photos only), biggest first."""
        rows = self.db.execute(
            """SELECT pe.id, pe.name, pe.hidden, COUNT(f.id), COUNT(DISTINCT f.photo_id)
               FROM people pe LEFT JOIN assignments a ON a.person_id = pe.id
               LEFT JOIN faces f ON f.id = a.face_id
                    AND f.photo_id IN (SELECT id FROM photos WHERE status = 'ok')
               GROUP BY pe.id ORDER BY COUNT(f.id) DESC, pe.id""").fetchall()
        return [{"id": r[0], "name": r[1], "hidden": bool(r[2]), "faces": r[3], "photos": r[4]} for r in rows]

    def faces_by_id(self, face_ids: Iterable[int]) -> list[tuple]:
        """(face id, photo path, left, top, right, bottom, person id or None) for the given faces
        of existing photos (others are left out), in no particular order."""
        ids = sorted({int(i) for i in face_ids})
        out: list[tuple] = []
        for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            out.extend(self.db.execute(
                f"""SELECT f.id, p.path, f.left, f.top, f.right, f.bottom, a.person_id
                    FROM faces f JOIN photos p ON p.id = f.photo_id
                    LEFT JOIN assignments a ON a.face_id = f.id
                    WHERE p.status = 'ok' AND f.id IN ({",".join("?" * len(chunk))})""", chunk).fetchall())
        return out

    def person_faces(self) -> list[tuple]:
        """(person id or None, face id, photo path, left, top, right, bottom, score) for every face
        of an existing photo; unassigned faces carry None."""
        return self.db.execute(
            """SELECT a.person_id, f.id, p.path, f.left, f.top, f.right, f.bottom, f.score
               FROM faces f JOIN photos p ON p.id = f.photo_id
               LEFT JOIN assignments a ON a.face_id = f.id
               WHERE p.status = 'ok' ORDER BY p.path, f.id""").fetchall()

    def face_records(self, model_id: str) -> dict[str, np.ndarray]:
        """Every face of an existing photo with what training needs, by face id: ``face_id``,
        ``photo_id``, ``path``, ``content_hash``, ``box`` (n, 4), ``landmarks`` (n, 5, 2) in
        original pixels, ``person`` (-1 when unassigned), ``vector`` from ``model_id`` (NaN
        when that model has not embedded the face)."""
        rows = self.db.execute(
            """SELECT f.id, f.photo_id, p.path, p.content_hash, f.left, f.top, f.right, f.bottom,
                      f.landmarks, a.person_id, e.vector
               FROM faces f JOIN photos p ON p.id = f.photo_id
               LEFT JOIN assignments a ON a.face_id = f.id
               LEFT JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?
               WHERE p.status = 'ok' ORDER BY f.id""", (model_id,)).fetchall()
        n = len(rows)
        dim = next((len(r[10]) // 4 for r in rows if r[10] is not None), 128)
        vectors = np.full((n, dim), np.nan, np.float32)
        for i, r in enumerate(rows):
            if r[10] is not None:
                vectors[i] = np.frombuffer(r[10], "<f4")
        return {
            "face_id": np.fromiter((r[0] for r in rows), np.int64, n),
            "photo_id": np.fromiter((r[1] for r in rows), np.int64, n),
            "path": np.array([r[2] for r in rows], dtype=object),
            "content_hash": np.array([r[3] for r in rows], dtype=object),
            "box": np.array([r[4:8] for r in rows], np.float32).reshape(n, 4),
            "landmarks": (np.frombuffer(b"".join(r[8] for r in rows), "<f4").reshape(n, 5, 2).copy()
                          if n else np.zeros((0, 5, 2), np.float32)),
            "person": np.fromiter((-1 if r[9] is None else r[9] for r in rows), np.int64, n),
            "vector": vectors,
        }


_WRITERS = {
    "faces": Catalog._write_faces,
    "error": Catalog._write_error,
    "moved": Catalog._write_moved,
    "copied": Catalog._write_copied,
    "touched": Catalog._write_touched,
    "alias": Catalog._write_alias,
}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (nested use is flattened)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self):
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
