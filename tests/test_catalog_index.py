"""The catalog's schema handling and the FAISS index."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from faceclust.catalog import SCHEMA_VERSION, Catalog, default_catalog_path
from faceclust.catalog.index import FaceIndex, open_index
from faceclust.errors import CatalogError
from faceclust.records import FaceArrays, PhotoResult


def test_new_catalog_is_migrated_and_uses_wal(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.schema_version == SCHEMA_VERSION
        assert cat.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_catalog_from_a_newer_faceclust_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    Catalog(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(CatalogError, match="upgrade faceclust"):
        Catalog(path)


def test_a_file_that_is_not_a_catalog_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match="faceclust catalog"):
        Catalog(path)


def test_default_catalog_path(monkeypatch, tmp_path):
    monkeypatch.setenv("FACECLUST_CATALOG", str(tmp_path / "x.sqlite"))
    assert default_catalog_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("FACECLUST_CATALOG")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_catalog_path() == tmp_path / "faceclust" / "catalog.sqlite"


def _faces(n, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return FaceArrays(rng.uniform(0, 100, (n, 4)).astype(np.float32), np.ones(n, np.float32),
                      rng.uniform(0, 100, (n, 5, 2)).astype(np.float32),
                      rng.normal(size=(n, dim)).astype(np.float32))


def test_a_failed_batch_leaves_nothing_behind(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        good = PhotoResult("faces", "/p/a.jpg", 1, 1, "h1", 10, 10, _faces(2))
        broken = PhotoResult("no-such-kind", "/p/b.jpg", 1, 1)
        with pytest.raises(KeyError):
            cat.write_results([good, broken], "m", "d", None)
        assert cat.counts()["photos"] == 0 and cat.counts()["faces"] == 0
        cat.write_results([good], "m", "d", None)
        ids, vectors = cat.embeddings("m")
        assert len(ids) == 2 and np.allclose(vectors, good.faces.embeddings)


def test_flat_index_finds_the_nearest_faces():
    x, labels = make_blobs(n_samples=300, centers=10, n_features=16, cluster_std=0.3, random_state=0)
    ids = np.arange(1000, 1300)
    index = FaceIndex.build(ids, x.astype(np.float32), "fp")
    result = index.search(x[:5], k=3)
    assert list(result.face_ids[:, 0]) == list(ids[:5])
    assert np.allclose(result.distances[:, 0], 0, atol=1e-3)
    brute = np.sort(np.linalg.norm(x[:5, None] - x[None], axis=2), axis=1)[:, :3]
    assert np.allclose(result.distances, brute, atol=1e-3)


def test_large_libraries_get_an_approximate_index_with_good_recall():
    x, labels = make_blobs(n_samples=4000, centers=40, n_features=32, cluster_std=1.0, random_state=1)
    x = x.astype(np.float32)
    index = FaceIndex.build(np.arange(len(x)), x, "fp", exact_limit=1000)
    assert index.kind.startswith("ivf")
    queries = x[:200]
    approx = index.search(queries, k=10).face_ids
    exact = np.argsort(np.linalg.norm(queries[:, None] - x[None], axis=2), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9


def test_index_is_saved_and_rebuilt_when_stale(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.write_results([PhotoResult("faces", "/p/a.jpg", 1, 1, "h1", 10, 10, _faces(3))], "m", "d", None)
        first = open_index(cat, "m")
        assert first.count == 3 and (tmp_path / "c.sqlite.faiss").exists()
        again = open_index(cat, "m")
        assert again.fingerprint == first.fingerprint and again.count == 3
        cat.write_results([PhotoResult("faces", "/p/b.jpg", 1, 1, "h2", 10, 10, _faces(2, seed=1))], "m", "d", None)
        assert open_index(cat, "m").count == 5


def test_empty_index_answers_with_no_neighbours():
    index = FaceIndex.build(np.zeros(0, np.int64), np.zeros((0, 128), np.float32), "fp")
    result = index.search(np.zeros((2, 128), np.float32), k=4)
    assert (result.face_ids == -1).all() and np.isinf(result.distances).all()


def test_faces_by_id_reads_only_the_faces_asked_for(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        results = []
        for i in range(700):  # more ids than one query may bind
            faces = FaceArrays(np.array([[i, 0, i + 10, 10]], np.float32), np.ones(1, np.float32),
                               np.zeros((1, 5, 2), np.float32), np.ones((1, 4), np.float32))
            results.append(PhotoResult("faces", f"/p/{i:04d}.jpg", 1, 1, f"h{i}", 100, 100, faces))
        cat.write_results(results, "m:1", "det", None)
        ids = {path: face for face, path, *_ in cat.faces_by_id(range(1, 10_000))}
        assert len(ids) == 700
        person = cat.create_people(1)[0]
        cat.add_assignments([(ids["/p/0003.jpg"], person, "user")])
        cat.mark_gone([cat.photo_states()["/p/0005.jpg"].id])
        rows = cat.faces_by_id([ids["/p/0003.jpg"], ids["/p/0005.jpg"], ids["/p/0600.jpg"], 999_999])
        assert sorted(rows) == sorted([(ids["/p/0003.jpg"], "/p/0003.jpg", 3.0, 0.0, 13.0, 10.0, person),
                                       (ids["/p/0600.jpg"], "/p/0600.jpg", 600.0, 0.0, 610.0, 10.0, None)])
        assert cat.faces_by_id([]) == []


def test_face_table_has_the_faces_of_existing_photos_with_that_models_vectors(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.write_results([PhotoResult("faces", f"/p/{i}.jpg", 1, 1, f"h{i}", 10, 10, _faces(3, seed=i))
                           for i in range(4)], "m", "d", None)
        cat.write_results([PhotoResult("faces", "/p/other.jpg", 1, 1, "ho", 10, 10, _faces(2, dim=6, seed=9))],
                          "other", "d", None)
        photo = dict(cat.db.execute("SELECT path, id FROM photos"))
        cat.mark_gone([photo["/p/1.jpg"]])
        some = [row[0] for row in cat.db.execute("SELECT f.id FROM faces f WHERE f.photo_id = ? ORDER BY f.id",
                                                 (photo["/p/2.jpg"],))]
        cat.db.execute("DELETE FROM embeddings WHERE face_id = ?", (some[1],))  # a face not embedded by "m"
        table = cat.face_table("m")
        expected = cat.db.execute(
            """SELECT f.id, f.photo_id, f.right - f.left, f.score, e.vector FROM faces f
               JOIN photos p ON p.id = f.photo_id JOIN embeddings e ON e.face_id = f.id AND e.model_id = 'm'
               WHERE p.status = 'ok' ORDER BY f.id""").fetchall()
        assert len(table) == len(expected) == 3 + 2 + 3
        assert table.face_ids.tolist() == [r[0] for r in expected]
        assert table.photo_ids.tolist() == [r[1] for r in expected]
        assert np.allclose(table.widths, [r[2] for r in expected])
        assert table.vectors.dtype == np.float32 and table.vectors.shape == (8, 4)
        assert np.array_equal(table.vectors, np.stack([np.frombuffer(r[4], "<f4") for r in expected]))
        assert some[1] not in table.face_ids and photo["/p/1.jpg"] not in table.photo_ids
        assert len(cat.face_table("other")) == 2 and cat.face_table("other").vectors.shape == (2, 6)
        assert len(cat.face_table("none")) == 0 and cat.face_table("none").vectors.shape == (0, 128)
