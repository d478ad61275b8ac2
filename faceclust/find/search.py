"""Search a catalog by face: the catalogued faces and photos of the person in a photo.

The photo need not be in the catalog: its faces are detected and embedded on the spot, then
looked up in the catalog's FAISS index (``faceclust.catalog.index``; exact up to 50k faces, IVF above).
A match is a catalogued face closer than the threshold (the model's same-person distance by
default: 0.65 for the fused descriptor, dlib's 0.6 for dlib's), nearest first.
``person_photos`` lists the photos of one person of the catalog.

Only the faces the index returns are read from the catalog (``Catalog.faces_by_id``), so a
search costs the same in a library of 1,000 faces or of 1,000,000.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceclust.find.verify import DEFAULT_THRESHOLD, photo_faces

DEFAULT_TOP = 10


@dataclass
class Match:
    face_id: int
    photo: str
    box: list[float]
    distance: float
    person: int | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class FaceMatches:
    """One face of the query photo and what the catalog holds of its person."""

    face: int
    box: list[float]
    matches: list[Match]  # nearest first
    photos: list[dict]  # {"photo", "distance"}: the matches' photos, nearest first, once each
    person: dict | None = None  # the catalog's person most matches belong to

    def as_dict(self) -> dict:
        return {"face": self.face, "box": self.box, "person": self.person, "photos": self.photos,
                "matches": [m.as_dict() for m in self.matches]}


@dataclass
class SearchResult:
    photo: str
    faces: list[FaceMatches]
    threshold: float
    top: int
    catalog_faces: int
    index_kind: str
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"photo": self.photo, "threshold": self.threshold, "top": self.top,
                "catalog_faces": self.catalog_faces, "index": self.index_kind, "seconds": self.seconds,
                "faces": [f.as_dict() for f in self.faces]}


class FaceRows:
    """Where catalogued faces are: photo, box, person; read on demand, by face id."""

    def __init__(self, catalog) -> None:
        self.catalog = catalog
        self.rows: dict[int, tuple | None] = {}
        self.names = {p["id"]: p["name"] for p in catalog.people()}

    def fetch(self, face_ids) -> None:
        """Read the rows of ``face_ids`` not read yet, in one query (ids < 0 are ignored)."""
        wanted = {int(f) for f in np.asarray(face_ids).ravel() if f >= 0} - self.rows.keys()
        if not wanted:
            return
        for face_id, path, left, top, right, bottom, person in self.catalog.faces_by_id(wanted):
            self.rows[int(face_id)] = (path, [round(float(v), 1) for v in (left, top, right, bottom)], person)
        for face_id in wanted - self.rows.keys():
            self.rows[face_id] = None  # not in the catalog any more (e.g. its photo is gone)

    def get(self, face_id: int):
        if int(face_id) not in self.rows:
            self.fetch([face_id])
        return self.rows.get(int(face_id))


def _validate(top: int, threshold: float) -> None:
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")


def match_vectors(index, rows: FaceRows, vectors: np.ndarray, top: int = DEFAULT_TOP,
                  threshold: float = DEFAULT_THRESHOLD, exclude_photo: str | None = None) -> list[list[Match]]:
    """For each query vector, up to ``top`` catalogued faces closer than ``threshold``, nearest
    first. Faces of ``exclude_photo`` (the query photo itself, when catalogued) are skipped."""
    _validate(top, threshold)
    # Ask for a few more than needed: faces of the query photo itself may come first.
    found = index.search(np.asarray(vectors, np.float32), top + 8)
    rows.fetch(found.face_ids)
    out = []
    for distances, ids in zip(found.distances, found.face_ids):
        matches = []
        for d, face_id in zip(distances, ids):
            if face_id < 0 or not d < threshold:
                break
            row = rows.get(face_id)
            if row is None or row[0] == exclude_photo:
                continue
            matches.append(Match(int(face_id), row[0], row[1], round(float(d), 4), row[2]))
            if len(matches) == top:
                break
        out.append(matches)
    return out


def _photos(matches: list[Match]) -> list[dict]:
    seen: dict[str, float] = {}
    for m in matches:
        seen.setdefault(m.photo, m.distance)
    return [{"photo": p, "distance": d} for p, d in seen.items()]


def _person(matches: list[Match], names: dict) -> dict | None:
    votes = Counter(m.person for m in matches if m.person is not None)
    if not votes:
        return None
    person, count = votes.most_common(1)[0]
    return {"id": int(person), "name": names.get(person), "matches": count}


def search_catalog(catalog, photo: Path, *, top: int = DEFAULT_TOP, threshold: float | None = None,
                   finder=None, detect=None, embedder: str | None = None) -> SearchResult:
    """The faces of ``photo`` and, for each, the catalog's faces and photos of that person.

    ``photo`` is embedded with the catalog's model (a fine-tuned one too), unless ``embedder``
    names another; the default threshold is the model's same-person distance (scaled for a
    fine-tuned model)."""
    import os

    from faceclust.catalog.index import open_index
    from faceclust.faces.embed import ModelChoice, catalog_model

    model = catalog_model(catalog) if embedder is None else ModelChoice.resolve(embedder)
    threshold = model.distances.same_person if threshold is None else threshold
    _validate(top, threshold)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    if finder is None:
        from faceclust.faces.finder import FaceFinder

        finder = FaceFinder.create(detect, model.create())
    query = photo_faces(Path(photo), finder)
    t = _lap(seconds, "faces", t)
    index = open_index(catalog, finder.embedder.identity())
    rows = FaceRows(catalog)
    t = _lap(seconds, "open", t)
    found = match_vectors(index, rows, query.embeddings, top, threshold, exclude_photo=os.path.abspath(photo))
    _lap(seconds, "search", t)
    faces = [FaceMatches(i, query.describe(i)["box"], matches, _photos(matches), _person(matches, rows.names))
             for i, matches in enumerate(found)]
    return SearchResult(str(photo), faces, threshold, top, index.count, index.kind, seconds)


def _lap(seconds: dict, stage: str, start: float) -> float:
    now = time.perf_counter()
    seconds[stage] = round(now - start, 4)
    return now


def search_library(catalog_path, photo: Path, top: int | None = None, threshold: float | None = None,
                   detect=None, embedder: str | None = None) -> SearchResult:
    """:func:`search_catalog` on the catalog at ``catalog_path``."""
    from faceclust.catalog import Catalog

    with Catalog(catalog_path, create=False) as catalog:
        return search_catalog(catalog, Path(photo), top=DEFAULT_TOP if top is None else top,
                              threshold=threshold,
                              detect=detect, embedder=embedder)


def person_photos(catalog_path, ref: str) -> dict:
    """A person's photos: ``{"id", "name", "photos": [{"photo", "faces": [face ids]}]}`` by path."""
    from faceclust.catalog import Catalog

    with Catalog(catalog_path, create=False) as catalog:
        person = catalog.resolve_person(ref)
        name = next((p["name"] for p in catalog.people() if p["id"] == person), None)
        photos: dict[str, list[int]] = {}
        for owner, face_id, path, *_ in catalog.person_faces():
            if owner == person:
                photos.setdefault(path, []).append(int(face_id))
    return {"id": person, "name": name, "photos": [{"photo": p, "faces": f} for p, f in photos.items()]}
