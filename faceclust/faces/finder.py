"""Finding faces in decoded photos: detect, landmarks, chips, embed. Pure compute, no files
written, no SQL; a photo with no face gives empty arrays."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from faceclust.faces.align import Aligner
from faceclust.faces.detect import DetectOptions, Detector, detectors
from faceclust.faces.embed import DEFAULT_EMBEDDER, Embedder, embedders
from faceclust.photos.decode import LoadedImage, WorkingSize, at_working_size
from faceclust.records import FaceArrays
from faceclust.text import printable


class Timer:
    """Seconds spent per stage, summed over threads (decode; detect, landmarks and embed too
    when a scan's workers find faces): they can add up to more than the run took."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        with self._lock:
            self.seconds[stage] += now - start
        return now


class FaceFinder:
    """detect -> landmarks -> chips -> embed on decoded images. Pure compute, no files, no SQL."""

    def __init__(self, detect: DetectOptions, detector: Detector, embedder: Embedder,
                 timer: Timer | None = None) -> None:
        self.options = detect
        self.detector = detector
        self.embedder = embedder
        self.aligner = Aligner()
        # Embedders trained on ArcFace-aligned 112 px chips (SFace) get those; the 5 dlib points
        # are still found and stored, for re-embedding with any model later. A fused embedder
        # has one alignment per part and gets a tuple of chip arrays.
        alignment = getattr(embedder, "alignment", "dlib-150")
        self.composite = isinstance(alignment, tuple)
        self.alignments = alignment if self.composite else (alignment,)
        sizes = embedder.chip_size if self.composite else (embedder.chip_size,)
        self.chip_sizes = tuple(sizes)
        unknown = [a for a in self.alignments if a not in ("dlib-150", "arcface-112")]
        if unknown:
            raise ValueError(f"embedder {embedder.name!r} wants an alignment faceclust does not know: {unknown[0]!r}")
        self.arcface = None
        if "arcface-112" in self.alignments:
            from faceclust.faces.arcface import ArcFaceAligner

            self.arcface = ArcFaceAligner()
        self.timer = timer or Timer()

    @classmethod
    def create(cls, detect: DetectOptions | None = None, embedder: str | Embedder = DEFAULT_EMBEDDER) -> "FaceFinder":
        """A finder with the registered detector and an embedder (a registered name or an
        instance); models load on first use."""
        detect = detect or DetectOptions()
        if isinstance(embedder, str):
            embedder = embedders.create(embedder)
        return cls(detect, detectors.create(detect.detector, options=detect), embedder)

    def load(self, photos: int = 1) -> None:
        """Load every model now (they load on first use otherwise): to say so while it happens.
        ``photos``: how many photos are coming (a detector may prepare for many: see
        ``Detector.expect``)."""
        # dlib's 68-point predictor (0.4 s to load) only serves faces that come without the
        # detector's five points: with a detector that gives them it loads if ever needed.
        arcface = None if getattr(self.detector, "gives_points", False) else self.arcface
        for part in (self.detector, self.aligner, arcface, self.embedder,
                     *getattr(self.embedder, "parts", ())):
            loader = getattr(part, "_load", None)
            if loader is not None:
                loader()
        for part in (self.detector, self.embedder, *getattr(self.embedder, "parts", ())):
            expect = getattr(part, "expect", None)
            if expect is not None:
                expect(photos)

    def scale_policy(self, later: bool = False) -> WorkingSize:
        """Decode no larger than the detector will look at (never enlarge at decode), resized
        by torch (every path that finds faces sees the same pixels); ``later``: the resize is
        left to :meth:`locate` (for photos decoded before torch is loaded)."""
        window = self.detector.window
        return WorkingSize(lambda w, h: min(1.0, self.options.detection_scale(w, h, window)),
                           "later" if later else "torch")

    def find(self, images: Sequence[LoadedImage]) -> list[FaceArrays]:
        """Faces of several photos; their chips are embedded together in batches."""
        return self.finish(images, [self.locate(image) for image in images])

    def locate(self, image: LoadedImage) -> tuple:
        """Detection, landmarks and chips of one photo (what :meth:`finish` embeds): the
        per-photo half of :meth:`find`, which threads may run side by side. A photo decoded
        with its resize left for later is resized first (counted as decode time)."""
        t = time.perf_counter()
        if image.resize_to is not None:
            image = at_working_size(image)
            t = self.timer.add("decode", t)
        det_scale = self.options.detection_scale(image.original_width, image.original_height,
                                                 self.detector.window)
        found = self.detector.detect(image.pixels, scale=det_scale / image.scale)
        t = self.timer.add("detect", t)
        marks = self.aligner.landmarks(image.pixels, found.boxes)
        chips = self._cut(image.pixels, marks, found.boxes, found.points)
        self.timer.add("landmarks", t)
        return found, marks, chips

    def finish(self, images: Sequence[LoadedImage], located: Sequence[tuple]) -> list[FaceArrays]:
        """The faces of ``images`` from what :meth:`locate` gave for each: every chip embedded
        in one call (batches run several times faster a face than single photos' chips)."""
        t = time.perf_counter()
        chips = self.join([c for _f, _m, c in located])
        vectors = self.embedder.embed(chips)
        self.timer.add("embed", t)
        out, start = [], 0
        for image, (found, marks, _chips) in zip(images, located):
            n = len(found)
            out.append(FaceArrays(
                boxes=(found.boxes / image.scale).astype(np.float32),
                scores=found.scores.astype(np.float32),
                landmarks=(marks / image.scale).astype(np.float32),
                embeddings=vectors[start:start + n],
                points=None if found.points is None else (found.points / image.scale).astype(np.float32),
            ))
            start += n
        return out

    def _cut(self, pixels: np.ndarray, marks: np.ndarray, boxes: np.ndarray | None,
             points: np.ndarray | None = None):
        """The embedder's chips: dlib's from its 5 points, ArcFace's from the detector's five
        ``points`` when it gave them, else from dlib's 68-point predictor started from the
        boxes; a tuple of them, one per part, for a fused embedder."""
        out = []
        for alignment in self.alignments:
            if alignment == "dlib-150":
                out.append(self.aligner.chips(pixels, marks))
                continue
            if points is None:  # one run of the 68-point predictor serves every ArcFace part
                if boxes is None:
                    raise ValueError(f"the {self.embedder.name} embedder aligns from the face boxes; pass them")
                points = self.arcface.landmarks(pixels, boxes)
            out.append(self.arcface.chips(pixels, points))
        return tuple(out) if self.composite else out[0]

    def join(self, chip_sets: list):
        """Chips of several photos as one batch (per part, for a fused embedder)."""
        parts = [[c[i] for c in chip_sets] if self.composite else chip_sets for i in range(len(self.alignments))]
        joined = tuple(np.concatenate(p) if p else np.zeros((0, s, s, 3), np.uint8)
                       for p, s in zip(parts, self.chip_sizes))
        return joined if self.composite else joined[0]

    def chips(self, image: LoadedImage, landmarks: np.ndarray, boxes: np.ndarray | None = None,
              points: np.ndarray | None = None) -> np.ndarray:
        """Aligned chips of faces already found (dlib's landmarks, boxes and the detector's
        ArcFace points if it gave them, in original pixels), no detection."""
        t = time.perf_counter()
        image = at_working_size(image)
        scaled = None if boxes is None else np.asarray(boxes, np.float64) * image.scale
        points = None if points is None else np.asarray(points, np.float32) * image.scale
        chips = self._cut(image.pixels, np.asarray(landmarks, np.float32) * image.scale, scaled, points)
        self.timer.add("landmarks", t)
        return chips

    def embed(self, chips: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        vectors = self.embedder.embed(chips)
        self.timer.add("embed", t)
        return vectors


def find_faces_in_file(path: Path, detect: DetectOptions | None = None, embedder: str = DEFAULT_EMBEDDER,
                       finder: FaceFinder | None = None) -> FaceArrays:
    """Faces of one photo that need not be in any catalog (verify, search): boxes and landmarks
    in the photo's own (orientation-corrected) pixels, embeddings from ``embedder``.
    Raises ImageError for a file that cannot be read. Pass ``finder`` to reuse loaded models."""
    from faceclust.errors import ImageError
    from faceclust.photos.decode import load_image

    finder = finder or FaceFinder.create(detect, embedder)
    try:
        image = load_image(Path(path), finder.scale_policy())
    except ImageError as exc:  # the message names the file: verify and search take two
        raise ImageError(f"{printable(path)}: {exc}") from exc
    return finder.find([image])[0]
