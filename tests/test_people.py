"""People that last: names and manual decisions survive re-clustering."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from click.testing import CliRunner

from faceclust.catalog import Catalog
from faceclust.cli import main
from faceclust.people import (
    ClusterOptions,
    PeopleClusterer,
    hide_person,
    list_people,
    merge_people,
    move_face,
    name_person,
    reject_face,
)
from faceclust.records import FaceArrays, PhotoResult

MODEL = "test-model:1"
DIM = 16


def identities(n_people: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, DIM))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def add_photos(cat: Catalog, centres: np.ndarray, people_faces: list[list[int]], start: int, seed: int) -> dict:
    """One photo per list of identity indices; returns photo path -> identity of each face."""
    rng = np.random.default_rng(seed)
    truth = {}
    results = []
    for k, idents in enumerate(people_faces):
        n = len(idents)
        vectors = centres[idents] + rng.normal(scale=0.05, size=(n, DIM))
        boxes = np.array([[10 + 100 * j, 10, 90 + 100 * j, 90] for j in range(n)], np.float32)
        faces = FaceArrays(boxes, np.ones(n, np.float32), np.zeros((n, 5, 2), np.float32), vectors.astype(np.float32))
        path = f"/photos/p{start + k:04d}.jpg"
        results.append(PhotoResult("faces", path, 1, 1, f"h{start + k}", 800, 600, faces))
        truth[path] = list(idents)
    cat.write_results(results, MODEL, "det", None)
    return truth


def face_people(cat: Catalog) -> dict[int, int | None]:
    return {row[1]: row[0] for row in cat.person_faces()}


def truth_by_face(cat: Catalog, truth: dict) -> dict[int, int]:
    out = {}
    by_photo = defaultdict(list)
    for person, face, path, left, *_ in cat.person_faces():
        by_photo[path].append((left, face))
    for path, faces in by_photo.items():
        for (left, face), ident in zip(sorted(faces), truth[path]):
            out[face] = ident
    return out


def cluster(cat: Catalog, **options) -> None:
    PeopleClusterer(cat, MODEL, ClusterOptions(**options)).run()


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    yield cat
    cat.close()


def test_clusters_become_people_and_same_photo_faces_never_share_one(catalog):
    centres = identities(5)
    photos = [[i] for i in range(5) for _ in range(4)] + [[0, 1], [2, 3], [4, 0]]
    truth = add_photos(catalog, centres, photos, 0, seed=1)
    cluster(catalog)
    assigned = face_people(catalog)
    ident = truth_by_face(catalog, truth)
    groups = defaultdict(set)
    for face, person in assigned.items():
        if person is not None:
            groups[person].add(ident[face])
    assert len(groups) == 5 and all(len(v) == 1 for v in groups.values())
    by_photo = defaultdict(list)
    for person, face, path, *_ in catalog.person_faces():
        by_photo[path].append(person)
    for people in by_photo.values():
        named = [p for p in people if p is not None]
        assert len(named) == len(set(named))


def test_names_and_decisions_survive_new_photos_and_reclustering(tmp_path):
    path = tmp_path / "c.sqlite"
    centres = identities(6, seed=3)
    with Catalog(path) as cat:
        truth = add_photos(cat, centres, [[i] for i in range(5) for _ in range(4)], 0, seed=2)
        cluster(cat)
        ident = truth_by_face(cat, truth)
        person_of = {ident[f]: p for f, p in face_people(cat).items()}
    alice = name_person(path, str(person_of[0]), "Alice").person
    bob = name_person(path, str(person_of[1]), "Bob").person
    # The user says people 2 and 3 are one person (in truth they are not: a manual decision wins).
    merged = merge_people(path, str(person_of[2]), [str(person_of[3])]).person
    with Catalog(path) as cat:
        alice_faces = sorted(f for f, p in face_people(cat).items() if p == alice)
    rejected_face = alice_faces[0]
    assert reject_face(path, rejected_face).person == alice
    hide_person(path, str(person_of[4]))

    for full in (False, True):
        with Catalog(path) as cat:
            more = add_photos(cat, centres, [[i] for i in range(6) for _ in range(2)], 100 + 20 * full, seed=5 + full)
            truth.update(more)
            cluster(cat, full=full)
            ident = truth_by_face(cat, truth)
            assigned = face_people(cat)
            people = {p["id"]: p for p in cat.people()}
        assert people[alice]["name"] == "Alice" and people[bob]["name"] == "Bob"
        assert set(alice_faces[1:]) <= {f for f, p in assigned.items() if p == alice}
        assert assigned[rejected_face] != alice
        # New photos of Alice and Bob joined them; nobody else did.
        assert {ident[f] for f, p in assigned.items() if p == alice} == {0}
        assert {ident[f] for f, p in assigned.items() if p == bob} == {1}
        assert sum(1 for f, p in assigned.items() if p == alice) >= 3 + 2
        # The merged person stayed merged and grew with both identities.
        assert {ident[f] for f, p in assigned.items() if p == merged} == {2, 3}
        assert people[person_of[4]]["hidden"]
        # The new identity became a new person.
        new_people = {p for f, p in assigned.items() if p is not None and ident[f] == 5}
        assert len(new_people) == 1 and new_people.isdisjoint({alice, bob, merged})


def test_people_totals_are_the_sums_of_the_people_listing(catalog):
    centres = identities(4, seed=21)
    add_photos(catalog, centres, [[i] for i in range(4) for _ in range(3)] + [[0, 1]], 0, seed=22)
    cluster(catalog)
    # A photo gone from disk: its faces count for nobody, in either.
    catalog.db.execute("UPDATE photos SET status='gone' WHERE path='/photos/p0012.jpg'")
    listing = catalog.people()
    people, faces = catalog.people_totals()
    assert (people, faces) == (sum(1 for p in listing if p["faces"]), sum(p["faces"] for p in listing))
    assert people == 4 and faces == 12
    # Every photo of one person gone: that person counts no more.
    catalog.db.execute("""UPDATE photos SET status='error' WHERE id IN (SELECT f.photo_id FROM faces f
                          JOIN assignments a ON a.face_id = f.id WHERE a.person_id = ?)""", (listing[0]["id"],))
    listing = catalog.people()
    assert catalog.people_totals() == (sum(1 for p in listing if p["faces"]), sum(p["faces"] for p in listing))
    assert catalog.people_totals()[0] == 3


def test_a_new_face_forms_a_person_with_an_unknown_face_among_many(catalog, monkeypatch):
    """An identity seen once is unknown; its second photo arriving later makes it a person,
    however many other unknown faces the library holds: those far from every new face are
    not clustered again (only the nearest unknown faces of each new face are)."""
    from faceclust.people import stable

    centres = identities(40, seed=11)
    # Identities 0-4: people of four photos each; 5-39: strangers seen once (unknown).
    truth = add_photos(catalog, centres, [[i] for i in range(5) for _ in range(4)] + [[i] for i in range(5, 40)],
                       0, seed=12)
    cluster(catalog)
    before = face_people(catalog)
    assert sum(p is None for p in before.values()) == 35
    pooled = []
    original = stable.near_any_of

    def spy(vectors, rows, others, k):
        found = original(vectors, rows, others, k)
        pooled.append((len(others), len(found)))
        return found

    monkeypatch.setattr(stable, "near_any_of", spy)
    monkeypatch.setattr(stable, "POOL_NEIGHBOURS", 3)
    truth.update(add_photos(catalog, centres, [[7]], 500, seed=13))  # stranger 7's second photo
    cluster(catalog)
    after = face_people(catalog)
    new_face = next(f for f in after if f not in before)
    person = after[new_face]
    assert person is not None and person not in set(before.values())
    # The person is the new face and stranger 7's first face, nobody else.
    ident = truth_by_face(catalog, truth)
    assert sorted(ident[f] for f, p in after.items() if p == person) == [7, 7]
    assert pooled == [(35, 3)]  # three of the 35 unknown faces were clustered again, not 35


def test_a_rerun_with_nothing_new_changes_nothing(catalog):
    # Identity 1 has one face: unknown after clustering. A permissive recognition threshold
    # would pull it into person 0 on a re-run if re-runs looked at faces already seen.
    add_photos(catalog, identities(2), [[0]] * 3 + [[1]], 0, seed=4)
    cluster(catalog, recognition_threshold=1.9)
    before = face_people(catalog)
    assert sum(p is None for p in before.values()) == 1
    cluster(catalog, recognition_threshold=1.9)
    assert face_people(catalog) == before


def test_move_pins_a_face_and_min_faces_leaves_singletons_unknown(tmp_path):
    path = tmp_path / "c.sqlite"
    centres = identities(4, seed=7)
    with Catalog(path) as cat:
        truth = add_photos(cat, centres, [[0]] * 3 + [[1]] * 3 + [[3]], 0, seed=8)
        cluster(cat, min_faces=2)
        ident = truth_by_face(cat, truth)
        assigned = face_people(cat)
    lonely = next(f for f, i in ident.items() if i == 3)
    assert assigned[lonely] is None  # a one-face group is "unknown", not a person
    target = next(p for f, p in assigned.items() if ident[f] == 1)
    move_face(path, lonely, str(target))
    with Catalog(path) as cat:
        cluster(cat, full=True)
        assert face_people(cat)[lonely] == target


def test_move_refuses_two_faces_of_one_photo_in_one_person(tmp_path):
    path = tmp_path / "c.sqlite"
    with Catalog(path) as cat:
        truth = add_photos(cat, identities(2, seed=13), [[0]] * 3 + [[1]] * 3 + [[0, 1]], 0, seed=14)
        cluster(cat)
        ident = truth_by_face(cat, truth)
        group = [f for p, f, photo, *_ in cat.person_faces() if photo == "/photos/p0006.jpg"]
        owner = face_people(cat)
    zero = next(f for f in group if ident[f] == 0)
    one = next(f for f in group if ident[f] == 1)
    from faceclust.errors import UsageProblem

    with pytest.raises(UsageProblem, match="same photo"):
        move_face(path, one, str(owner[zero]))


def test_merged_ids_and_names_resolve(tmp_path):
    path = tmp_path / "c.sqlite"
    with Catalog(path) as cat:
        add_photos(cat, identities(3, seed=9), [[i] for i in range(3) for _ in range(3)], 0, seed=10)
        cluster(cat)
    ids = [p["id"] for p in list_people(path)]
    merge_people(path, str(ids[0]), [str(ids[1])])
    name_person(path, str(ids[1]), "Carol")  # the old id leads to the merged person
    assert [p["name"] for p in list_people(path) if p["id"] == ids[0]] == ["Carol"]
    assert move_face(path, 1, "Carol").person == ids[0]


def test_people_commands(tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite"
    with Catalog(path) as cat:
        add_photos(cat, identities(2, seed=11), [[i] for i in range(2) for _ in range(3)], 0, seed=12)
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [*args, "--catalog", str(path)], catch_exceptions=False)
        return result

    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    class Fixed:
        def identity(self):
            return MODEL

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, lambda **kw: Fixed())
    assert run("cluster").exit_code == 0
    assert run("name", "1", "Dora").exit_code == 0
    assert "Dora" in run("people").output
    result = run("name", "Nobody", "X")
    assert result.exit_code == 2 and "faceclust people" in result.output
    assert run("hide", "Dora").exit_code == 0
    assert "Dora" not in run("people").output and "Dora" in run("people", "--all").output
    assert run("reject", "999").exit_code == 2


def test_nearest_among_people_is_exact_within_the_nearest_people():
    """With every person a candidate it is the exact k-NN; with a few, on people who are apart,
    the same neighbours (what recognition in a library of a million relies on)."""
    from sklearn.datasets import make_blobs

    from faceclust.people.nearest import nearest_among_people

    x, people = make_blobs(n_samples=3000, centers=60, n_features=32, cluster_std=0.4, random_state=1)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    queries, known, known_people = x[:200], x[200:], people[200:]
    d = np.sqrt(np.maximum(2 - 2 * queries @ known.T, 0))
    exact = np.argsort(d, axis=1, kind="stable")[:, :10]
    every = nearest_among_people(known, known_people, queries, 10, candidates=60, batch=64)
    assert np.array_equal(every.face_ids, exact)
    assert np.allclose(every.distances, np.take_along_axis(d, exact, axis=1), atol=1e-5)
    few = nearest_among_people(known, known_people, queries, 10, candidates=5, batch=64)
    agree = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(few.face_ids.tolist(), exact.tolist())])
    assert agree >= 0.99
    assert np.all(np.diff(few.distances, axis=1) >= 0)  # nearest first
    one = nearest_among_people(known, known_people, queries, 10, candidates=1)
    assert np.all(known_people[one.face_ids] == known_people[one.face_ids[:, :1]])  # one person each
    # The known faces given as rows of a larger table (shuffled): the same, by position in rows.
    rows = np.random.default_rng(2).permutation(np.arange(200, 3000))
    within = nearest_among_people(x, people[rows], queries, 10, candidates=5, batch=64, rows=rows)
    assert np.array_equal(rows[within.face_ids] - 200, few.face_ids)
    assert np.allclose(within.distances, few.distances, atol=1e-5)


def test_recognition_among_the_nearest_people_decides_as_the_exact_search(tmp_path, monkeypatch):
    """A library big enough for the prefilter (forced here) recognises new faces as the exact
    search does: the same person for every face."""
    import shutil

    from faceclust.people import stable

    centres = identities(12, seed=8)
    path = tmp_path / "exact.sqlite"
    with Catalog(path) as cat:
        add_photos(cat, centres, [[i] for i in range(10) for _ in range(5)], 0, seed=4)
        cluster(cat)
    shutil.copy(path, tmp_path / "people.sqlite")
    results = []
    for name, above in (("exact.sqlite", 10 ** 9), ("people.sqlite", 0)):
        monkeypatch.setattr(stable, "PREFILTER_ABOVE", above)
        monkeypatch.setattr(stable, "RECOGNITION_PEOPLE", 3)
        with Catalog(tmp_path / name) as cat:
            add_photos(cat, centres, [[i] for i in range(12) for _ in range(3)], 100, seed=6)
            cluster(cat)
            results.append(face_people(cat))
    assert results[0] == results[1]
    assert sum(p is not None for p in results[0].values()) > 50 + 20  # new faces were recognised


def test_assignment_table_matches_the_assignments(catalog):
    centres = identities(3, seed=31)
    add_photos(catalog, centres, [[i] for i in range(3) for _ in range(3)], 0, seed=32)
    cluster(catalog)
    face = catalog.db.execute("SELECT MIN(face_id) FROM assignments").fetchone()[0]
    catalog.add_assignments([(face, catalog.assignments()[face][0], "user")])
    table, expected = catalog.assignment_table(), catalog.assignments()
    assert table.face_ids.tolist() == sorted(expected)
    assert [(p, "user" if u else "not") for p, u in zip(table.person_ids.tolist(), table.user.tolist())] == [
        (expected[f][0], "user" if expected[f][1] == "user" else "not") for f in sorted(expected)]
    assert table.user.sum() == 1
    unknown = max(expected) + 1
    assert table.people_of(np.array([unknown, face, -5])).tolist() == [-1, expected[face][0], -1]
    from faceclust.records import AssignmentTable

    empty = AssignmentTable(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))
    assert empty.people_of(np.array([1, 2])).tolist() == [-1, -1]
