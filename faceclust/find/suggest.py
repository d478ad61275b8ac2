"""Merge suggestions: pairs of people who may be one person, most likely first.

After a clustering, the fastest way to correct people is to answer "are these the same
person?" for the pairs most likely to be. Candidates are each person's nearest people (by the
mean of their unit descriptors), and each face of nobody with the people nearest it. A pair is
judged by the mean distance over all its cross pairs of faces (average linkage), turned into a
probability by the model's verify calibration: the chance that a typical face of one and a
typical face of the other are one person. Measured against ranking by the closest faces
(benchmarks/bench_suggest.py): look-alikes have a few very close faces and a far bulk, halves
of one person the reverse; answers needed to reach BCubed 0.99 fell from 48 to 3 on lfw_dev. Pairs that share a photo cannot be one person and are never
suggested; nor are pairs the user said are two people (:func:`keep_apart`).

A "yes" is a merge (``faceclust merge``), a "no" :func:`keep_apart`; both are history entries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CLOSEST = 3  # the closest faces shown with a suggestion
NEIGHBOURS = 5  # candidate people per person
MAX_FACES = 300  # faces of one person compared (a fixed sample of a bigger person)


@dataclass
class Suggestion:
    a: int  # the person with more faces (a yes merges b into a, or moves ``face`` into a)
    b: int | None  # None: the suggestion is a lone face (no person yet) for person a
    probability: float | None  # None when no calibration fits the model
    distance: float  # mean distance over the cross pairs of faces
    support: int  # cross pairs closer than the model's same-person distance
    faces_a: list[int]  # the closest faces of each, closest first
    faces_b: list[int]
    name_a: str | None = None
    name_b: str | None = None
    face: int | None = None  # the lone face, when b is None

    def as_dict(self) -> dict:
        return asdict(self)


def suggest_merges(catalog, limit: int | None = 50, neighbours: int = NEIGHBOURS) -> list[Suggestion]:
    """The catalog's merge suggestions, most likely first (at most ``limit``)."""
    from faceclust.faces.embed import catalog_model
    from faceclust.find.calibration import load_calibration

    model = catalog_model(catalog)
    records = catalog.face_records(model.model_id)
    keep = (records["person"] >= 0) & ~np.isnan(records["vector"]).any(axis=1)
    people = {p["id"]: p for p in catalog.people() if not p["hidden"]}
    keep &= np.isin(records["person"], list(people))
    person, vectors = records["person"][keep], records["vector"][keep].astype(np.float64)
    face_ids, photos = records["face_id"][keep], records["photo_id"][keep]
    ids, inverse = np.unique(person, return_inverse=True)
    if len(ids) < 2:
        return []
    calibration = load_calibration(None, model.model_id)
    fitted = calibration.model_id == model.model_id
    same_person = model.distances.same_person
    apart = catalog.apart_pairs()
    members = [np.flatnonzero(inverse == k) for k in range(len(ids))]
    rng = np.random.default_rng(0)
    members = [m if len(m) <= MAX_FACES else np.sort(rng.choice(m, MAX_FACES, replace=False)) for m in members]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    centres = np.stack([unit[m].mean(axis=0) for m in members])
    out = []
    for i, j in _candidate_pairs(centres, neighbours):
        a, b = int(ids[i]), int(ids[j])
        if tuple(sorted((a, b))) in apart or np.intersect1d(photos[members[i]], photos[members[j]]).size:
            continue
        d = _distances(vectors[members[i]], vectors[members[j]])
        flat = np.argsort(d, axis=None)[:CLOSEST]
        rows, cols = np.unravel_index(flat, d.shape)
        distance = float(d.mean())
        probability = _probability(calibration if fitted else None, distance)
        big, small = (i, j) if len(members[i]) >= len(members[j]) else (j, i)
        fa, fb = (face_ids[members[i]][rows], face_ids[members[j]][cols])
        if big != i:
            fa, fb = fb, fa
        out.append(Suggestion(int(ids[big]), int(ids[small]), probability, round(distance, 4),
                              int((d < same_person).sum()), list(dict.fromkeys(fa.tolist())),
                              list(dict.fromkeys(fb.tolist())), people[int(ids[big])]["name"],
                              people[int(ids[small])]["name"]))
    out += _lone_faces(records, ids, members, unit, centres, vectors, face_ids, photos, people,
                       catalog, neighbours, same_person, calibration if fitted else None)
    out.sort(key=lambda s: (s.distance, -s.support))
    return out[:limit] if limit else out


def _lone_faces(records, ids, members, unit, centres, vectors, face_ids, photos, people, catalog,
                neighbours, same_person, calibration) -> list[Suggestion]:
    """Faces of nobody, each with the people nearest to it (not one it was rejected from, nor
    one already in its photo)."""
    lone = (records["person"] < 0) & ~np.isnan(records["vector"]).any(axis=1)
    if not lone.any():
        return []
    rejected = set(catalog.rejections())
    x = records["vector"][lone].astype(np.float64)
    x_unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    order = np.argsort(_distances(x_unit, centres), axis=1)[:, :neighbours]
    out = []
    for row, (face, photo) in enumerate(zip(records["face_id"][lone], records["photo_id"][lone])):
        for k in order[row]:
            pid = int(ids[k])
            if (int(face), pid) in rejected or np.any(photos[members[k]] == photo):
                continue
            d = _distances(x[row:row + 1], vectors[members[k]])[0]
            closest = np.argsort(d)[:CLOSEST]
            distance = float(d.mean())
            probability = _probability(calibration, distance)
            out.append(Suggestion(pid, None, probability, round(distance, 4), int((d < same_person).sum()),
                                  face_ids[members[k]][closest].tolist(), [int(face)], people[pid]["name"],
                                  None, int(face)))
    return out


def _probability(calibration, distance: float) -> float | None:
    p = calibration.probability_at(distance) if calibration is not None else None
    return None if p is None else round(p, 4)


def _candidate_pairs(centres: np.ndarray, neighbours: int) -> list[tuple[int, int]]:
    """Each person with its nearest people by centre (pairs once, smaller index first)."""
    from faceclust.catalog.index import knn_graph

    _, nearest = knn_graph(centres.astype(np.float32), min(neighbours + 1, len(centres) - 1))
    pairs = {(min(i, int(j)), max(i, int(j))) for i, row in enumerate(nearest) for j in row if 0 <= j != i}
    return sorted(pairs)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d, 0))


def suggest_library(catalog_path, limit: int | None = 50) -> list[Suggestion]:
    from faceclust.catalog import Catalog

    with Catalog(catalog_path, create=False) as catalog:
        return suggest_merges(catalog, limit)
