"""Search by face: the index lookup against a plain loop, search_catalog with the fake models,
person_photos, and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import draw_photo

from faceclust.catalog import Catalog
from faceclust.catalog.index import FaceIndex
from faceclust.faces.detect import DetectOptions
from faceclust.find.search import FaceRows, match_vectors, person_photos, search_catalog

FAKE_DETECT = DetectOptions(detector="fake", min_face=20)


class Rows(FaceRows):
    """FaceRows without a catalog: face id -> (photo, box, person)."""

    def __init__(self, rows: dict) -> None:
        self.rows = rows
        self.names = {}


def test_match_vectors_matches_a_loop():
    rng = np.random.default_rng(0)
    vectors = rng.normal(scale=0.06, size=(300, 16)).astype(np.float32)
    ids = np.arange(1000, 1300)
    rows = Rows({int(f): (f"/p/{f // 3}.jpg", [0, 0, 1, 1], None) for f in ids})
    index = FaceIndex.build(ids, vectors, "x")
    queries = vectors[:5] + rng.normal(scale=0.01, size=(5, 16)).astype(np.float32)
    got = match_vectors(index, rows, queries, top=7, threshold=0.3, exclude_photo="/p/333.jpg")
    for q, matches in zip(queries, got):
        d = np.linalg.norm(vectors - q, axis=1)
        want = [int(ids[k]) for k in np.argsort(d) if d[k] < 0.3 and rows.rows[int(ids[k])][0] != "/p/333.jpg"][:7]
        assert [m.face_id for m in matches] == want
        assert all(a.distance <= b.distance for a, b in zip(matches, matches[1:]))
        assert [m.distance for m in matches] == pytest.approx([float(np.linalg.norm(vectors[f - 1000] - q))
                                                               for f in want], abs=1e-4)


def test_match_vectors_validates_and_handles_an_empty_index():
    index = FaceIndex.build(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), "x")
    assert match_vectors(index, Rows({}), np.zeros((2, 4), np.float32)) == [[], []]
    with pytest.raises(ValueError, match="top"):
        match_vectors(index, Rows({}), np.zeros((1, 4)), top=0)
    with pytest.raises(ValueError, match="threshold"):
        match_vectors(index, Rows({}), np.zeros((1, 4)), threshold=0)


@pytest.fixture
def library(tmp_path):
    """Red in two photos, green with a blue bystander in one; scanned and clustered."""
    from faceclust.people import ClusterOptions, cluster_library
    from faceclust.scan.scanner import scan_library

    root = tmp_path / "photos"
    draw_photo(root / "red1.png", [(0, 10, 10, 40)])
    draw_photo(root / "red2.png", [(0, 100, 60, 50)])
    draw_photo(root / "green.png", [(1, 10, 10, 40), (2, 200, 100, 40)])
    draw_photo(root / "red3.png", [(0, 40, 40, 44)])
    cat = tmp_path / "c.sqlite"
    scan_library(cat, [root], _scan_options())
    cluster_library(cat, ClusterOptions(min_faces=2), model_id="fake-embedder:1")
    return cat, root


def _scan_options():
    from faceclust.scan.options import ScanOptions

    return ScanOptions(detect=FAKE_DETECT, embedder="fake")


def test_search_a_photo_outside_the_catalog(library, tmp_path):
    cat, root = library
    query = draw_photo(tmp_path / "elsewhere" / "q.png", [(2, 30, 30, 45), (0, 150, 50, 60)])
    with Catalog(cat) as catalog:
        result = search_catalog(catalog, query, top=2, detect=FAKE_DETECT, embedder="fake")
    assert result.catalog_faces == 5 and result.index_kind == "flat"
    blue, red = result.faces  # numbered left to right
    assert [p["photo"].rsplit("/", 1)[1] for p in blue.photos] == ["green.png"]
    assert blue.person is None  # a lone bystander is nobody yet
    assert len(red.matches) == 2 and all(m.distance < 0.01 for m in red.matches)
    assert {m.photo.rsplit("/", 1)[1] for m in red.matches} <= {"red1.png", "red2.png", "red3.png"}
    assert red.person is not None and red.person["matches"] == 2
    assert json.loads(json.dumps(result.as_dict()))["faces"][1]["person"]["id"] == red.person["id"]


def test_search_leaves_out_the_query_photo_itself(library):
    cat, root = library
    with Catalog(cat) as catalog:
        result = search_catalog(catalog, root / "red1.png", detect=FAKE_DETECT, embedder="fake")
    photos = [p["photo"].rsplit("/", 1)[1] for p in result.faces[0].photos]
    assert sorted(photos) == ["red2.png", "red3.png"]


def test_search_threshold_keeps_only_close_faces(library, tmp_path):
    cat, _ = library
    query = draw_photo(tmp_path / "q.png", [(3, 30, 30, 45)])  # yellow: nobody in the catalog
    with Catalog(cat) as catalog:
        # The fake embedder's colours lie 0.5 apart or more; real people, about 0.6.
        result = search_catalog(catalog, query, threshold=0.3, detect=FAKE_DETECT, embedder="fake")
        assert result.faces[0].matches == []
        loose = search_catalog(catalog, query, threshold=1.9, detect=FAKE_DETECT, embedder="fake")
    assert len(loose.faces[0].matches) == 5


def test_person_photos(library):
    cat, _ = library
    with Catalog(cat) as catalog:
        red = next(p["id"] for p in catalog.people() if p["faces"] == 3)
    found = person_photos(cat, str(red))
    assert [p["photo"].rsplit("/", 1)[1] for p in found["photos"]] == ["red1.png", "red2.png", "red3.png"]


def test_search_command(library, tmp_path, monkeypatch):
    from test_verify import cli_group

    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    cat, root = library
    query = draw_photo(tmp_path / "q.png", [(0, 30, 30, 45)])

    def invoke(*args):
        return CliRunner().invoke(cli_group(), [str(a) for a in args], catch_exceptions=False)

    args = ["search", query, "--catalog", cat, "--detector", "fake", "--min-face", "20"]
    out = json.loads(invoke(*args, "--json", "--top", "2").stdout)
    assert len(out["faces"]) == 1 and len(out["faces"][0]["matches"]) == 2
    text = invoke(*args).output
    assert "face 0 [30.0, 30.0, 75.0, 75.0]: 3 photos; person" in text and "red2.png" in text
    person = out["faces"][0]["person"]["id"]
    listed = invoke("search", "--person", person, "--catalog", cat).output
    assert listed.startswith(f"person {person}: 3 photos")
    assert invoke("search", "--catalog", cat).exit_code == 2
    assert invoke("search", query, "--person", "1", "--catalog", cat).exit_code == 2
    missing = invoke("search", "--person", "999", "--catalog", cat)
    assert missing.exit_code == 2 and "faceclust people" in missing.output
