"""Trust in people: ids are never reused, names are never silently lost, every decision and
clustering run can be undone exactly, and re-clustering keeps person ids."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from test_people import MODEL, add_photos, cluster, face_people, identities

from faceclust import catalog as catalog_module
from faceclust.catalog import Catalog
from faceclust.cli import main
from faceclust.errors import UsageProblem
from faceclust.people import (
    ClusterOptions,
    PeopleClusterer,
    hide_person,
    history,
    merge_people,
    move_face,
    name_person,
    reject_face,
    undo,
)

PEOPLE_TABLES = ("people", "assignments", "rejections", "merges", "clustered")


def state(path) -> dict:
    """Every row of the tables that say who is who."""
    db = sqlite3.connect(path)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in PEOPLE_TABLES}
    finally:
        db.close()


@pytest.fixture
def three(tmp_path):
    """A catalog of three people (3 photos each) and one photo of two of them together."""
    path = tmp_path / "c.sqlite"
    centres = identities(4, seed=21)
    with Catalog(path) as cat:
        add_photos(cat, centres, [[i] for i in range(3) for _ in range(3)] + [[0, 1]], 0, seed=22)
        cluster(cat)
        ids = sorted(p["id"] for p in cat.people())
    return {"path": path, "ids": ids, "centres": centres}


def test_a_merged_away_id_is_never_given_to_a_new_person(three):
    path, (a, b, c) = three["path"], three["ids"]
    merge_people(path, str(b), [str(c)])  # c is the highest id: SQLite used to hand it out again
    with Catalog(path) as cat:
        add_photos(cat, three["centres"], [[3]] * 3, 100, seed=23)
        cluster(cat)
        new = [p["id"] for p in cat.people() if p["id"] not in (a, b)]
    assert len(new) == 1 and new[0] > c
    name_person(path, str(new[0]), "Newcomer")
    with Catalog(path) as cat:
        names = {p["id"]: p["name"] for p in cat.people()}
        assert names[new[0]] == "Newcomer" and names[b] is None
        assert cat.resolve_person(str(c)) == b  # the merged-away id still leads to the merge target


def _v3_catalog(path):
    """A catalog as faceclust 0.1 (schema 3) left it after the id-reuse bug: person 2 was
    merged into 1, then a new person got id 2 again."""
    db = sqlite3.connect(path)
    for script in catalog_module.MIGRATIONS[:3]:
        db.executescript(script)
    db.executescript("""
        INSERT INTO photos(id, path, size, mtime_ns, status, updated_at) VALUES (1, '/p/a.jpg', 1, 1, 'ok', 0);
        INSERT INTO faces(id, photo_id, left, top, right, bottom, score, landmarks)
            VALUES (1, 1, 0, 0, 10, 10, 1, x''), (2, 1, 20, 0, 30, 10, 1, x'');
        INSERT INTO people(id, name, hidden, created_at, updated_at) VALUES (1, 'Ann', 0, 0, 0), (2, NULL, 0, 0, 0);
        INSERT INTO assignments VALUES (1, 1, 'user', 0), (2, 2, 'cluster', 0);
        INSERT INTO merges VALUES (2, 1, 0), (5, 1, 0);
        PRAGMA user_version=3;
    """)
    db.commit()
    db.close()


def test_the_migration_keeps_every_row_and_makes_ids_unique_for_good(tmp_path):
    path = tmp_path / "old.sqlite"
    _v3_catalog(path)
    with Catalog(path) as cat:
        assert cat.schema_version == catalog_module.SCHEMA_VERSION
        assert cat.assignments() == {1: (1, "user"), 2: (2, "cluster")}  # the rebuild cascaded nothing
        assert cat.resolve_person("2") == 2  # a live id is that person, not the old merge alias
        assert cat.resolve_person("5") == 1
        assert cat.create_people(1)[0] > 5  # above every id ever given, merged-away ones included
        assert cat.db.execute("SELECT seq FROM sqlite_sequence WHERE name='faces'").fetchone()[0] == 2
        assert cat.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_merging_two_named_people_keeps_both_names_unless_forced(three):
    path, (a, _b, b) = three["path"], three["ids"]  # a and the third person share no photo
    name_person(path, str(a), "Ann")
    name_person(path, str(b), "Bea")
    with pytest.raises(UsageProblem, match="drop a name.*'Bea'"):
        merge_people(path, str(a), [str(b)])
    assert {p: n for p, n in _names(path).items() if n} == {a: "Ann", b: "Bea"}  # nothing changed
    decision = merge_people(path, str(a), [str(b)], force=True)
    assert decision.dropped_names == ["Bea"] and any("'Bea'" in note for note in decision.notes)
    assert _names(path)[a] == "Ann" and b not in _names(path)


def test_an_unnamed_target_takes_the_only_name_without_force(three):
    path, (a, _b, b) = three["path"], three["ids"]
    name_person(path, str(b), "Bea")
    merge_people(path, str(a), [str(b)])
    assert _names(path)[a] == "Bea"


def test_two_people_may_share_a_name_with_a_warning(three):
    path, (a, b, _c) = three["path"], three["ids"]
    assert name_person(path, str(a), "Sam").notes == []
    notes = name_person(path, str(b), "Sam").notes
    assert len(notes) == 1 and f"person {a} is also named 'Sam'" in notes[0]
    result = CliRunner().invoke(main, ["name", str(b), "Sam", "--catalog", str(path)])
    assert result.exit_code == 0 and "also named 'Sam'" in result.stderr


def _names(path) -> dict:
    with Catalog(path) as cat:
        return {p["id"]: p["name"] for p in cat.people()}


def _faces_of(path, person) -> list[int]:
    with Catalog(path) as cat:
        return sorted(f for f, p in face_people(cat).items() if p == person)


@pytest.mark.parametrize("kind", ["name", "merge", "move", "reject", "hide", "show", "cluster", "cluster-full"])
def test_undo_reverts_each_kind_of_decision_exactly(three, kind):
    path, (a, b, c) = three["path"], three["ids"]
    name_person(path, str(c), "Cy")
    if kind == "show":
        hide_person(path, str(c))
    if kind.startswith("cluster"):
        with Catalog(path) as cat:
            add_photos(cat, three["centres"], [[3]] * 3 + [[0]], 200, seed=24)
    before = state(path)
    if kind == "name":
        name_person(path, str(a), "Ann")
    elif kind == "merge":
        merge_people(path, str(b), [str(c)])
    elif kind == "move":
        move_face(path, _faces_of(path, b)[0], str(c))
    elif kind == "reject":
        reject_face(path, _faces_of(path, a)[0])
    elif kind in ("hide", "show"):
        hide_person(path, str(c), hidden=kind == "hide")
    else:
        with Catalog(path) as cat:
            PeopleClusterer(cat, MODEL, ClusterOptions(full=kind == "cluster-full")).run()
    assert state(path) != before
    result = undo(path)
    assert len(result.undone) == 1 and result.rows_lost == 0
    assert state(path) == before
    assert history(path)[1]["undone_by"] == history(path)[0]["id"]


def test_undo_back_to_an_entry_reverts_everything_after_it_and_the_merge_comes_apart(three):
    path, (a, _b, b) = three["path"], three["ids"]
    before = state(path)
    name_person(path, str(a), "Ann")
    merge_people(path, str(a), [str(b)])
    reject_face(path, _faces_of(path, a)[0])
    first = history(path)[2]
    assert first["kind"] == "name" and first["description"].startswith(f"name person {a}")
    result = undo(path, first["id"])
    assert [r["kind"] for r in result.undone] == ["reject", "merge", "name"]
    assert state(path) == before
    with Catalog(path) as cat:
        assert cat.resolve_person(str(b)) == b  # the merged-away person is back under its own id
    with pytest.raises(UsageProblem, match="already undone"):
        undo(path, first["id"])


def test_undo_leaves_out_faces_that_are_gone_since(three):
    path, (a, _b, _c) = three["path"], three["ids"]
    face = _faces_of(path, a)[0]
    reject_face(path, face)
    with Catalog(path) as cat:  # the photo was edited: its faces were replaced
        cat.db.execute("DELETE FROM faces WHERE id=?", (face,))
    result = undo(path)
    assert result.rows_lost == 1
    with Catalog(path) as cat:
        assert cat.db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_history_and_undo_commands(three):
    path, (a, _b, _c) = three["path"], three["ids"]

    def run(*args):
        return CliRunner().invoke(main, [*args, "--catalog", str(path)])

    assert run("name", str(a), "Ann").exit_code == 0
    listed = run("history")
    assert listed.exit_code == 0 and f"name person {a} 'Ann'" in listed.output
    rows = json.loads(run("history", "--json").output)
    assert rows[0]["kind"] == "name" and rows[0]["at"][4] == "-" and "T" in rows[0]["at"]  # ISO 8601
    undone = run("undo")
    assert undone.exit_code == 0 and f"name person {a} 'Ann'" in undone.output
    assert _names(path)[a] is None
    assert run("undo").exit_code == 0  # the clustering run before it
    assert run("undo").exit_code == 2 and "nothing to undo" in run("undo").output


def test_full_reclustering_keeps_person_ids(three):
    path = three["path"]
    with Catalog(path) as cat:
        before = face_people(cat)
        PeopleClusterer(cat, MODEL, ClusterOptions(full=True)).run()
        assert face_people(cat) == before
        add_photos(cat, three["centres"], [[2]] * 2 + [[3]] * 3, 300, seed=25)
        PeopleClusterer(cat, MODEL, ClusterOptions(full=True)).run()
        after = face_people(cat)
    assert {f: after[f] for f in before} == before


def test_a_clustering_run_that_changes_nothing_leaves_no_history_entry(three):
    path = three["path"]
    name_person(path, str(three["ids"][0]), "Ann")
    with Catalog(path) as cat:
        PeopleClusterer(cat, MODEL, ClusterOptions()).run()  # nothing new: a nightly run
    assert history(path)[0]["kind"] == "name"
    undo(path)  # so 'undo' reverts the decision, not an empty run
    assert _names(path)[three["ids"][0]] is None


def test_face_ids_are_never_reused_so_an_undo_never_lands_on_another_face(three):
    path, (_a, _b, c) = three["path"], three["ids"]
    with Catalog(path) as cat:  # the group photo is the newest: it holds the highest face ids
        group = sorted(row[1] for row in cat.person_faces() if row[2] == "/photos/p0009.jpg")
    move_face(path, group[-1], str(c))
    with Catalog(path) as cat:  # the photo is edited: one face, detected again
        add_photos(cat, three["centres"], [[3]], 9, seed=99)
        new_face = max(row[1] for row in cat.person_faces() if row[2] == "/photos/p0009.jpg")
    assert new_face > group[-1]  # SQLite used to hand the freed ids out again
    result = undo(path)
    assert result.rows_lost == 1
    with Catalog(path) as cat:
        assert face_people(cat)[new_face] is None  # the undo did not land on the new face


def test_a_merge_that_would_put_two_faces_of_one_photo_in_one_person_is_refused(three):
    path, (a, b, _c) = three["path"], three["ids"]  # a and b are together in the group photo
    before = state(path)
    with pytest.raises(UsageProblem, match=r"p0009\.jpg.*faces \d+ and \d+.*reject"):
        merge_people(path, str(a), [str(b)])
    assert state(path) == before


def test_full_reclustering_copes_with_an_older_catalog_where_a_person_has_two_faces_of_one_photo(three):
    path, (a, b, _c) = three["path"], three["ids"]
    with Catalog(path) as cat:  # as an earlier faceclust's merge left it
        cat.merge_people(a, [b])
        PeopleClusterer(cat, MODEL, ClusterOptions(full=True)).run()
        by_photo = {}
        for person, face, photo, *_ in cat.person_faces():
            if person is not None:
                by_photo.setdefault((photo, person), []).append(face)
    assert all(len(faces) == 1 for faces in by_photo.values())
