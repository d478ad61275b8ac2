"""End to end on real photos: the real CLI, the real models, compared with dlib.

Needs ../shared/data (skips otherwise) and the installed models.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.models, pytest.mark.shared]

LFW_PEOPLE = ["Colin_Powell", "George_W_Bush", "Serena_Williams", "Tony_Blair", "Gloria_Macapagal_Arroyo"]


@pytest.fixture(scope="module")
def sample(shared_data, tmp_path_factory) -> dict:
    """Symlinks to 15 LFW photos (3 of each of 5 people) and 6 CelebA photos, scanned once."""
    root = tmp_path_factory.mktemp("photos")
    people = [p for p in LFW_PEOPLE if (shared_data / "lfw_dev" / p).is_dir()][:5]
    if len(people) < 3:
        people = sorted(d.name for d in (shared_data / "lfw_dev").iterdir()
                        if d.is_dir() and len(list(d.glob("*.jpg"))) >= 3)[:5]
    labels = {}
    for person in people:
        for photo in sorted((shared_data / "lfw_dev" / person).glob("*.jpg"))[:3]:
            link = root / "lfw" / person / photo.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(photo)
            labels[str(link)] = person
    celeba = sorted(d for d in (shared_data / "celeba_train").iterdir() if d.is_dir())[:3]
    for folder in celeba:
        for photo in sorted(folder.glob("*.jpg"))[:2]:
            link = root / "celeba" / folder.name / photo.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(photo)
    catalog = root / "catalog.sqlite"
    out = subprocess.run([sys.executable, "-m", "faceclust", "scan", str(root / "lfw"), str(root / "celeba"),
                          "--catalog", str(catalog), "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return {"root": root, "catalog": catalog, "labels": labels, "summary": json.loads(out.stdout)}


def test_every_lfw_photo_has_a_face_and_nothing_failed(sample):
    summary = sample["summary"]
    assert summary["errors"] == 0
    assert summary["photos_seen"] == len(sample["labels"]) + 6
    db = sqlite3.connect(sample["catalog"])
    with_faces = {r[0] for r in db.execute(
        "SELECT DISTINCT p.path FROM photos p JOIN faces f ON f.photo_id = p.id")}
    assert set(sample["labels"]) <= with_faces


def _main_faces(catalog: Path, labels: dict) -> tuple[list[str], np.ndarray]:
    """The largest face of each labelled photo and its descriptor."""
    db = sqlite3.connect(catalog)
    names, vectors = [], []
    for path, person in sorted(labels.items()):
        row = db.execute(
            """SELECT e.vector FROM faces f JOIN photos p ON p.id=f.photo_id JOIN embeddings e ON e.face_id=f.id
               WHERE p.path=? ORDER BY (f.right-f.left)*(f.bottom-f.top) DESC LIMIT 1""", (path,)).fetchone()
        names.append(person)
        vectors.append(np.frombuffer(row[0], "<f4"))
    return names, np.array(vectors)


def test_same_person_is_closer_than_the_0_6_threshold(sample):
    names, vectors = _main_faces(sample["catalog"], sample["labels"])
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    same = np.array(names)[:, None] == np.array(names)[None]
    off_diagonal = ~np.eye(len(names), dtype=bool)
    # dlib's model: LFW verification ~99%; on 15 photos every pair should be on the right side.
    assert (d[same & off_diagonal] < 0.6).mean() >= 0.9
    assert (d[~same] > 0.6).mean() >= 0.97


def test_stored_descriptors_match_dlib_given_the_same_boxes(sample, dlib_module):
    """Our boxes, mapped back to the original photo, run through dlib's own landmarks, chips and
    descriptor: the stored descriptor must be the same (coordinate mapping and model parity)."""
    from PIL import Image

    from faceclust.models.files import EMBEDDER_FILE, LANDMARKS_FILE, model_path

    dlib = dlib_module
    predictor = dlib.shape_predictor(str(model_path(LANDMARKS_FILE)))
    encoder = dlib.face_recognition_model_v1(str(model_path(EMBEDDER_FILE)))
    db = sqlite3.connect(sample["catalog"])
    rows = db.execute(
        """SELECT p.path, f.left, f.top, f.right, f.bottom, e.vector FROM faces f
           JOIN photos p ON p.id=f.photo_id JOIN embeddings e ON e.face_id=f.id
           WHERE p.width <= 1600 AND p.height <= 1600 ORDER BY f.id""").fetchall()
    assert len(rows) >= 15
    worst = 0.0
    for path, left, top, right, bottom, blob in rows:
        img = np.asarray(Image.open(path).convert("RGB"))
        rect = dlib.rectangle(round(left), round(top), round(right) - 1, round(bottom) - 1)
        shape = predictor(img, rect)
        reference = np.array(encoder.compute_face_descriptor(img, shape))
        # The default (fused) descriptor's first block is dlib's, unit length and weighted.
        stored = np.frombuffer(blob, "<f4")[:128].astype(np.float64)
        worst = max(worst, float(np.abs(stored / np.linalg.norm(stored) - reference / np.linalg.norm(reference)).max()))
    assert worst <= 1e-4, worst


def test_second_scan_reads_nothing_and_export_has_every_face(sample):
    out = subprocess.run([sys.executable, "-m", "faceclust", "scan", str(sample["root"] / "lfw"),
                          str(sample["root"] / "celeba"), "--catalog", str(sample["catalog"]), "--json"],
                         capture_output=True, text=True, timeout=300, check=True)
    again = json.loads(out.stdout)
    assert again["unchanged"] == sample["summary"]["photos_seen"] and again["new"] == 0
    export = subprocess.run([sys.executable, "-m", "faceclust", "export", "--catalog", str(sample["catalog"]),
                             "--format", "jsonl"], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert len(rows) == sample["summary"]["faces_found"]
    for row in rows:
        assert 0 <= row["left"] < row["right"] and 0 <= row["top"] < row["bottom"]
