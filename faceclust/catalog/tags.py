"""Face tags read from XMP: which sources were read (and when they change), which faces got
their person from a tag. Mixed into :class:`faceclust.catalog.Catalog` (uses ``self.db``)."""

from __future__ import annotations

import time

from faceclust.catalog.sql import sql_path


class TagsMixin:
    def tag_sources(self) -> dict[tuple[str, str], tuple[int, int, bool]]:
        """(source path, its photo's path) -> (size, mtime_ns, read) as last seen; ``read`` is
        False for a source waiting to be read (its photo's faces are new, the read failed)."""
        return {(r[0], r[1]): (int(r[2]), int(r[3]), r[4] >= 0) for r in self.db.execute(
            "SELECT t.path, p.path, t.size, t.mtime_ns, t.regions FROM tag_sources t "
            "JOIN photos p ON p.id = t.photo_id")}

    def pending_tag_sources(self, pairs, signatures) -> None:
        """Mark (source path, photo path) pairs as waiting to be read, with their signatures."""
        with self.transaction():
            for (source, photo), signature in zip(pairs, signatures):
                self.db.execute(
                    "INSERT OR REPLACE INTO tag_sources(path, photo_id, size, mtime_ns, regions, matched, read_at) "
                    "SELECT CAST(? AS TEXT), id, ?, ?, -1, 0, ? FROM photos WHERE path=CAST(? AS TEXT) AND status='ok'",
                    (sql_path(source), int(signature[0]), int(signature[1]), time.time(), sql_path(photo)))

    def set_tag_source(self, path: str, photo_id: int, signature: tuple[int, int], regions: int, matched: int) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO tag_sources(path, photo_id, size, mtime_ns, regions, matched, read_at) "
                "VALUES (CAST(? AS TEXT), ?, ?, ?, ?, ?, ?)",
                (sql_path(path), int(photo_id), int(signature[0]), int(signature[1]), int(regions), int(matched), time.time()))

    def record_imported_face(self, face_id: int, name: str, source: str, at: float) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO imported_faces(face_id, name, source, at) "
                            "VALUES (?, ?, CAST(? AS TEXT), ?)", (int(face_id), name, sql_path(source), at))

    def imported_faces(self) -> dict[int, tuple[str, str]]:
        """face id -> (name, source) for faces named from a tag."""
        return {int(r[0]): (r[1], r[2]) for r in self.db.execute("SELECT face_id, name, source FROM imported_faces")}

    def imported_faces_of(self, face_ids) -> dict[int, tuple[str, str]]:
        ids = [int(f) for f in face_ids]
        out: dict[int, tuple[str, str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update({int(r[0]): (r[1], r[2]) for r in self.db.execute(
                f"SELECT face_id, name, source FROM imported_faces WHERE face_id IN ({','.join('?' * len(chunk))})",
                chunk)})
        return out

    def photo_id(self, path: str) -> int | None:
        row = self.db.execute("SELECT id FROM photos WHERE path=CAST(? AS TEXT) AND status='ok'",
                              (sql_path(path),)).fetchone()
        return None if row is None else int(row[0])

    def photo_face_boxes(self, photo_id: int) -> list[tuple[int, tuple[float, float, float, float]]]:
        """(face id, (left, top, right, bottom) in original pixels) of a photo's faces."""
        return [(int(r[0]), tuple(float(v) for v in r[1:5])) for r in self.db.execute(
            "SELECT id, left, top, right, bottom FROM faces WHERE photo_id=? ORDER BY id", (int(photo_id),))]

    def is_rejected(self, face_id: int, person_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM rejections WHERE face_id=? AND person_id=?",
                               (int(face_id), int(person_id))).fetchone() is not None
