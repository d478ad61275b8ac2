"""The user's decisions: name, merge, move, reject, hide, keep apart; the history that lists them and undo.

Each opens the catalog, takes its people lock (a clustering run in another process finishes
first), and makes one change in one transaction that becomes an undoable history entry.
References (an id, a merged-away id, an exact name) are resolved inside that transaction."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from faceclust.errors import NotFound, UsageProblem
from faceclust.records import iso_time
from faceclust.text import printable


@dataclass
class Decision:
    """What a decision did: the person it concerned, its history entry, and anything the user
    should know (a name another person has too, a name a merge dropped)."""

    person: int
    history_id: int
    notes: list[str] = field(default_factory=list)
    dropped_names: list[str] = field(default_factory=list)


def _open(catalog_path):
    from faceclust.catalog import Catalog

    return Catalog(catalog_path, create=False)


@contextmanager
def _deciding(catalog_path):
    from faceclust.locks import catalog_lock

    with _open(catalog_path) as catalog, catalog_lock(catalog.path, "people"):
        yield catalog


def _label(person: dict | None, pid: int) -> str:
    name = person and person["name"]
    return f"person {pid} ({name!r})" if name else f"person {pid}"


def list_people(catalog_path, include_hidden: bool = False) -> list[dict]:
    """People, biggest first; ``first_seen`` / ``last_seen`` in ISO 8601 (local time)."""
    with _open(catalog_path) as catalog:
        rows = [p for p in catalog.people() if include_hidden or not p["hidden"]]
    for row in rows:
        row["first_seen"], row["last_seen"] = iso_time(row["first_seen"]), iso_time(row["last_seen"])
    return rows


def name_person(catalog_path, ref: str, name: str) -> Decision:
    """Give a person a name. Another person with the same name is allowed (two people can share
    a name) but reported in ``notes``."""
    name = name.strip()
    if not name:
        raise UsageProblem("a name cannot be empty")
    if name.isdigit():
        raise UsageProblem(f"a name cannot be only digits ({name!r} would read as a person id); add a letter")
    with _deciding(catalog_path) as catalog, catalog.recorded("name", "name") as entry:
        person = catalog.resolve_person(ref)
        before = catalog.person(person)
        catalog.set_person(person, name=name)
        entry.description = f"name {_label(before, person)} {name!r}"
        others = [p for p in catalog.people_named(name) if p != person]
        notes = [f"person {o} is also named {name!r}; 'faceclust merge {o} {person}' makes them one person, "
                 f"'faceclust name {person} ...' tells them apart" for o in others]
        return Decision(person, entry.id, notes)


def hide_person(catalog_path, ref: str, hidden: bool = True) -> Decision:
    with _deciding(catalog_path) as catalog, catalog.recorded("hide" if hidden else "show", "hide") as entry:
        person = catalog.resolve_person(ref)
        catalog.set_person(person, hidden=hidden)
        entry.description = f"{'hide' if hidden else 'show'} {_label(catalog.person(person), person)}"
        return Decision(person, entry.id)


def merge_people(catalog_path, target: str, sources: list[str], force: bool = False) -> Decision:
    """Merge ``sources`` into ``target``. The target keeps its name; when that would drop the
    name of a source (two named people), the merge is refused unless ``force``, and the dropped
    names are reported."""
    with _deciding(catalog_path) as catalog, catalog.recorded("merge", "merge") as entry:
        into = catalog.resolve_person(target)
        others = [p for p in dict.fromkeys(catalog.resolve_person(s) for s in sources) if p != into]
        if not others:
            raise UsageProblem(f"nothing to merge: {', '.join(sources)} is person {into} itself")
        people = {p: catalog.person(p) for p in [into, *others]}
        kept = people[into]["name"] or next((people[p]["name"] for p in others if people[p]["name"]), None)
        dropped = [(p, people[p]["name"]) for p in others if people[p]["name"] and people[p]["name"] != kept]
        if dropped and not force:
            names = ", ".join(f"person {p} is {n!r}" for p, n in dropped)
            raise UsageProblem(f"merging would drop a name ({names}; the merged person keeps {kept!r}); "
                               "rename first, or give --force to keep that name")
        clashes = catalog.shared_photos([into, *others])
        if clashes:
            photo, faces = clashes[0]
            more = f" (and {len(clashes) - 1} more photos)" if len(clashes) > 1 else ""
            raise UsageProblem(
                f"these people are together in {printable(photo)}{more} (faces {faces[0]} and {faces[1]}): one person "
                f"appears once in a photo; 'faceclust reject {faces[1]}' (or move it) first, then merge")
        catalog.merge_people(into, others)
        entry.description = (f"merge {', '.join(_label(people[p], p) for p in others)} into "
                             f"{_label(people[into], into)}")
        entry.details = {"target": into, "sources": others, "dropped_names": [n for _, n in dropped]}
        notes = [f"the name {n!r} of person {p} was dropped; person {into} is {kept!r}" for p, n in dropped]
        return Decision(into, entry.id, notes, [n for _, n in dropped])


def _faces(catalog, face_ids) -> list[int]:
    faces = list(dict.fromkeys(int(f) for f in face_ids))
    if not faces:
        raise UsageProblem("no faces given")
    for face in faces:
        if not catalog.face_exists(face):
            raise NotFound(f"no face {face}; 'faceclust export' lists face ids")
    return faces


def _face_list(faces: list[int]) -> str:
    return f"face {faces[0]}" if len(faces) == 1 else f"{len(faces)} faces ({', '.join(map(str, faces[:5]))}" \
        + (", ..." if len(faces) > 5 else "") + ")"


def move_face(catalog_path, face_id: int, ref: str) -> Decision:
    return move_faces(catalog_path, [face_id], ref)


def move_faces(catalog_path, face_ids, ref: str) -> Decision:
    """Put faces into a person, as one decision; clustering keeps them there."""
    with _deciding(catalog_path) as catalog, catalog.recorded("move", "move") as entry:
        faces = _faces(catalog, face_ids)
        person = catalog.resolve_person(ref)
        before = catalog.assignments_of(faces)
        for face in faces:
            catalog.move_face(face, person)
        origins = sorted({b[0] for b in before.values()})
        origin = f" from person {origins[0]}" if len(origins) == 1 and len(before) == len(faces) else ""
        entry.description = f"move {_face_list(faces)}{origin} to {_label(catalog.person(person), person)}"
        return Decision(person, entry.id)


def new_person(catalog_path, face_ids, name: str | None = None) -> Decision:
    """A new person made of these faces ("new person from these"), named if ``name`` is given;
    one decision."""
    name = name.strip() if name else None
    if name is not None and name.isdigit():
        raise UsageProblem(f"a name cannot be only digits ({name!r} would read as a person id); add a letter")
    with _deciding(catalog_path) as catalog, catalog.recorded("move", "new person") as entry:
        faces = _faces(catalog, face_ids)
        photos = catalog.photos_of_faces(faces)
        if len(set(photos.values())) < len(faces):
            raise UsageProblem("two of these faces are in the same photo: one person appears once in a photo")
        person = catalog.create_people(1)[0]
        for face in faces:
            catalog.move_face(face, person)
        if name:
            catalog.set_person(person, name=name)
        entry.description = f"new {_label(catalog.person(person), person)} from {_face_list(faces)}"
        return Decision(person, entry.id)


def reject_face(catalog_path, face_id: int, person: str | None = None) -> Decision:
    """The face is not its person (or not ``person``: a "no" to a suggestion for a lone face)."""
    return reject_faces(catalog_path, [face_id], person)


def reject_faces(catalog_path, face_ids, person: str | None = None) -> Decision:
    """"Not this person" for several faces, as one decision: each leaves its person (or, given
    ``person``, never joins that one) for good."""
    with _deciding(catalog_path) as catalog, catalog.recorded("reject", "reject") as entry:
        faces = _faces(catalog, face_ids)
        target = None if person is None else catalog.resolve_person(person)
        people = set()
        for face in faces:
            rejected = catalog.reject_face(face, target)
            if rejected is None:
                raise UsageProblem(f"face {face} belongs to nobody; nothing to reject")
            people.add(rejected)
        first = min(people)
        whom = _label(catalog.person(first), first) if len(people) == 1 else f"{len(people)} people"
        entry.description = f"reject {_face_list(faces)} from {whom}"
        return Decision(first, entry.id)


def sort_faces(catalog_path, ref: str, yes, no) -> Decision:
    """An answer to "are these faces this person?": the ``yes`` faces go to the person (placed
    by the user), the ``no`` faces never join them; one decision."""
    yes, no = list(dict.fromkeys(int(f) for f in yes)), list(dict.fromkeys(int(f) for f in no))
    if set(yes) & set(no):
        raise UsageProblem("a face cannot be both this person and not this person")
    with _deciding(catalog_path) as catalog, catalog.recorded("move", "sort faces") as entry:
        faces = _faces(catalog, yes + no)
        person = catalog.resolve_person(ref)
        for face in yes:
            catalog.move_face(face, person)
        for face in no:
            catalog.reject_face(face, person)
        label = _label(catalog.person(person), person)
        parts = ([f"{_face_list(yes)} to {label}"] if yes else []) + ([f"{_face_list(no)} not {label}"] if no else [])
        entry.description = "sort " + "; ".join(parts)
        entry.details = {"person": person, "yes": yes, "no": no, "faces": len(faces)}
        return Decision(person, entry.id)


def keep_apart(catalog_path, a: str, b: str) -> Decision:
    """Record that two people are two people (a "no" to a merge suggestion): the pair is never
    suggested again. Undoable like every decision."""
    with _deciding(catalog_path) as catalog, catalog.recorded("apart", "apart") as entry:
        first, second = catalog.resolve_person(a), catalog.resolve_person(b)
        if first == second:
            raise UsageProblem(f"{a} and {b} are one person (person {first}); nothing to keep apart")
        new = catalog.mark_apart(first, second)
        entry.description = (f"keep {_label(catalog.person(first), first)} and "
                             f"{_label(catalog.person(second), second)} apart")
        return Decision(first, entry.id, [] if new else ["they were kept apart already"])


def history(catalog_path, limit: int | None = None) -> list[dict]:
    """History entries, newest first (``at`` in ISO 8601, local time with its offset)."""
    with _open(catalog_path) as catalog:
        rows = catalog.history(limit)
    for row in rows:
        row["at"] = iso_time(row["at"])
    return rows


def undo(catalog_path, back_to: int | None = None):
    """Revert the newest decision or clustering run still in effect, or every one from history
    entry ``back_to`` on. Returns :class:`faceclust.catalog.history.UndoResult`."""
    with _deciding(catalog_path) as catalog:
        return catalog.undo(back_to)
