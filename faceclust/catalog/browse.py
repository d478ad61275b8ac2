"""Reading the catalog for browsing (``faceclust serve``): pages of people and faces, a face's
source photo, a photo's faces. Read-only; every query is bounded by a page size so a page of
a library with a million faces costs what a page of a small one does."""

from __future__ import annotations

from dataclasses import dataclass

from faceclust.catalog.sql import like_pattern


@dataclass(frozen=True)
class FaceSource:
    """Where a face's pixels are: its photo (by catalog id) and its box in original pixels."""

    face_id: int
    photo_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    box: tuple[float, float, float, float]


class BrowseMixin:
    """Browsing queries; mixed into :class:`faceclust.catalog.Catalog` (uses ``self.db``)."""

    def people_page(self, query: str | None = None, include_hidden: bool = False, limit: int = 200,
                    offset: int = 0) -> tuple[list[dict], int]:
        """(people with id, name, hidden, faces, photos, cover face id (their most confident
        detection); the number matching), named people first, then by faces (most first).
        ``query`` matches names (substring, any case)."""
        where, args = ["1=1"], []
        if not include_hidden:
            where.append("pe.hidden = 0")
        if query:
            where.append("pe.name LIKE ? ESCAPE '\\' COLLATE NOCASE")
            args.append(like_pattern(query))
        condition = " AND ".join(where)
        total = self.db.execute(f"SELECT COUNT(*) FROM people pe WHERE {condition}", args).fetchone()[0]
        # Ranked by their assignments (one pass over an index), counted exactly (faces of
        # existing photos) for the page's people only: a page costs the same in any library.
        rows = self.db.execute(
            f"""SELECT pe.id, pe.name, pe.hidden FROM people pe
                LEFT JOIN (SELECT person_id, COUNT(*) AS n FROM assignments GROUP BY person_id) c
                    ON c.person_id = pe.id
                WHERE {condition} ORDER BY pe.name IS NULL, COALESCE(c.n, 0) DESC, pe.id LIMIT ? OFFSET ?""",
            [*args, int(limit), int(offset)]).fetchall()
        people = [{"id": r[0], "name": r[1], "hidden": bool(r[2]), "faces": 0, "photos": 0, "cover": None}
                  for r in rows]
        by_id = {p["id"]: p for p in people}
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for pid, faces, photos, cover, _best in self.db.execute(
                    f"""SELECT a.person_id, COUNT(*), COUNT(DISTINCT f.photo_id), f.id, MAX(f.score)
                        FROM assignments a JOIN faces f ON f.id = a.face_id
                        JOIN photos p ON p.id = f.photo_id AND p.status = 'ok'
                        WHERE a.person_id IN ({",".join("?" * len(chunk))}) GROUP BY a.person_id""", chunk):
                by_id[pid].update(faces=faces, photos=photos, cover=cover)
        return people, int(total)

    def faces_page(self, person: int | None, limit: int = 500, offset: int = 0) -> tuple[list[dict], int]:
        """(faces of ``person``, or of nobody when None, with id, photo id, score, source of the
        assignment; how many there are), in the order the photos were taken (then by path)."""
        if person is None:
            condition, args = "a.face_id IS NULL", []
        else:
            condition, args = "a.person_id = ?", [int(person)]
        base = f"""FROM faces f JOIN photos p ON p.id = f.photo_id AND p.status = 'ok'
                   LEFT JOIN assignments a ON a.face_id = f.id WHERE {condition}"""
        total = self.db.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
        rows = self.db.execute(f"SELECT f.id, f.photo_id, f.score, a.source {base} "
                               "ORDER BY p.taken_at IS NULL, p.taken_at, p.path, f.id LIMIT ? OFFSET ?",
                               [*args, int(limit), int(offset)]).fetchall()
        return [{"id": r[0], "photo": r[1], "score": r[2], "source": r[3]} for r in rows], int(total)

    def face_source(self, face_id: int) -> FaceSource | None:
        """The photo a face is in (existing photos only), or None."""
        row = self.db.execute(
            """SELECT f.id, p.id, p.path, p.size, p.mtime_ns, p.content_hash, f.left, f.top, f.right, f.bottom
               FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.id = ? AND p.status = 'ok'""",
            (int(face_id),)).fetchone()
        return None if row is None else FaceSource(int(row[0]), int(row[1]), row[2], int(row[3]), int(row[4]),
                                                   row[5], tuple(float(v) for v in row[6:10]))

    def photo_source(self, photo_id: int) -> FaceSource | None:
        """A photo's file (as a FaceSource with face id 0 and an empty box), or None."""
        row = self.db.execute("SELECT id, path, size, mtime_ns, content_hash FROM photos WHERE id = ? AND status = 'ok'",
                              (int(photo_id),)).fetchone()
        return None if row is None else FaceSource(0, int(row[0]), row[1], int(row[2]), int(row[3]), row[4],
                                                   (0.0, 0.0, 0.0, 0.0))

    def photo_view(self, photo_id: int) -> dict | None:
        """A photo (id, path, width, height) and its faces (id, box, person, name), or None."""
        row = self.db.execute("SELECT id, path, width, height FROM photos WHERE id = ? AND status = 'ok'",
                              (int(photo_id),)).fetchone()
        if row is None:
            return None
        faces = self.db.execute(
            """SELECT f.id, f.left, f.top, f.right, f.bottom, a.person_id, pe.name FROM faces f
               LEFT JOIN assignments a ON a.face_id = f.id LEFT JOIN people pe ON pe.id = a.person_id
               WHERE f.photo_id = ? ORDER BY f.left""", (int(photo_id),)).fetchall()
        return {"id": row[0], "path": row[1], "width": row[2], "height": row[3],
                "faces": [{"id": f[0], "box": tuple(f[1:5]), "person": f[5], "name": f[6]} for f in faces]}

    def photos_of_faces(self, face_ids) -> dict[int, int]:
        """face id -> photo id."""
        ids = [int(f) for f in face_ids]
        out: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update({int(a): int(b) for a, b in self.db.execute(
                f"SELECT id, photo_id FROM faces WHERE id IN ({','.join('?' * len(chunk))})", chunk)})
        return out

    def person_names(self, prefix: str = "", limit: int = 20) -> list[tuple[int, str]]:
        """(id, name) of visible named people whose name contains ``prefix``, for completion."""
        return [(int(r[0]), r[1]) for r in self.db.execute(
            "SELECT id, name FROM people WHERE name IS NOT NULL AND hidden = 0 AND name LIKE ? ESCAPE '\\' "
            "COLLATE NOCASE ORDER BY name LIMIT ?", (like_pattern(prefix), int(limit)))]

    def state_key(self) -> tuple:
        """Changes whenever people or faces change: for caching what is computed from them."""
        history = self.db.execute("SELECT COALESCE(MAX(id), 0), COUNT(undone_by) FROM history").fetchone()
        faces = self.db.execute("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM faces").fetchone()
        return (*history, *faces, self.setting("faces_version"))
