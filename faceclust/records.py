"""Small records passed between stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable


def iso_time(seconds: float | None) -> str | None:
    """A Unix time as ISO 8601 in local time with its UTC offset (``2026-12-01T20:15:03+01:00``)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds)).astimezone().isoformat(timespec="seconds")

import numpy as np


@dataclass
class FaceArrays:
    """The faces of one photo, in pixels of the orientation-corrected original.

    boxes: float32 (n, 4) left, top, right, bottom (right/bottom exclusive);
    scores: float32 (n,); landmarks: float32 (n, 5, 2) dlib's five points (they cut dlib's
    chips); embeddings: float32 (n, d); points: float32 (n, 5, 2), the five ArcFace points (eye
    centres, nose tip, mouth corners) the detector gave with its boxes, or None when it gives
    none (ArcFace chips then come from dlib's 68-point predictor).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    embeddings: np.ndarray
    points: np.ndarray | None = None

    @classmethod
    def empty(cls, dim: int = 128) -> "FaceArrays":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0, 5, 2), np.float32), np.zeros((0, dim), np.float32))

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class FaceTable:
    """Faces of existing photos with their embeddings, aligned by row."""

    face_ids: np.ndarray  # int64 (n,)
    photo_ids: np.ndarray  # int64 (n,)
    widths: np.ndarray  # float32 (n,) box width in original pixels
    scores: np.ndarray  # float32 (n,) detection score
    vectors: np.ndarray  # float32 (n, d)

    def __len__(self) -> int:
        return len(self.face_ids)


@dataclass
class AssignmentTable:
    """Every assignment, by face id (ascending)."""

    face_ids: np.ndarray  # int64 (n,)
    person_ids: np.ndarray  # int64 (n,)
    user: np.ndarray  # bool (n,) placed by the user (else by clustering or recognition)

    def __len__(self) -> int:
        return len(self.face_ids)

    def people_of(self, face_ids: np.ndarray) -> np.ndarray:
        """The person of each of ``face_ids``, -1 for faces that belong to nobody."""
        face_ids = np.asarray(face_ids, np.int64)
        if not len(self.face_ids):
            return np.full(len(face_ids), -1, np.int64)
        where = np.minimum(np.searchsorted(self.face_ids, face_ids), len(self.face_ids) - 1)
        return np.where(self.face_ids[where] == face_ids, self.person_ids[where], -1)


@dataclass
class PhotoState:
    """What the catalog knows of one photo."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str  # "ok" | "error" | "gone"
    detect_identity: str | None
    error: str | None = None


@dataclass
class PhotoResult:
    """The outcome of processing one file, written to the catalog in a batch.

    kind: "faces" (decoded and detected), "error", "moved" (same bytes as ``source_id`` whose
    path disappeared: the row is re-pointed and keeps its faces), "copied" (same bytes as
    ``source_id``, which still exists: the faces are copied), "touched" (same bytes, new mtime),
    "alias" (the very file of ``source_id``, by another path: remembered, not catalogued).
    """

    kind: str
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    faces: FaceArrays | None = None
    error: str | None = None
    source_id: int | None = None
    known_error: bool = False  # the same file failed the same way before: not recorded again
    taken_at: float | None = None  # when the photo was taken (EXIF, else the file's time)


@dataclass
class ScanSummary:
    photos_seen: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    copied: int = 0
    aliases: int = 0  # other paths to a catalogued photo's own file (hard or symbolic links)
    reembedded: int = 0
    errors: int = 0  # files that failed this run, for the first time or in a new way
    known_errors: int = 0  # files that failed before the same way and are unchanged
    gone: int = 0
    kept_missing: int = 0  # missing photos kept: too many vanished at once (see --prune)
    faces_found: int = 0
    photos_with_faces: int = 0
    tags_imported: int = 0  # faces named from other programs' face tags (XMP)
    tags_unmatched: int = 0  # such tags on no face faceclust found
    skipped: dict = field(default_factory=dict)  # files that are not photos, by kind: video, raw, sidecar, other
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    error_samples: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.new + self.changed

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items()}
        out["photos_per_second"] = round(self.processed / self.seconds, 2) if self.seconds else 0.0
        return out


@dataclass
class ProgressEvent:
    """How far a stage of a long job is: ``done`` of ``total`` (0: unknown)."""

    stage: str  # scan: "walk", "photos", "reembed", "index"; "models"; "cluster"; "albums"; "report"
    done: int
    total: int
    faces: int = 0
    errors: int = 0
    path: str | None = None


ProgressCallback = Callable[[ProgressEvent], None]
