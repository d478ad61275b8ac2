"""The catalog's people: assignments of faces, rejections, merges, the clustering run's result."""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np

from faceclust.catalog.sql import column_arrays
from faceclust.errors import NotFound, UsageProblem
from faceclust.records import AssignmentTable
from faceclust.text import printable


class PeopleMixin:
    """People, who each face belongs to, and the user's decisions (part of :class:`Catalog`)."""

    def assignments(self) -> dict[int, tuple[int, str]]:
        """face id -> (person id, source)."""
        return {r[0]: (r[1], r[2]) for r in self.db.execute("SELECT face_id, person_id, source FROM assignments")}

    def assignment_table(self) -> AssignmentTable:
        """Every assignment as arrays (what a large library's incremental clustering reads)."""
        face_ids, person_ids, user = column_arrays(
            self.db.execute("SELECT face_id, person_id, source = 'user' FROM assignments ORDER BY face_id"),
            (np.int64, np.int64, bool))
        return AssignmentTable(face_ids, person_ids, user)

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
            # An incremental run changes a few faces of a large library: only theirs are read.
            current = ({r[0]: (r[1], r[2]) for r in self.db.execute(
                "SELECT face_id, person_id, source FROM assignments")} if replace else self.assignments_of(wanted))
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
                # "Apart" follows the merged person; a pair merged anyway is no longer apart.
                self.db.execute("DELETE FROM apart WHERE (person_a=? AND person_b=?) OR (person_a=? AND person_b=?)",
                                (source, target, target, source))
                self.db.execute("UPDATE OR IGNORE apart SET person_a=? WHERE person_a=?", (target, source))
                self.db.execute("UPDATE OR IGNORE apart SET person_b=? WHERE person_b=?", (target, source))
                self.db.execute("DELETE FROM apart WHERE person_a=? OR person_b=?", (source, source))
                self.db.execute("INSERT OR REPLACE INTO merges(old_id, new_id, at) VALUES (?, ?, ?)",
                                (source, target, now))
                self.db.execute("DELETE FROM people WHERE id=?", (source,))
            # Merging says "same person": pin the faces so re-clustering keeps them together.
            self.db.execute("UPDATE assignments SET source='user' WHERE person_id=?", (target,))

    def mark_apart(self, a: int, b: int) -> bool:
        """Record that people ``a`` and ``b`` are two people; False when it was known already."""
        a, b = sorted((int(a), int(b)))
        with self.transaction():
            cur = self.db.execute("INSERT OR IGNORE INTO apart(person_a, person_b, at) VALUES (?, ?, ?)",
                                  (a, b, time.time()))
        return cur.rowcount > 0

    def apart_pairs(self) -> set[tuple[int, int]]:
        """Pairs (smaller id first) of live people the user said are two people."""
        rows = self.db.execute(
            """SELECT person_a, person_b FROM apart WHERE person_a IN (SELECT id FROM people)
               AND person_b IN (SELECT id FROM people)""").fetchall()
        return {tuple(sorted((int(a), int(b)))) for a, b in rows}

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

    def reject_face(self, face_id: int, person_id: int | None = None) -> int | None:
        """"Not this person": the face leaves its person (or, given ``person_id``, never joins
        that one) for good. Returns that person; None when the face belongs to nobody and no
        person was given."""
        with self.transaction():
            if person_id is None:
                row = self.db.execute("SELECT person_id FROM assignments WHERE face_id=?", (face_id,)).fetchone()
                if row is None:
                    return None
                person_id = int(row[0])
            self.db.execute("INSERT OR IGNORE INTO rejections(face_id, person_id, at) VALUES (?, ?, ?)",
                            (face_id, person_id, time.time()))
            self.db.execute("DELETE FROM assignments WHERE face_id=? AND person_id=?", (face_id, person_id))
        return int(person_id)

    def people_totals(self) -> tuple[int, int]:
        """(people with a face, faces that belong to someone), existing photos only: the totals
        of :meth:`people` without its per-person dates and photo counts.

        Counted over all assignments (the foreign keys keep them pointing at real faces and
        people), less the faces of photos that are gone or failed, found from those photos
        (few): a join over every assignment took seconds at a million faces."""
        with self.snapshot():
            people, faces = self.db.execute("SELECT COUNT(DISTINCT person_id), COUNT(*) FROM assignments").fetchone()
            absent = self.db.execute(
                """SELECT a.person_id, COUNT(*) FROM photos ph CROSS JOIN faces f CROSS JOIN assignments a
                   WHERE ph.status != 'ok' AND f.photo_id = ph.id AND a.face_id = f.id
                   GROUP BY a.person_id""").fetchall()
            for person, count in absent:
                faces -= count
                total = self.db.execute("SELECT COUNT(*) FROM assignments WHERE person_id = ?", (person,)).fetchone()[0]
                people -= total == count
        return int(people), int(faces)

    def people(self) -> list[dict]:
        """id, name, hidden, faces, photos, first_seen and last_seen (when their earliest and
        latest photos were taken, seconds since the epoch, or None) for every person (existing
        photos only), biggest first."""
        rows = self.db.execute(
            """SELECT pe.id, pe.name, pe.hidden, COUNT(f.id), COUNT(DISTINCT f.photo_id),
                      MIN(ph.taken_at), MAX(ph.taken_at)
               FROM people pe LEFT JOIN assignments a ON a.person_id = pe.id
               LEFT JOIN faces f ON f.id = a.face_id
                    AND f.photo_id IN (SELECT id FROM photos WHERE status = 'ok')
               LEFT JOIN photos ph ON ph.id = f.photo_id
               GROUP BY pe.id ORDER BY COUNT(f.id) DESC, pe.id""").fetchall()
        return [{"id": r[0], "name": r[1], "hidden": bool(r[2]), "faces": r[3], "photos": r[4],
                 "first_seen": r[5], "last_seen": r[6]} for r in rows]
