"""Verification: pair features, the calibration (fit, ship, apply), pair scores, verify_photos."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import draw_photo

from faceclust.errors import FaceclustError
from faceclust.faces.detect import DetectOptions
from faceclust.find.calibration import (
    FEATURE_SETS,
    Calibration,
    CalibrationError,
    best_accuracy,
    brier_score,
    calibrate_library,
    expected_calibration_error,
    fit_calibration,
    labelled_pairs,
    load_calibration,
    pair_features,
    reliability_table,
)
from faceclust.find.verify import DEFAULT_THRESHOLD, NoFaceError, verify_photos

FAKE_DETECT = DetectOptions(detector="fake", min_face=20)
FAKE_MODEL = "fake-embedder:1"


def cli_group():
    """The find commands on a group that turns library errors into messages, as the main one does."""
    from faceclust.cli import _Group
    from faceclust.cli.find import COMMANDS

    group = _Group("faceclust")
    for command in COMMANDS:
        group.add_command(command)
    return group


def invoke(*args):
    return CliRunner().invoke(cli_group(), [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def fake_default_embedder(monkeypatch):
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])


def fake_calibration(**info) -> Calibration:
    return Calibration(FAKE_MODEL, "distance", intercept=6.0, coef=(-10.0,), info={"fitted_on": "tests", **info})


# -- features and the calibration ----------------------------------------------------------------


@pytest.mark.parametrize("features, width", [("distance", 1), ("distance+squared", 2), ("distance+absdiff", 5)])
def test_pair_features(features, width):
    a = np.zeros((3, 4))
    b = np.array([[3, 4, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]], float)
    x = pair_features(a, b, features)
    assert x.shape == (3, width)
    assert np.allclose(x[:, 0], [5, 1, 2])
    if features == "distance+squared":
        assert np.allclose(x[:, 1], [25, 1, 4])
    if features == "distance+absdiff":
        assert np.allclose(x[:, 1:], np.abs(b))


def test_pair_features_refuses_unknown_sets_and_shapes():
    with pytest.raises(ValueError, match="features must be one of"):
        pair_features(np.zeros((1, 2)), np.zeros((1, 2)), "cosine")
    with pytest.raises(ValueError, match="same shape"):
        pair_features(np.zeros((1, 2)), np.zeros((2, 2)))


def test_probability_is_a_logistic_of_the_distance_with_a_prior_shift():
    cal = Calibration("m", "distance", intercept=9.0, coef=(-15.0,))
    a = np.zeros((3, 2))
    b = np.array([[0.6, 0], [0.2, 0], [1.0, 0]])
    p = cal.probability(a, b)
    assert p[0] == pytest.approx(0.5)
    assert p[1] > 0.95 and p[2] < 0.05
    # Odds of 1:9 shift the logit by log(1/9).
    assert cal.probability(a, b, prior=0.1)[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="prior"):
        cal.probability(a, b, prior=1.0)


def test_fit_recovers_a_known_logistic_model():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1.2, 40_000)
    truth = 1 / (1 + np.exp(-(8.0 - 14.0 * d)))
    same = rng.uniform(size=d.size) < truth
    a = np.zeros((d.size, 2))
    b = np.stack([d, np.zeros_like(d)], axis=1)
    cal = fit_calibration(a, b, same, "distance", "m")
    # Balanced weighting moves the intercept by log(n_same / n_diff); the slope is the model's.
    shift = np.log(same.sum() / (~same).sum())
    assert cal.coef[0] == pytest.approx(-14.0, rel=0.1)
    assert cal.intercept + shift == pytest.approx(8.0, rel=0.1)


def test_fit_needs_both_kinds_of_pair():
    with pytest.raises(FaceclustError, match="both"):
        fit_calibration(np.zeros((3, 2)), np.ones((3, 2)), np.ones(3, bool))


def test_calibration_round_trip_and_damaged_files(tmp_path):
    cal = Calibration("m", "distance+absdiff", 1.5, (-2.0, 0.1, 0.2), info={"fitted_on": "x"})
    cal.save(tmp_path / "c.json")
    back = load_calibration(tmp_path / "c.json")
    assert back == cal and back.info == {"fitted_on": "x"}
    (tmp_path / "bad.json").write_text("{\"model_id\": \"m\"}")
    with pytest.raises(CalibrationError, match="faceclust calibrate"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(CalibrationError, match="3 weights"):
        cal.probability(np.zeros((1, 4)), np.zeros((1, 4)))


def test_the_shipped_calibration_is_for_the_default_model_and_sensible():
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    cal = load_calibration()
    assert cal.features in FEATURE_SETS
    assert cal.model_id == embedders.create(DEFAULT_EMBEDDER).identity()
    assert cal.info["fitted_on"] == "lfw_dev" and cal.info["same_pairs"] > 1000
    d = np.linspace(0, 1.2, 25)
    a, b = np.zeros((25, 128)), np.zeros((25, 128))
    b[:, 0] = d
    if cal.features == "distance+absdiff":
        pytest.skip("probability depends on more than the distance")
    p = cal.probability(a, b)
    assert np.all(np.diff(p) < 0)  # farther is less likely the same person
    assert p[0] > 0.99 and p[-1] < 0.01


# -- pairs and scores, each against a plain loop ---------------------------------------------------


def test_labelled_pairs_match_a_loop():
    labels = ["a", "b", "a", "c", "b", "a", "d"]
    i, j, same = labelled_pairs(labels, max_negatives=1000)
    got = {(int(x), int(y), bool(s)) for x, y, s in zip(i, j, same)}
    want = {(x, y, labels[x] == labels[y]) for x, y in itertools.combinations(range(len(labels)), 2)}
    assert got == want and len(got) == len(i)
    assert np.all(i < j)


def test_labelled_pairs_sample_negatives_without_repeats():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 30, 300)
    i, j, same = labelled_pairs(labels, max_negatives=500, seed=3)
    assert (~same).sum() == 500
    n_same = sum(labels[x] == labels[y] for x, y in itertools.combinations(range(300), 2))
    assert same.sum() == n_same
    assert np.all(labels[i[same]] == labels[j[same]]) and np.all(labels[i[~same]] != labels[j[~same]])
    assert len({(x, y) for x, y in zip(i, j)}) == len(i) and np.all(i < j)
    again = labelled_pairs(labels, max_negatives=500, seed=3)
    assert np.array_equal(again[0], i) and np.array_equal(again[1], j)


def test_best_accuracy_matches_a_loop():
    rng = np.random.default_rng(2)
    same = rng.normal(0.4, 0.1, 50)
    diff = rng.normal(0.7, 0.1, 80)
    acc, t = best_accuracy(same, diff)
    loop = max(((np.mean(same < c) + np.mean(diff >= c)) / 2, c) for c in np.r_[same, diff, np.inf])
    assert acc == pytest.approx(loop[0])
    assert (np.mean(same < t) + np.mean(diff >= t)) / 2 == pytest.approx(acc)


def test_reliability_brier_and_ece_match_loops():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=500)
    y = rng.uniform(size=500) < p
    rows = reliability_table(p, y, bins=5)
    for row in rows:
        inside = [k for k in range(500) if row["low"] <= p[k] < row["high"] or (row["high"] == 1 and p[k] == 1)]
        assert row["pairs"] == len(inside)
        assert row["predicted"] == pytest.approx(np.mean(p[inside]))
        assert row["observed"] == pytest.approx(np.mean(y[inside]))
    assert brier_score(p, y) == pytest.approx(sum((p[k] - y[k]) ** 2 for k in range(500)) / 500)
    ece = sum(r["pairs"] * abs(r["predicted"] - r["observed"]) for r in rows) / 500
    assert expected_calibration_error(p, y, bins=5) == pytest.approx(ece)


# -- verify_photos and the command, with the fake models ------------------------------------------


@pytest.fixture
def photos(tmp_path):
    return {
        "red": draw_photo(tmp_path / "red.png", [(0, 20, 20, 40)]),
        "red_again": draw_photo(tmp_path / "red_again.png", [(0, 200, 100, 50)]),
        "blue_red": draw_photo(tmp_path / "blue_red.png", [(0, 200, 30, 40), (2, 10, 10, 40)]),
        "empty": draw_photo(tmp_path / "empty.png", []),
    }


def test_verify_same_and_different_faces(photos):
    result = verify_photos(photos["red"], photos["blue_red"], detect=FAKE_DETECT, embedder="fake",
                           calibration=fake_calibration())
    assert len(result.photo_b) == 2
    assert result.photo_b.describe(0)["box"][0] == 10  # numbered left to right: blue first
    by_face = {p["face_b"]: p for p in result.pairs}
    assert by_face[1]["distance"] == pytest.approx(0, abs=1e-4) and by_face[1]["same"]
    assert by_face[0]["distance"] > DEFAULT_THRESHOLD and not by_face[0]["same"]
    assert by_face[1]["probability"] > 0.99 and by_face[0]["probability"] < 0.5
    assert result.note is None and result.calibration == "tests"


def test_verify_picks_faces_and_says_what_exists(photos):
    result = verify_photos(photos["blue_red"], photos["red_again"], face_a=1, detect=FAKE_DETECT, embedder="fake",
                           calibration=fake_calibration())
    assert [(p["face_a"], p["face_b"]) for p in result.pairs] == [(1, 0)]
    with pytest.raises(FaceclustError, match="2 face.*numbered 0 to 1"):
        verify_photos(photos["blue_red"], photos["red"], face_a=2, detect=FAKE_DETECT, embedder="fake",
                      calibration=fake_calibration())
    with pytest.raises(NoFaceError, match="no face found in .*empty.png"):
        verify_photos(photos["red"], photos["empty"], detect=FAKE_DETECT, embedder="fake",
                      calibration=fake_calibration())


def test_a_calibration_for_another_model_gives_no_probability(photos):
    other = Calibration("another-model:1", "distance", 6.0, (-10.0,))
    result = verify_photos(photos["red"], photos["red_again"], detect=FAKE_DETECT, embedder="fake",
                           calibration=other)
    assert result.pairs[0]["same"] and result.pairs[0]["probability"] is None
    assert "another-model:1" in result.note and "faceclust calibrate" in result.note


def test_verify_command_json_and_text(photos, tmp_path, fake_default_embedder):
    fake_calibration().save(tmp_path / "cal.json")
    args = ["verify", photos["blue_red"], photos["red"], "--detector", "fake", "--min-face", "20",
            "--calibration", tmp_path / "cal.json"]
    out = json.loads(invoke(*args, "--json").stdout)
    assert len(out["pairs"]) == 2 and out["photo_a"]["faces"][1]["face"] == 1
    text = invoke(*args, "--face", "1").output
    assert "A1 vs B0: distance 0.000  same person  P(same) 0.998" in text
    assert "threshold 0.6; probability calibrated on tests" in text
    result = invoke(*args, "--face", "5")
    assert result.exit_code == 2 and "face 5 does not exist" in result.output
    assert invoke(*args, "--face", "0", "--face", "0", "--face", "0").exit_code == 2


def test_calibrate_on_a_labelled_tree(tmp_path):
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    tree = tmp_path / "people"
    colours = {"anna": 0, "bo": 1, "cy": 2}
    for name, colour in colours.items():
        for k in range(3):
            faces = [(colour, 20 + 5 * k, 20, 40)]
            if name == "cy" and k == 0:
                faces.append((3, 200, 150, 25))  # a smaller bystander: not the label's face
            draw_photo(tree / name / f"{k}.png", faces)
    cat = tmp_path / "c.sqlite"
    scan_library(cat, [tree], ScanOptions(detect=FAKE_DETECT, embedder="fake"))
    summary = calibrate_library(cat, tree, tmp_path / "cal.json", model_id=FAKE_MODEL)
    assert summary["identities"] == 3 and summary["faces"] == 9
    assert summary["same_pairs"] == 9 and summary["different_pairs"] == 27
    cal = load_calibration(tmp_path / "cal.json")
    assert cal.model_id == FAKE_MODEL and cal.info["fitted_on"] == "people"
    assert cal.coef[0] < 0 and summary["fit_brier_even_odds"] < 0.1
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(FaceclustError, match="scan it first"):
        calibrate_library(cat, tmp_path / "elsewhere", tmp_path / "x.json", model_id=FAKE_MODEL)


def test_labelled_faces_skip_bystanders(tmp_path):
    from faceclust.catalog import Catalog
    from faceclust.find.calibration import labelled_faces
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    tree = tmp_path / "people"
    for k in range(3):
        # A bigger bystander (yellow) next to red in one photo: red is still the label's face.
        draw_photo(tree / "red" / f"{k}.png", [(0, 20, 20, 40)] + ([(3, 150, 20, 90)] if k == 1 else []))
    draw_photo(tree / "alone" / "0.png", [(2, 20, 20, 40), (1, 150, 20, 70)])  # nobody to compare: largest
    scan_library(tmp_path / "c.sqlite", [tree], ScanOptions(detect=FAKE_DETECT, embedder="fake"))
    with Catalog(tmp_path / "c.sqlite") as cat:
        faces = labelled_faces(cat, tree, FAKE_MODEL)
        boxes = {r[0]: r[2] for r in cat.iter_faces(None)}
    assert list(faces.labels) == ["alone", "red", "red", "red"]
    assert [boxes[f] for f in faces.face_ids] == [150, 20, 20, 20]  # left edge of each chosen face


def test_calibrate_command(tmp_path, fake_default_embedder):
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    for name, colour in (("a", 0), ("b", 2)):
        for k in range(2):
            draw_photo(tmp_path / "tree" / name / f"{k}.png", [(colour, 20 + 9 * k, 20, 40)])
    cat = tmp_path / "c.sqlite"
    scan_library(cat, [tmp_path / "tree"], ScanOptions(detect=FAKE_DETECT, embedder="fake"))
    out = json.loads(invoke("calibrate", tmp_path / "tree", "--catalog", cat, "-o", tmp_path / "cal.json",
                            "--features", "distance+squared", "--json").stdout)
    assert out["same_pairs"] == 2 and out["different_pairs"] == 4 and out["features"] == "distance+squared"
    bad = invoke("calibrate", tmp_path / "tree", "--catalog", cat, "-o", tmp_path / "x.json", "--features", "cosine")
    assert bad.exit_code == 2 and "'cosine' is not one of" in bad.output and "distance+absdiff" in bad.output


# -- real photos ---------------------------------------------------------------------------------


@pytest.mark.models
@pytest.mark.shared
def test_verify_real_photos(shared_data):
    lfw = shared_data / "lfw_dev"
    people = sorted(p for p in lfw.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)
    one, other = people[0], people[1]
    a, b = sorted(one.glob("*.jpg"))[:2]
    c = sorted(other.glob("*.jpg"))[0]
    same = verify_photos(a, b)
    best = min(same.pairs, key=lambda p: p["distance"])
    assert best["same"] and best["probability"] > 0.5
    different = verify_photos(a, c)
    assert same.note is None and different.note is None
    # Bystanders aside, the main faces of two people are told apart.
    assert any(not p["same"] and p["probability"] < 0.5 for p in different.pairs)


def test_probability_at_a_distance_is_the_pairs_probability():
    cal = Calibration("m", "distance", intercept=9.0, coef=(-15.0,))
    a, b = np.zeros((1, 4)), np.full((1, 4), 0.35)  # distance 0.7
    assert cal.probability_at(0.6) == pytest.approx(0.5)
    assert cal.probability_at(0.7) == pytest.approx(float(cal.probability(a, b)[0]))
    assert Calibration("m", "distance+squared", 1.0, (1.0, 1.0)).probability_at(0.5) is None
