"""Duplicates in a catalog: near-identical faces and duplicate photos. Reads only.

* Near-identical faces: catalogued faces whose descriptors lie closer than ``face_distance``
  (far below dlib's same-person 0.6: the same face in a copied, resized or re-encoded photo, or
  in a burst shot), grouped by connected components over the FAISS index's neighbours. A
  heavily re-encoded or halved copy moves a face as far as some distinct, very similar photos
  of the same person lie (see the measurements below), so these groups hold both.
* Duplicate photos: the same bytes (content hash), or the same faces: as many faces, each
  near-identical to one of the other photo (one-to-one), the same aspect ratio, each face at the
  same place relative to the photo, the same picture at a glance (small grey thumbnails of the
  whole photos correlate above ``min_similarity``: distinct photos of one person framed alike
  share faces and places, less often clothes and background), and not a mirror image of the
  other (a flipped copy keeps near-identical descriptors and, for a centred face, its place;
  its thumbnail correlates better with the other's mirror image than with the other).

Nothing is ever deleted or moved: :meth:`DedupeReport.leave_out` names, for each duplicate
group, the photos an album can leave out (all but the one with the most pixels, then the
oldest, which is most likely the original, then the biggest file).

Requests for ``catalog`` (not edited here): photo width and height are stored but no public
method returns them, so the sizes of candidate photos are read from their file headers; a
``photo_sizes()`` method (path -> (width, height)) would avoid opening those files.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceclust.find.looks import LookCache, is_mirror_image, photo_size, thumbnail  # noqa: F401 (used and re-exported)

# Chosen by measurement (benchmarks/bench_find.py: 45 real photos, 360 copies, in the celeba_train
# catalog). Copies lie farther from their original than one might think (median / 95th pct:
# JPEG q90 0.05 / 0.13, q50 0.16 / 0.26, resized to 50% 0.20 / 0.29), as far as the nearest
# distinct photo of the same person for 5-12% of photos; so faces alone cannot say "copy", and
# the photo checks carry the precision. At 0.25 (with the checks below): precision 0.986 and
# recall 0.92 on the copies, 0/45 mirror images grouped, and by eye about 42 of the 44 groups
# found among celeba_train's own photos are real duplicates or burst-like shots.
DEFAULT_FACE_DISTANCE = 0.25  # on dlib's descriptors; each model declares its own (Distances.duplicate)
DEFAULT_ASPECT_TOLERANCE = 0.08  # |log(aspect a / aspect b)|: a 3% crop of one side is 0.03
DEFAULT_POSITION_TOLERANCE = 0.06  # face centre shift, as a share of the photo's width/height
DEFAULT_NEIGHBOURS = 10
# Thumbnail correlation: copies of the experiment >= 0.76 (3% crops are the lowest); distinct
# photos of one person framed alike mostly below, studio shots against one backdrop up to ~0.8.
DEFAULT_MIN_SIMILARITY = 0.7


@dataclass(frozen=True)
class DedupeOptions:
    face_distance: float | None = None  # None: the model's own (Distances.duplicate)
    aspect_tolerance: float = DEFAULT_ASPECT_TOLERANCE
    position_tolerance: float = DEFAULT_POSITION_TOLERANCE
    neighbours: int = DEFAULT_NEIGHBOURS
    min_similarity: float = DEFAULT_MIN_SIMILARITY
    check_mirror: bool = True

    def __post_init__(self) -> None:
        if self.face_distance is not None and not 0 < self.face_distance < 2:
            raise ValueError(f"face_distance must be between 0 and 2, got {self.face_distance}")
        if self.aspect_tolerance < 0 or self.position_tolerance < 0:
            raise ValueError("aspect_tolerance and position_tolerance must be >= 0")
        if not -1 <= self.min_similarity <= 1:
            raise ValueError(f"min_similarity is a correlation, between -1 and 1, got {self.min_similarity}")
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, got {self.neighbours}")


@dataclass
class PhotoInfo:
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    faces: list[int] = field(default_factory=list)  # rows of the face arrays


@dataclass
class DuplicateFaces:
    faces: list[dict]  # {"face_id", "photo"}
    max_distance: float

    def as_dict(self) -> dict:
        return {"faces": self.faces, "max_distance": self.max_distance}


@dataclass
class DuplicatePhotos:
    photos: list[str]
    keep: str
    reason: str  # "same bytes", "same faces", or "same bytes + same faces"

    def as_dict(self) -> dict:
        return {"photos": self.photos, "keep": self.keep, "reason": self.reason}


@dataclass
class DedupeReport:
    face_groups: list[DuplicateFaces]
    photo_groups: list[DuplicatePhotos]
    photos: int = 0
    faces: int = 0
    candidate_pairs: int = 0
    mirrored: int = 0  # photo pairs with the same faces but mirror images of each other
    unreadable: int = 0  # candidate photos whose file could not be opened (not counted duplicates)
    options: dict = field(default_factory=dict)
    seconds: float = 0.0

    def leave_out(self) -> set[str]:
        """Photos an album can leave out: every photo of a duplicate group but the one kept."""
        return {p for g in self.photo_groups for p in g.photos if p != g.keep}

    def as_dict(self) -> dict:
        return {"photos": self.photos, "faces": self.faces,
                "duplicate_photo_groups": len(self.photo_groups),
                "photos_to_leave_out": len(self.leave_out()),
                "near_identical_face_groups": len(self.face_groups),
                "candidate_pairs": self.candidate_pairs, "mirrored": self.mirrored,
                "unreadable": self.unreadable, "options": self.options, "seconds": round(self.seconds, 3),
                "photo_groups": [g.as_dict() for g in self.photo_groups],
                "face_groups": [g.as_dict() for g in self.face_groups]}


def _model_distances(catalog, model_id: str):
    """The default distances of ``model_id``'s descriptors (dlib's for a model not the catalog's)."""
    from faceclust.faces.embed import DLIB_DISTANCES, catalog_model

    model = catalog_model(catalog)
    return model.distances if model.model_id == model_id else DLIB_DISTANCES


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _groups(labels: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return [g for g in np.split(order, cuts) if len(g) > 1]


def near_identical_pairs(vectors: np.ndarray, face_distance: float,
                         neighbours: int = DEFAULT_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of rows (i < j) closer than ``face_distance``, among each row's ``neighbours``
    nearest (FAISS): (i, j, distance)."""
    from faceclust.catalog.index import FaceIndex

    n = len(vectors)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    index = FaceIndex.build(np.arange(n, dtype=np.int64), vectors, "dedupe")
    found = index.search(vectors, min(neighbours + 1, n))
    rows = np.repeat(np.arange(n), found.face_ids.shape[1])
    cols = found.face_ids.ravel()
    dist = found.distances.ravel()
    keep = (cols >= 0) & (cols != rows) & (dist < face_distance)
    i, j = np.minimum(rows[keep], cols[keep]), np.maximum(rows[keep], cols[keep])
    pairs, first = np.unique(np.stack([i, j]), axis=1, return_index=True)
    return pairs[0], pairs[1], dist[keep][first]


class DuplicateFinder:
    """One pass over a catalog's faces and photos."""

    def __init__(self, options: DedupeOptions | None = None, progress=None) -> None:
        self.options = options or DedupeOptions()
        self.progress = progress or (lambda event: None)

    def run(self, catalog, model_id: str) -> DedupeReport:
        from faceclust.records import ProgressEvent

        start = time.perf_counter()
        self.progress(ProgressEvent("dedupe", 0, 3))
        distances = _model_distances(catalog, model_id)
        if self.options.face_distance is None:
            self.options = dataclasses.replace(self.options, face_distance=distances.duplicate)
        elif self.options.face_distance >= distances.same_person:
            raise ValueError(f"face_distance must be below the model's same-person distance "
                             f"({distances.same_person:g}), got {self.options.face_distance:g}")
        photos = {s.path: PhotoInfo(s.path, s.size, s.mtime_ns, s.content_hash)
                  for s in catalog.photo_states().values() if s.status == "ok"}
        face_ids, face_photo, boxes, vector_bytes = [], [], [], []
        for face_id, path, left, top, right, bottom, _score, vector, _person in catalog.iter_faces(model_id):
            if vector is None or path not in photos:
                continue
            photos[path].faces.append(len(face_ids))
            face_ids.append(face_id)
            face_photo.append(path)
            boxes.append((left, top, right, bottom))
            vector_bytes.append(vector)
        n = len(face_ids)
        vectors = (np.frombuffer(b"".join(vector_bytes), "<f4").reshape(n, -1).astype(np.float32)
                   if n else np.zeros((0, 128), np.float32))
        self.face_ids, self.face_photo = np.array(face_ids, np.int64), face_photo
        self.boxes, self.vectors, self.photos = np.array(boxes, np.float64).reshape(-1, 4), vectors, photos
        self.sizes = LookCache()
        report = DedupeReport([], [], photos=len(photos), faces=n, options=dict(self.options.__dict__))

        self.progress(ProgressEvent("dedupe", 1, 3, faces=n))
        i, j, d = near_identical_pairs(vectors, self.options.face_distance, self.options.neighbours)
        report.face_groups = self._face_groups(i, j)
        self.progress(ProgressEvent("dedupe", 2, 3, faces=n))
        photo_pairs = self._same_bytes_pairs() | self._same_faces_pairs(i, j, report)
        report.photo_groups = self._photo_groups(photo_pairs)
        self.progress(ProgressEvent("dedupe", 3, 3, faces=n))
        report.seconds = time.perf_counter() - start
        return report

    # -- faces -----------------------------------------------------------------------------

    def _face_groups(self, i: np.ndarray, j: np.ndarray) -> list[DuplicateFaces]:
        out = []
        for rows in _groups(_components(len(self.face_ids), i, j)):
            v = self.vectors[rows].astype(np.float64)
            spread = np.sqrt(np.maximum(np.sum((v[:, None] - v[None]) ** 2, axis=2), 0)).max() if len(rows) < 200 \
                else float("nan")
            out.append(DuplicateFaces([{"face_id": int(self.face_ids[r]), "photo": self.face_photo[r]} for r in rows],
                                      round(float(spread), 4)))
        return out

    # -- photos ----------------------------------------------------------------------------

    def _same_bytes_pairs(self) -> set[tuple[str, str, str]]:
        by_hash: dict[str, list[str]] = defaultdict(list)
        for info in self.photos.values():
            if info.content_hash:
                by_hash[info.content_hash].append(info.path)
        pairs = set()
        for paths in by_hash.values():
            paths.sort()
            pairs.update((paths[0], p, "same bytes") for p in paths[1:])
        return pairs

    def _same_faces_pairs(self, i: np.ndarray, j: np.ndarray, report: DedupeReport) -> set[tuple[str, str, str]]:
        candidates = set()
        for a, b in zip(i, j):
            pa, pb = self.face_photo[a], self.face_photo[b]
            if pa != pb and self.photos[pa].content_hash != self.photos[pb].content_hash:
                candidates.add((min(pa, pb), max(pa, pb)))
        report.candidate_pairs = len(candidates)
        pairs = set()
        for pa, pb in sorted(candidates):
            verdict = self.same_faces(pa, pb)
            if verdict == "same":
                pairs.add((pa, pb, "same faces"))
            elif verdict == "mirrored":
                report.mirrored += 1
            elif verdict == "unreadable":
                report.unreadable += 1
        return pairs

    def same_faces(self, pa: str, pb: str) -> str:
        """"same", "different", "mirrored" or "unreadable" for two photos of the catalog."""
        from scipy.optimize import linear_sum_assignment

        fa, fb = self.photos[pa].faces, self.photos[pb].faces
        if len(fa) != len(fb) or not fa:
            return "different"
        va, vb = self.vectors[fa].astype(np.float64), self.vectors[fb].astype(np.float64)
        d = np.sqrt(np.maximum(np.sum((va[:, None] - vb[None]) ** 2, axis=2), 0))
        ra, rb = linear_sum_assignment(d)
        if not np.all(d[ra, rb] < self.options.face_distance):
            return "different"
        sa, sb = self.sizes.size(pa), self.sizes.size(pb)
        if sa is None or sb is None:
            return "unreadable"
        if abs(math.log((sa[0] / sa[1]) / (sb[0] / sb[1]))) > self.options.aspect_tolerance:
            return "different"
        ca = self._centres(fa, sa)[ra]
        cb = self._centres(fb, sb)[rb]
        if np.max(np.abs(ca - cb)) > self.options.position_tolerance:
            return "different"
        ta, tb = self.sizes.thumb(pa), self.sizes.thumb(pb)
        if ta is None or tb is None:
            return "unreadable"
        if self.options.check_mirror and is_mirror_image(ta, tb):
            return "mirrored"
        if float(np.sum(ta * tb)) < self.options.min_similarity:
            return "different"
        return "same"

    def _centres(self, rows: list[int], size: tuple[int, int]) -> np.ndarray:
        b = self.boxes[rows]
        return np.stack([(b[:, 0] + b[:, 2]) / 2 / size[0], (b[:, 1] + b[:, 3]) / 2 / size[1]], axis=1)

    def _photo_groups(self, pairs: set[tuple[str, str, str]]) -> list[DuplicatePhotos]:
        from faceclust.photos.formats import raw_partners

        partner = raw_partners(self.photos)  # a RAW and its JPEG are one shot, not duplicates
        pairs = {(a, b, why) for a, b, why in pairs if partner.get(a) != b and partner.get(b) != a}
        if not pairs:
            return []
        paths = sorted({p for a, b, _ in pairs for p in (a, b)})
        at = {p: k for k, p in enumerate(paths)}
        i = np.array([at[a] for a, _, _ in pairs])
        j = np.array([at[b] for _, b, _ in pairs])
        reasons: dict[int, set[str]] = defaultdict(set)
        labels = _components(len(paths), i, j)
        for a, _, why in pairs:
            reasons[labels[at[a]]].add(why)
        out = []
        for rows in _groups(labels):
            members = sorted(paths[r] for r in rows)
            why = " + ".join(sorted(reasons[labels[rows[0]]]))
            out.append(DuplicatePhotos(members, self._best(members), why))
        out.sort(key=lambda g: g.photos[0])
        return out

    def _best(self, paths: list[str]) -> str:
        """The photo to keep: most pixels, then the oldest (likely the original), then the biggest
        file, then the first by path."""
        from faceclust.photos.formats import RAW_EXTENSIONS

        def key(path: str):
            info = self.photos[path]
            size = self.sizes.size(path) if len({self.photos[p].content_hash for p in paths}) > 1 else None
            pixels = size[0] * size[1] if size else 0
            raw = Path(path).suffix.lower() in RAW_EXTENSIONS  # albums link the JPEG of a shot: keep JPEGs
            return (raw, -pixels, info.mtime_ns, -info.size, path)

        return min(paths, key=key)


def find_duplicates(catalog, model_id: str, options: DedupeOptions | None = None, progress=None) -> DedupeReport:
    return DuplicateFinder(options, progress).run(catalog, model_id)


def dedupe_library(catalog_path, options: DedupeOptions | None = None, model_id: str | None = None,
                   progress=None) -> DedupeReport:
    """Duplicate faces and photos of the catalog at ``catalog_path`` (reads only); ``progress``
    receives ProgressEvents of stage "dedupe" (reading faces, faces compared, photos compared)."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model

    with Catalog(catalog_path, create=False) as catalog:
        return find_duplicates(catalog, model_id or catalog_model(catalog).model_id, options, progress)


def photos_to_leave_out(catalog_path, options: DedupeOptions | None = None, model_id: str | None = None) -> set[str]:
    """For albums: the photo paths to leave out so each duplicate group appears once."""
    return dedupe_library(catalog_path, options, model_id).leave_out()
