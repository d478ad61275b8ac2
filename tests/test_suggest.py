"""Merge suggestions (`faceclust suggest`) and their answers: a yes merges, a no is never
suggested again, both undoable. Fake models: one marker colour is one person."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FAKE_SCAN, MARKER_COLOURS, draw_photo, run_cli

from faceclust.cli import main

FAKE = FAKE_SCAN


pytestmark = pytest.mark.usefixtures("fake_default_embedder")


run = run_cli


def fake_distance(c1: int, c2: int) -> float:
    """The fake embedder's distance between two marker colours (its formula)."""
    def vector(c):
        v = np.r_[np.array(MARKER_COLOURS[c]) / 255.0, 0.5]
        return v / np.linalg.norm(v)
    return float(np.linalg.norm(vector(c1) - vector(c2)))


@pytest.fixture
def people(tmp_path):
    """Four people (one per colour, two photos each), colours 1 and 2 together in a third photo."""
    root = tmp_path / "photos"
    for colour in range(4):
        for k in range(2):
            draw_photo(root / f"c{colour}_{k}.png", [(colour, 40, 40, 60)])
    draw_photo(root / "together.png", [(1, 20, 40, 60), (2, 200, 40, 60)])
    catalog = tmp_path / "c.sqlite"
    assert run("scan", root, "--catalog", catalog, *FAKE, "--quiet").exit_code == 0
    assert run("cluster", "--catalog", catalog, "--quiet").exit_code == 0
    listed = json.loads(run("people", "--catalog", catalog, "--json").output)
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model

    with Catalog(catalog) as cat:
        records = cat.face_records(catalog_model(cat).model_id)
    colour_of = {}
    for path, person in zip(records["path"], records["person"]):
        name = path.rsplit("/", 1)[1]
        if name.startswith("c"):
            colour_of[int(person)] = int(name[1])
    assert len(listed) == 4 and len(set(colour_of.values())) == 4
    return catalog, colour_of


def suggested(catalog, colour_of) -> list[tuple[int, int]]:
    rows = json.loads(run("suggest", "--catalog", catalog, "--json").output)
    return [tuple(sorted((colour_of[r["a"]], colour_of[r["b"]]))) for r in rows]


def test_suggestions_come_most_alike_first_and_never_for_people_in_one_photo(people):
    catalog, colour_of = people
    pairs = suggested(catalog, colour_of)
    expected = sorted(((a, b) for a in range(4) for b in range(a + 1, 4) if (a, b) != (1, 2)),
                      key=lambda p: fake_distance(*p))
    assert pairs == expected and (1, 2) not in pairs
    first = json.loads(run("suggest", "--catalog", catalog, "--json").output)[0]
    assert first["distance"] == pytest.approx(fake_distance(0, 3), abs=1e-3)
    assert first["probability"] is None  # no calibration fits the fake model: no made-up number
    assert first["faces_a"] and first["faces_b"]


def test_a_no_is_never_asked_again_a_yes_merges_and_both_undo(people):
    catalog, colour_of = people
    person = {c: p for p, c in colour_of.items()}
    result = run("apart", person[0], person[3], "--catalog", catalog)
    assert result.exit_code == 0, result.output
    assert (0, 3) not in suggested(catalog, colour_of)
    assert run("undo", "--catalog", catalog).exit_code == 0
    assert suggested(catalog, colour_of)[0] == (0, 3)  # asked again once the no is undone

    run("apart", person[0], person[3], "--catalog", catalog)
    assert run("merge", person[3], person[1], "--catalog", catalog).exit_code == 0  # a yes
    colour_of[person[3]] = 3
    left = suggested(catalog, {**colour_of, person[1]: 3})
    assert (1, 3) not in left and (0, 3) not in left  # the no still holds for the merged person
    history = json.loads(run("history", "--catalog", catalog, "--json").output)
    assert [h["kind"] for h in history[:2]] == ["merge", "apart"]


def test_keeping_one_person_apart_from_itself_is_one_line(people):
    catalog, colour_of = people
    pid = next(iter(colour_of))
    result = CliRunner().invoke(main, ["apart", str(pid), str(pid), "--catalog", str(catalog)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "nothing to keep apart" in result.output


def test_a_face_of_nobody_is_suggested_for_the_nearest_person_it_was_not_rejected_from(people):
    catalog, colour_of = people
    person = {c: p for p, c in colour_of.items()}
    exported = json.loads(run("people", "--catalog", catalog, "--json").output)
    assert exported
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        face = next(f for f, (p, _src) in cat.assignments_of(range(1, 100)).items() if p == person[0])
    assert run("reject", face, "--catalog", catalog).exit_code == 0  # now a face of nobody
    rows = json.loads(run("suggest", "--catalog", catalog, "--json").output)
    for_face = [r for r in rows if r["face"] == face]
    assert for_face and for_face[0]["b"] is None
    assert [colour_of[r["a"]] for r in for_face][0] == 3  # the nearest person but its own, rejected one
    assert person[0] not in [r["a"] for r in for_face]
    assert run("reject", face, "--person", person[3], "--catalog", catalog).exit_code == 0  # a no
    again = [r["a"] for r in json.loads(run("suggest", "--catalog", catalog, "--json").output) if r["face"] == face]
    assert person[3] not in again and person[0] not in again
    text = run("suggest", "--catalog", catalog).output
    assert f"faceclust move {face} " in text and f"faceclust reject {face} --person " in text


def test_a_face_unlike_its_person_is_asked_about_first_and_an_answer_settles_it(tmp_path, monkeypatch):
    """With a calibration that fits the model, a face clustered into the wrong person (here
    put there as a clustering would) is asked about before any merge; no rejects it, yes keeps
    it (pinned) and it is never asked again."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model
    from faceclust.find import calibration as calibration_module
    from faceclust.find import suggest as suggest_module

    root = tmp_path / "photos"
    for colour, count in ((0, 3), (3, 2), (2, 2)):
        for k in range(count):
            draw_photo(root / f"c{colour}_{k}.png", [(colour, 40, 40, 60)])
    catalog = tmp_path / "c.sqlite"
    assert run("scan", root, "--catalog", catalog, *FAKE, "--quiet").exit_code == 0
    assert run("cluster", "--catalog", catalog, "--quiet").exit_code == 0
    with Catalog(catalog) as cat:
        model_id = catalog_model(cat).model_id
        records = cat.face_records(model_id)
        colour = {int(f): int(p.rsplit("/", 1)[1][1]) for f, p in zip(records["face_id"], records["path"])}
        person_of = {int(f): int(p) for f, p in zip(records["face_id"], records["person"])}
        zero = next(person_of[f] for f, c in colour.items() if c == 0)
        stray = next(f for f, c in colour.items() if c == 3)
        cat.add_assignments([(stray, zero, "cluster")])  # a clustering's mistake
    # P(same) = 1/2 halfway between one colour (distance 0) and the nearest other colours.
    half = min(fake_distance(a, b) for a in (0, 2, 3) for b in (0, 2, 3) if a < b) / 2
    fitted = calibration_module.Calibration(model_id, "distance", 40 * half, (-40.0,))
    monkeypatch.setattr(calibration_module, "load_calibration", lambda path, model: fitted)

    first = suggest_module.suggest_library(catalog, limit=5)[0]
    assert (first.kind, first.a, first.face) == ("member", zero, stray)
    assert first.probability < 0.01 and stray not in first.faces_a
    assert suggest_module.suggest_library(catalog, limit=5, check_members=False)[0].kind == "merge"
    text = run("suggest", "--catalog", catalog).output
    assert text.startswith(f"face {stray} of person {zero}:") and f"faceclust reject {stray}" in text
    assert run("move", stray, zero, "--catalog", catalog).exit_code == 0  # yes: it stays, pinned
    assert all(s.face != stray for s in suggest_module.suggest_library(catalog, limit=None))
    assert run("undo", "--catalog", catalog).exit_code == 0
    assert suggest_module.suggest_library(catalog, limit=1)[0].face == stray
    assert run("reject", stray, "--catalog", catalog).exit_code == 0  # no: it leaves
    with Catalog(catalog) as cat:
        assert stray not in cat.assignments_of([stray])
    assert all(not (s.face == stray and s.a == zero) for s in suggest_module.suggest_library(catalog, limit=None))


def test_a_fitted_judge_ranks_by_the_chance_an_answer_changes_the_people(tmp_path, people, monkeypatch):
    from faceclust.faces.embed import catalog_model
    from faceclust.find import judge as judge_module
    from faceclust.find import suggest as suggest_module
    from faceclust.find.suggest import Evidence

    rng = np.random.default_rng(0)
    # Evidence where a pair is one person when its faces are close on average.
    evidence = [Evidence("merge", float(m), float(m) - 0.1, 0.5, 2, 3) for m in rng.uniform(0.2, 1.2, 400)]
    changes = [e.mean + rng.normal(0, 0.05) < 0.6 for e in evidence]
    judge = judge_module.fit_judge("some-model", evidence, changes)
    near, far = judge.chances([Evidence("merge", 0.3, 0.2, 0.5, 2, 3), Evidence("merge", 1.0, 0.9, 0.5, 2, 3)])
    assert near > 0.9 and far < 0.1
    assert set(judge.kinds) == {"merge"}  # too little evidence of the other kinds: not fitted
    assert judge.chances([Evidence("face", 0.3, 0.2, 0.5, 1, 3)])[0] == 0.5
    path = tmp_path / "judge.json"
    judge.save(path)
    assert judge_module.load_judge("some-model", path) == judge
    assert judge_module.load_judge("another-model", path) is None
    assert judge_module.load_judge("some-model", tmp_path / "missing.json") is None

    # In suggest: the judge's order and its probability, whatever the distances say.
    catalog, colour_of = people
    from faceclust.catalog import Catalog

    with Catalog(catalog) as cat:
        model_id = catalog_model(cat).model_id
    plain = suggest_module.suggest_library(catalog, limit=None, judge=False)
    favourite = plain[-1]  # the least alike pair by distance
    contrary = judge_module.Judge(model_id, {"merge": {"centre": [0.0] * 5, "scale": [1.0] * 5,
                                                       "coef": [40.0, 0, 0, 0, 0], "intercept": -40 * favourite.distance}})
    ranked = suggest_module.suggest_library(catalog, limit=None, judge=contrary)
    assert (ranked[0].a, ranked[0].b) == (favourite.a, favourite.b)
    assert [s.distance for s in ranked] == sorted((s.distance for s in plain), reverse=True)
    assert ranked[0].probability == pytest.approx(0.5, abs=1e-3)
    monkeypatch.setattr(judge_module, "JUDGE_FILE", path)  # a shipped judge for another model is not used
    assert [(s.a, s.b) for s in suggest_module.suggest_library(catalog, limit=None)] == [(s.a, s.b) for s in plain]


def test_a_judge_follows_the_rates_this_librarys_answers_show():
    """A kind whose answers changed the people less often than the judge expected gets lower
    chances (more so the more answers), one that did as expected keeps them, and the order
    within a kind never changes."""
    from faceclust.find.judge import ANSWER_PRIOR, Judge
    from faceclust.find.suggest import Evidence

    fit = {"centre": [0.0] * 5, "scale": [1.0] * 5, "coef": [-4.0, 0, 0, 0, 0], "intercept": 2.0}
    judge = Judge("m", {"member": dict(fit), "merge": dict(fit)})
    evidence = [Evidence("member", 0.3, 0.2, 0.5, 1, 5), Evidence("member", 0.6, 0.5, 0.5, 1, 5),
                Evidence("merge", 0.3, 0.2, 0.5, 2, 5)]
    before = judge.chances(evidence)
    assert judge.adapted({}).chances(evidence).tolist() == before.tolist()
    expected = float(before[0])
    few = judge.adapted({"member": {"asked": 5, "changed": 0, "expected": 5 * expected}}).chances(evidence)
    many = judge.adapted({"member": {"asked": 50, "changed": 0, "expected": 50 * expected}}).chances(evidence)
    assert many[0] < few[0] < before[0] and many[1] < few[1] < before[1]
    assert few[0] > few[1] and many[0] > many[1]  # the order within the kind stays
    assert few[2] == before[2] == many[2]  # other kinds are untouched
    # Answers that went as the judge expected move nothing; the prior is worth ANSWER_PRIOR answers.
    same = judge.adapted({"member": {"asked": 8, "changed": 8 * expected, "expected": 8 * expected}})
    assert same.chances(evidence)[0] == pytest.approx(before[0])
    rate = (0 + ANSWER_PRIOR * expected) / (ANSWER_PRIOR + ANSWER_PRIOR)
    half = judge.adapted({"member": {"asked": ANSWER_PRIOR, "changed": 0, "expected": ANSWER_PRIOR * expected}})
    assert half.chances(evidence)[0] == pytest.approx(rate)


def test_how_much_the_judge_trusts_itself_follows_how_much_the_libraries_disagreed():
    """A kind's prior_answers: large where the libraries it was fitted on showed the same rate
    (only their sizes' noise apart), small where they differed; a kind with that small prior
    moves further on the same answers; fitting on labelled libraries sets it per kind."""
    from faceclust.find.judge import ANSWER_PRIOR, PRIOR_RANGE, Judge, fit_judge, prior_answers
    from faceclust.find.suggest import Evidence

    assert prior_answers([63, 63], [84, 172]) < 4  # doubtful faces: 0.75 and 0.37 of the time
    assert prior_answers([30, 61], [300, 600]) == PRIOR_RANGE[1]  # 0.100 and 0.102: agreeing
    assert 10 < prior_answers([20, 40], [200, 250]) < PRIOR_RANGE[1]  # 0.10 and 0.16
    assert prior_answers([5], [50]) == ANSWER_PRIOR == prior_answers([], [])
    fit = {"centre": [0.0] * 5, "scale": [1.0] * 5, "coef": [-4.0, 0, 0, 0, 0], "intercept": 2.0}
    sure, unsure = Judge("m", {"member": {**fit, "prior_answers": 50.0}}), Judge("m", {"member": {**fit, "prior_answers": 1.0}})
    evidence = [Evidence("member", 0.3, 0.2, 0.5, 1, 5)]
    expected = float(sure.chances(evidence)[0])
    answered = {"member": {"asked": 5, "changed": 0, "expected": 5 * expected}}
    assert unsure.adapted(answered).chances(evidence)[0] < sure.adapted(answered).chances(evidence)[0] < expected
    assert unsure.adapted(answered).chances(evidence)[0] == pytest.approx(expected / 6)  # (0 + 1 p) / (5 + 1)

    rng = np.random.default_rng(0)
    evidence = [Evidence(kind, float(m), float(m) - 0.1, 0.5, 1, 5) for kind in ("member", "merge")
                for m in rng.uniform(0.3, 0.9, 400)]
    libraries = ["a", "b"] * 400
    changes = [(kind == "member" and (lib == "a") == (i % 4 != 0)) or (kind == "merge" and i // 2 % 10 == 0)
               for i, (kind, lib) in enumerate(zip([e.kind for e in evidence], libraries))]
    fitted = fit_judge("m", evidence, changes, libraries=libraries)
    assert fitted.kinds["member"]["prior_answers"] < 2 < 50 < fitted.kinds["merge"]["prior_answers"]
    assert "prior_answers" not in fit_judge("m", evidence, changes).kinds["member"]


def test_answers_are_noted_per_kind_and_move_the_judge_in_suggest(people, monkeypatch):
    from faceclust.catalog import Catalog
    from faceclust.find import answers as answers_module
    from faceclust.faces.embed import catalog_model
    from faceclust.find import judge as judge_module
    from faceclust.find import suggest as suggest_module

    catalog, _colour_of = people
    with Catalog(catalog) as cat:
        model_id = catalog_model(cat).model_id
    judge = judge_module.Judge(model_id, {"merge": {"centre": [0.0] * 5, "scale": [1.0] * 5,
                                                    "coef": [-4.0, 0, 0, 0, 0], "intercept": 2.0}})
    first = suggest_module.suggest_library(catalog, limit=None, judge=judge)
    assert first and all(s.chance is not None for s in first)
    with Catalog(catalog) as cat:
        for _ in range(30):
            answers_module.note_answer(cat, first[0], changed=False)
        answers_module.note_answer(cat, suggest_module.Suggestion(1, 2, None, 0.5, 0, [], []), changed=True)  # no judge
        counts = answers_module.answer_counts(cat)
    assert first[0].judged == pytest.approx(first[0].chance, abs=1e-4)  # no answers yet: the same judge
    assert counts == {"merge": {"asked": 30, "changed": 0, "expected": pytest.approx(30 * first[0].judged)}}
    after = suggest_module.suggest_library(catalog, limit=None, judge=judge)
    assert [(s.a, s.b) for s in after] == [(s.a, s.b) for s in first]  # one kind: the same order
    assert after[0].chance < first[0].chance
    assert after[0].judged == pytest.approx(first[0].judged)  # what is noted stays the shipped judge's
    # Noting answers from suggestions made after the judge moved still converges on the rate the
    # answers show: one in ten changed the people where the judge expected one in two.
    fit = {"centre": [0.0] * 5, "scale": [1.0] * 5, "coef": [0.0] * 5, "intercept": 0.0}
    half = judge_module.Judge(model_id, {"merge": fit})
    with Catalog(catalog) as cat:
        cat.set_setting(answers_module.ANSWERS_SETTING, "{}")
        for n in range(200):
            top = suggest_module.suggest_merges(cat, limit=1, judge=half)[0]
            answers_module.note_answer(cat, top, changed=n % 10 == 0)
        final = suggest_module.suggest_merges(cat, limit=1, judge=half)[0]
    assert final.chance == pytest.approx((20 + 10 * 0.5) / (200 + 10), abs=1e-3)


def test_a_kept_queue_is_put_in_the_order_the_answers_since_give(people):
    """`serve` keeps its queue between answers: rerank puts it in the order the judge gives
    after the answers noted since, a group of faces counting the chances of all its faces."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model
    from faceclust.find import judge as judge_module
    from faceclust.find import suggest as suggest_module
    from faceclust.find.answers import note_answer, rerank
    from faceclust.find.suggest import Evidence, Suggestion

    catalog, _colour_of = people
    with Catalog(catalog) as cat:
        model_id = catalog_model(cat).model_id
    fit = {"centre": [0.0] * 5, "scale": [1.0] * 5, "coef": [-4.0, 0, 0, 0, 0], "intercept": 2.0}
    judge = judge_module.Judge(model_id, {kind: dict(fit) for kind in judge_module.KINDS})
    face = Evidence("face", 0.5, 0.4, 0.5, 1, 3)

    def queue():
        out = []
        for kind, evidence in (("merge", Evidence("merge", 0.5, 0.4, 0.5, 1, 3)),
                               ("member", Evidence("member", 0.5, 0.4, 0.5, 1, 3)),
                               ("faces", Evidence("faces", 0.5, 0.4, 0.5, 2, 3, (face, face)))):
            s = Suggestion(1, None, 0.5, 0.5, 0, [], [], kind=kind, evidence=evidence, chance=0.5)
            out.append(s)
        return out

    p = float(judge.chances([face])[0])
    with Catalog(catalog) as cat:
        first = rerank(cat, queue(), judge=judge)
        assert [s.kind for s in first] == ["faces", "merge", "member"]  # two faces' chances, then ties in order
        assert first[0].chance == pytest.approx(2 * p, abs=1e-4) and first[1].chance == pytest.approx(p, abs=1e-4)
        asked = Suggestion(1, 2, 0.5, 0.5, 0, [], [], kind="merge", judged=p)
        for _ in range(30):
            note_answer(cat, asked, changed=False)  # merges changed nothing in this library
        after = rerank(cat, queue(), judge=judge)
        assert [s.kind for s in after] == ["faces", "member", "merge"]
        assert after[2].chance < p
        # No judge for the fake model: as they are.
        assert [s.kind for s in rerank(cat, queue(), judge=False)] == ["merge", "member", "faces"]
    assert suggest_module._gain(0.5, Evidence("merge", 0.5, 0.4, 0.5, 4, 5)) == 2.0



def test_a_group_question_holds_one_face_of_a_photo():
    """Two faces of nobody in one photo that both look most like X are not asked about together
    (ticking both would be refused: one person appears once in a photo): the group keeps the
    likelier, the other is asked about on its own; faces of other photos still group."""
    from faceclust.find.suggest import Evidence, _grouped

    def lone(row, chance, person=7):
        e = Evidence("face", 0.5, 0.4, 0.5, 1, 10)
        return chance, (0.5, 0, row, ("lone", row, person), e)

    photo_of = np.array([100, 100, 101, 102])  # rows 0 and 1: one photo
    out = _grouped([lone(0, 0.3), lone(1, 0.6), lone(2, 0.4), lone(3, 0.2, person=8)], photo_of)
    groups = [(c, r) for c, r in out if r[3][0] == "faces"]
    singles = sorted(r[3][1] for c, r in out if r[3][0] == "lone")
    assert len(groups) == 1 and groups[0][1][3][1] == [1, 2] and groups[0][0] == pytest.approx(1.0)
    assert singles == [0, 3]  # row 0 on its own (same photo as row 1), row 3 alone for its person
