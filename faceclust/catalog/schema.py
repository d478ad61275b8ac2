"""The catalog's schema: numbered migrations, tracked with ``PRAGMA user_version``."""

from __future__ import annotations

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
    # 8: "these two are different people" (a no to a merge suggestion), undoable (see catalog_history)
    "apart",
    # 9: when a photo was taken (seconds since the epoch): EXIF DateTimeOriginal (with its offset
    # when the camera wrote one, else in local time), else the file's modification time.
    """
    ALTER TABLE photos ADD COLUMN taken_at REAL;
    CREATE INDEX photos_taken ON photos(taken_at);
    """,
    # 10: face tags read from XMP (sidecars, or the photo's own embedded XMP): which sources were
    # read for which photo at what size and time (read again when they change; regions -1: not
    # read yet), and which faces got their person from a tag (their assignments are the
    # user's: pinned).
    """
    CREATE TABLE tag_sources (
        path TEXT NOT NULL,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        regions INTEGER NOT NULL,
        matched INTEGER NOT NULL,
        read_at REAL NOT NULL,
        PRIMARY KEY (path, photo_id)
    ) WITHOUT ROWID;
    CREATE INDEX tag_sources_photo ON tag_sources(photo_id);
    CREATE TABLE imported_faces (
        face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
    # 11: the five ArcFace points (eye centres, nose tip, mouth corners) a detector gave with a
    # face (YuNet does; NULL for faces of detectors that give none): SFace's chips are cut from
    # them, again when a face is embedded by another model later.
    """
    ALTER TABLE faces ADD COLUMN points BLOB;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
