"""The catalog's photos: what each scanned file holds, written a batch per transaction; an edited
photo's faces keep who they were; moved, copied and aliased files keep their faces."""

from __future__ import annotations

import time
from typing import Callable, Iterable, Sequence

import numpy as np

from faceclust.catalog.sql import blob, sql_path
from faceclust.records import FaceArrays, PhotoResult, PhotoState

# An edited photo's faces are detected again; a new face within this chord distance (unit
# descriptors) of an old one is taken to be that face and keeps its person and rejections.
# Edits move a face's descriptor by 0.04-0.08 (median), 0.21 at most (JPEG q60, 5% crop,
# brightness, 75% resize, 3° rotation; benchmarks/bench_edits.py), while two different people
# are closer than 0.37 in only 0.1% of pairs (celeba_train); the matching is also one to one.
CARRY_OVER_DISTANCE = 0.3

CARRY_OVER_IOU = 0.5



def _relative_iou(a, size_a, b, size_b) -> float:
    """IoU of two boxes given in pixels of photos of different sizes, in relative coordinates."""
    wa, ha = (float(v or 1) for v in size_a)
    wb, hb = (float(v or 1) for v in size_b)
    a = np.array([a[0] / wa, a[1] / ha, a[2] / wa, a[3] / ha])
    b = np.array([b[0] / wb, b[1] / hb, b[2] / wb, b[3] / hb])
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _redetected(before: dict, content_hash: str | None, detect_identity: str | None) -> bool:
    """Whether a photo's faces are being replaced because the detector (or its options)
    changed while its bytes did not: its old faces were found in these very bytes (the row is
    'ok': an error row keeps the faces of an earlier version under the new version's hash)."""
    return (bool(content_hash) and before.get("status") == "ok" and content_hash == before["content_hash"]
            and before["detect_identity"] is not None and detect_identity != before["detect_identity"])


class PhotosMixin:
    """Photos and the faces found in them, written a batch at a time (part of :class:`Catalog`)."""

    def photo_dates(self) -> dict[str, float]:
        """path -> when it was taken (seconds since the epoch) for existing photos that know it."""
        return {r[0]: r[1] for r in self.db.execute(
            "SELECT path, taken_at FROM photos WHERE status = 'ok' AND taken_at IS NOT NULL")}

    def photos_without_dates(self) -> list[tuple[int, str, int]]:
        """(id, path, mtime_ns) of existing photos whose capture date is not known yet."""
        return [(int(r[0]), r[1], int(r[2])) for r in self.db.execute(
            "SELECT id, path, mtime_ns FROM photos WHERE status = 'ok' AND taken_at IS NULL ORDER BY path")]

    def set_dates(self, rows) -> None:
        """(taken_at, photo id) pairs, in one transaction."""
        with self.transaction():
            self.db.executemany("UPDATE photos SET taken_at = ? WHERE id = ?", list(rows))

    def photo_states(self) -> dict[str, PhotoState]:
        rows = self.db.execute(
            "SELECT id, path, size, mtime_ns, content_hash, status, detect_identity, error FROM photos"
        )
        return {r[1]: PhotoState(*r) for r in rows}

    def photo_states_of(self, paths) -> list[PhotoState]:
        """The states of these photos (those catalogued)."""
        paths = [sql_path(p) for p in paths]
        out: list[PhotoState] = []
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            out += [PhotoState(*r) for r in self.db.execute(
                "SELECT id, path, size, mtime_ns, content_hash, status, detect_identity, error FROM photos "
                f"WHERE path IN ({','.join(['CAST(? AS TEXT)'] * len(chunk))})", chunk)]
        return out

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

    def face_geometry(self, photo_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(face ids (n,), dlib 5-point landmarks (n, 5, 2), boxes (n, 4), the detector's ArcFace
        points (n, 5, 2) or None when a face has none) of a photo, in original pixels: what
        aligning its faces again needs, for any embedder."""
        rows = self.db.execute("SELECT id, landmarks, left, top, right, bottom, points FROM faces WHERE photo_id=? "
                               "ORDER BY id", (photo_id,)).fetchall()
        ids = np.array([r[0] for r in rows], np.int64)
        marks = np.array([np.frombuffer(r[1], "<f4").reshape(5, 2) for r in rows], np.float32).reshape(-1, 5, 2)
        boxes = np.array([r[2:6] for r in rows], np.float32).reshape(-1, 4)
        points = None
        if rows and all(r[6] is not None for r in rows):
            points = np.array([np.frombuffer(r[6], "<f4").reshape(5, 2) for r in rows], np.float32)
        return ids, marks, boxes, points

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
                [(int(f), model_id, blob(v)) for f, v in zip(face_ids, vectors)],
            )

    def mark_gone(self, photo_ids: Iterable[int]) -> int:
        ids = [(int(i),) for i in photo_ids]
        with self.transaction():
            self.db.executemany("UPDATE photos SET status='gone', updated_at=? WHERE id=?",
                                [(time.time(), i) for (i,) in ids])
        return len(ids)

    def adopt_detect_identity(self, old: str, new: str, same: Callable[[int, int], bool]) -> int:
        """Photos recorded under detect identity ``old`` for which ``same(width, height)``
        (their faces would be found alike under ``new``) are recorded under ``new``; how many."""
        rows = self.db.execute("SELECT id, width, height FROM photos WHERE detect_identity=?", (old,)).fetchall()
        ids = [(new, i) for i, width, height in rows if width and height and same(width, height)]
        if ids:
            with self.transaction():
                self.db.executemany("UPDATE photos SET detect_identity=? WHERE id=?", ids)
        return len(ids)

    def _upsert_photo(self, r: PhotoResult, status: str, detect_identity: str | None,
                      run_id: int | None, now: float) -> int:
        self.db.execute(
            """INSERT INTO photos(path, size, mtime_ns, content_hash, width, height, status, error,
                                  detect_identity, run_id, updated_at, taken_at)
               VALUES (CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,
                   content_hash=excluded.content_hash, width=excluded.width, height=excluded.height,
                   status=excluded.status, error=excluded.error,
                   detect_identity=excluded.detect_identity, run_id=excluded.run_id,
                   updated_at=excluded.updated_at, taken_at=COALESCE(excluded.taken_at, photos.taken_at)""",
            (sql_path(r.path), r.size, r.mtime_ns, r.content_hash, r.width, r.height, status, r.error,
             detect_identity, run_id, now, r.taken_at),
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
                "INSERT INTO faces(photo_id, left, top, right, bottom, score, landmarks, points) VALUES (?,?,?,?,?,?,?,?)",
                (photo_id, left, top, right, bottom, float(faces.scores[i]), blob(faces.landmarks[i]),
                 None if faces.points is None else blob(faces.points[i])),
            )
            self.db.execute("INSERT INTO embeddings(face_id, model_id, vector) VALUES (?, ?, ?)",
                            (cur.lastrowid, model_id, blob(faces.embeddings[i])))
            new_ids.append(cur.lastrowid)
        if before and new_ids:
            self._carry_decisions(before, new_ids, faces, (r.width, r.height), now,
                                  same_bytes=_redetected(before, r.content_hash, detect_identity))

    def _faces_before_redetection(self, path: str, model_id: str) -> dict | None:
        """The faces a changed photo had, with who they were, read before they are replaced."""
        photo = self.db.execute("SELECT id, width, height, content_hash, detect_identity, status FROM photos "
                                "WHERE path=CAST(? AS TEXT)",
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
        return {"size": (photo[1], photo[2]), "content_hash": photo[3], "detect_identity": photo[4],
                "status": photo[5], "faces": [
            {"box": np.array(row[1:5], np.float64), "vector": None if row[5] is None else np.frombuffer(row[5], "<f4"),
             "person": row[6], "source": row[7], "clustered": row[8] is not None, "rejected": rejected.get(row[0], [])}
            for row in rows]}

    def _carry_decisions(self, before: dict, new_ids: list[int], faces: FaceArrays, size, now: float,
                         same_bytes: bool = False) -> None:
        """A photo detected again (edited: new bytes; or the same bytes with another detector or
        detector settings) keeps who its faces are. Old and new faces are paired one to one,
        nearest first: by descriptor (chord distance of unit vectors within
        CARRY_OVER_DISTANCE), then by where they are in the photo (IoU of boxes in relative
        coordinates at least CARRY_OVER_IOU) for old faces without a descriptor from this model
        (the model changed too) and, when the bytes are the same and the detector changed, for
        every old face: there the place is the face (another detector draws its box a little
        differently and its landmarks move the descriptor, sometimes beyond
        CARRY_OVER_DISTANCE), while a new photo saved under an old name can put a stranger
        where a known face was. A paired new face
        takes the old one's person, how it got there, its rejections and its clustered mark;
        an old face left unpaired takes them away."""
        old = before["faces"]
        candidates = []  # (rank, old index, new index): descriptor pairs before box pairs
        unit = lambda x: x / max(float(np.linalg.norm(x)), 1e-12)  # noqa: E731
        new_vectors = [unit(np.asarray(v, np.float64)) for v in faces.embeddings]
        for i, face in enumerate(old):
            for j in range(len(new_ids)):
                comparable = face["vector"] is not None and len(face["vector"]) == len(new_vectors[j])
                if comparable:
                    d = float(np.linalg.norm(unit(face["vector"].astype(np.float64)) - new_vectors[j]))
                    if d <= CARRY_OVER_DISTANCE:
                        candidates.append((d, i, j))
                if not comparable or same_bytes:
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
        src = self.db.execute("SELECT width, height, detect_identity, taken_at FROM photos WHERE id=?",
                              (r.source_id,)).fetchone()
        r.width, r.height = src[0], src[1]
        r.taken_at = r.taken_at if r.taken_at is not None else src[3]  # the same bytes: the same moment
        before = self._faces_before_redetection(r.path, model_id)  # an edit made it a copy of another
        photo_id = self._upsert_photo(r, "ok", src[2], run_id, now)
        if self.db.execute("DELETE FROM faces WHERE photo_id=?", (photo_id,)).rowcount:
            self._bump_faces_version()
        new_ids, boxes, vectors = [], [], []
        for face in self.db.execute(
            """SELECT f.id, f.left, f.top, f.right, f.bottom, f.score, f.landmarks, f.points, e.vector FROM faces f
               LEFT JOIN embeddings e ON e.face_id = f.id AND e.model_id = ? WHERE f.photo_id=? ORDER BY f.id""",
            (model_id, r.source_id),
        ).fetchall():
            cur = self.db.execute(
                "INSERT INTO faces(photo_id, left, top, right, bottom, score, landmarks, points) VALUES (?,?,?,?,?,?,?,?)",
                (photo_id, *face[1:8]),
            )
            self.db.execute(
                "INSERT INTO embeddings(face_id, model_id, vector) SELECT ?, model_id, vector FROM embeddings WHERE face_id=?",
                (cur.lastrowid, face[0]),
            )
            new_ids.append(cur.lastrowid)
            boxes.append(face[1:5])
            vectors.append(np.frombuffer(face[8], "<f4") if face[8] is not None else None)
        if before and new_ids and all(v is not None for v in vectors):
            copied = FaceArrays(np.array(boxes, np.float32), np.ones(len(new_ids), np.float32),
                                np.zeros((len(new_ids), 5, 2), np.float32), np.stack(vectors))
            self._carry_decisions(before, new_ids, copied, (r.width, r.height), now,
                                  same_bytes=_redetected(before, r.content_hash, src[2]))


_WRITERS = {
    "faces": PhotosMixin._write_faces,
    "error": PhotosMixin._write_error,
    "moved": PhotosMixin._write_moved,
    "copied": PhotosMixin._write_copied,
    "touched": PhotosMixin._write_touched,
    "alias": PhotosMixin._write_alias,
}
