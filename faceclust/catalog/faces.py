"""Reading the catalog's faces: descriptors by model, rows for the index and for every stage that
uses faces."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from faceclust.catalog.sql import column_arrays
from faceclust.records import FaceTable


class FacesMixin:
    """Reading faces and their descriptors, for the index, clustering, search, training
    (part of :class:`Catalog`)."""

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
        """(face_ids int64 (n,), vectors float32 (n, d)) for faces of existing photos. Read by
        one query (one snapshot) in blocks of arrays: no Python object per row stays alive
        (at a million faces that was several GB)."""
        cursor = self.db.execute(
            """SELECT e.face_id, e.vector FROM embeddings e JOIN faces f ON f.id = e.face_id
               JOIN photos p ON p.id = f.photo_id WHERE e.model_id = ? AND p.status = 'ok'
               ORDER BY e.face_id""", (model_id,))
        id_blocks, vector_blocks = [], []
        while rows := cursor.fetchmany(8192):
            id_blocks.append(np.fromiter((r[0] for r in rows), np.int64, len(rows)))
            vector_blocks.append(np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), -1))
        if not id_blocks:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.concatenate(id_blocks), np.concatenate(vector_blocks).astype(np.float32, copy=False)

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

    def face_table(self, model_id: str) -> FaceTable:
        """Every face of an existing photo with an embedding from ``model_id``, by face id.

        Three plain table scans in one read transaction, joined here by sorted ids: at a
        million faces SQLite's join took 13 s of the incremental clustering, the scans 7 s.
        Read in blocks, so no Python object per row stays alive."""
        with self.snapshot():  # the three scans see one state
            ok = column_arrays(self.db.execute("SELECT id FROM photos WHERE status = 'ok' ORDER BY id"),
                                (np.int64,))[0]
            face_ids, photo_ids, widths, scores = column_arrays(
                self.db.execute("SELECT id, photo_id, right - left, score FROM faces ORDER BY id"),
                (np.int64, np.int64, np.float32, np.float32))
            vector_ids, vectors = self._vectors(model_id, len(face_ids))
        keep = _sorted_member(face_ids, vector_ids) & _sorted_member(photo_ids, ok)
        rows = np.searchsorted(vector_ids, face_ids[keep])
        if len(rows) != len(vectors) or (len(rows) and rows[-1] != len(rows) - 1):
            vectors = vectors[rows]  # else every vector is kept, in order: no copy
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 128
        return FaceTable(face_ids=face_ids[keep], photo_ids=photo_ids[keep], widths=widths[keep],
                         scores=scores[keep], vectors=vectors.reshape(-1, dim))

    def _vectors(self, model_id: str, at_most: int) -> tuple[np.ndarray, np.ndarray]:
        """(face ids int64 sorted, vectors float32 (n, d)) of every stored ``model_id`` embedding
        (photos' state not considered); ``at_most``: how many faces there are (a face has one
        vector per model at most: the table's key, and its foreign key). The vectors go
        straight into one array of that many rows (a gigabyte at a million faces: built once,
        not in blocks then copied)."""
        cursor = self.db.execute("SELECT face_id, vector FROM embeddings WHERE model_id = ? ORDER BY face_id",
                                 (model_id,))
        ids = np.empty(at_most, np.int64)
        vectors = None
        count = 0
        while rows := cursor.fetchmany(8192):
            block_ids, blobs = zip(*rows)
            if vectors is None:
                vectors = np.empty((at_most, len(blobs[0]) // 4), np.float32)
            ids[count:count + len(rows)] = block_ids
            vectors[count:count + len(rows)] = np.frombuffer(b"".join(blobs), "<f4").reshape(len(rows), -1)
            count += len(rows)
        if vectors is None:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return ids[:count], vectors[:count]

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


def _sorted_member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_set`` (ascending, unique)."""
    if not len(sorted_set):
        return np.zeros(len(values), bool)
    where = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[where] == values
