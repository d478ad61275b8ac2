"""Face detection: pure compute on arrays, detectors registered by name.

A detector takes a uint8 RGB image and a scale (how much to enlarge or shrink it before
looking, so that the smallest face wanted reaches the detector's window) and returns boxes
(left, top, right, bottom) in that image's pixels with scores, and, if it finds them too, five
points per face (eye centres, nose tip, mouth corners: what ArcFace-class embedders are aligned
by). No face gives empty arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from faceclust.registry import Registry


@dataclass
class Detections:
    boxes: np.ndarray  # float32 (n, 4): left, top, right, bottom
    scores: np.ndarray  # float32 (n,)
    points: np.ndarray | None = None  # float32 (n, 5, 2) ArcFace points, if the detector finds them

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.scores)


class Detector(Protocol):
    name: str
    window: int  # the smallest face (pixels) found at scale 1
    # Optional: ``gives_points = True`` when every Detections has ``points`` (then dlib's
    # 68-point predictor is not loaded up front); ``expect(photos)``, told how many photos are
    # coming before the first, to prepare what pays off only over many; ``side_by_side =
    # True`` when ``detect`` may run on several threads at once, each computing alone (then
    # the scan detects in its decode workers); ``unchanged_below()``, earlier identities mapped
    # to the detection size below which they found the same faces (those photos are not
    # searched again: ``faceclust.scan.identity``).

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections: ...

    def identity(self) -> str: ...


detectors: Registry[Detector] = Registry("detector")

PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")


@dataclass(frozen=True)
class DetectOptions:
    """What the user asks of detection. One default lives here.

    ``min_face``: smallest face wanted, in pixels of the original photo; it sets how much the
    image is enlarged (small photos) and lets big photos be shrunk before the pyramid.
    ``max_side``: the detector never works on an image longer than this (keeps big photos
    cheap; faces smaller than ``window * long_side / max_side`` px are then out of reach).
    ``upsample``: force the detection scale to 2**upsample instead of deriving it from
    ``min_face``. ``min_score``: keep detections scoring above this.

    For the ``mmod`` detector only (yunet and hog refuse them): ``precision`` of its conv
    stack (``auto``: int8 where this torch and CPU support it, else fp32; ``fp32`` with
    ``exact`` gives dlib's rectangles).
    Faces smaller than the detector's window need the photo enlarged, which costs several
    times the rest of the search; unless ``thorough``, a photo is enlarged only when no face
    was found at its own size (so a portrait's tiny bystanders can be missed, a photo of
    small faces is not). ``exact``: dlib's own arithmetic (fp32, dlib's enlargement, every photo
    searched at every scale): dlib's rectangles, several times slower.
    """

    # YuNet: on the development sets it finds a face in more photos than MMOD (celeb25_web
    # 1,259 of 1,260 against 1,232), its own five points align SFace better than dlib's 68,
    # and it is 2-5x faster (docs/benchmarks.md, "A second detector: YuNet").
    detector: str = "yunet"
    min_face: int = 30
    max_side: int = 1600
    upsample: int | None = None
    min_score: float = 0.0
    precision: str = "auto"
    thorough: bool = False
    exact: bool = False

    def __post_init__(self) -> None:
        if self.min_face < 8:
            raise ValueError("min_face must be at least 8 pixels")
        if self.max_side < 64:
            raise ValueError("max_side must be at least 64 pixels")
        if self.upsample is not None and not 0 <= self.upsample <= 3:
            raise ValueError("upsample must be between 0 and 3")
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of: {', '.join(PRECISION_CHOICES)}")
        if self.exact and self.precision not in ("auto", "fp32"):
            raise ValueError("exact detection is fp32 (dlib's arithmetic); drop the precision "
                             "or the exact option")

    def detection_scale(self, width: int, height: int, window: int) -> float:
        """Detector pixels per original pixel for a photo of this size."""
        wanted = 2.0 ** self.upsample if self.upsample is not None else window / self.min_face
        return min(wanted, self.max_side / max(width, height))

    def refuse_mmod_options(self, detector: str) -> None:
        """For detectors that do not take ``precision``, ``thorough`` and ``exact``: a
        ValueError naming the first one given, rather than ignoring it."""
        given = [name for name, asked in (("precision", self.precision != "auto"), ("thorough", self.thorough),
                                          ("exact", self.exact)) if asked]
        if given:
            raise ValueError(f"--{given[0]} is an option of the mmod detector, not of {detector}; "
                             "add --detector mmod, or drop it")

    def identity(self, detector_identity: str) -> str:
        """What decides which faces are found: a change means photos need detecting again."""
        up = "auto" if self.upsample is None else str(self.upsample)
        return (f"{detector_identity};min_face={self.min_face};max_side={self.max_side};"
                f"upsample={up};min_score={self.min_score:g}")


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


@detectors.register("mmod")
class MMODFaceDetector:
    """dlib's CNN (MMOD) face detector, rebuilt in torch: finds faces at many angles."""

    name = "mmod"
    window = 80

    def __init__(self, options: DetectOptions | None = None) -> None:
        self.options = options or DetectOptions()
        self._impl = None
        self._precision: str | None = None
        if self.options.precision in ("int8", "bf16"):
            self._check_asked_precision(self.options.precision)

    @staticmethod
    def _check_asked_precision(precision: str) -> None:
        """Fail before the scan starts, not on its first photo."""
        from faceclust.errors import UnsupportedPrecision
        from faceclust.models import quantize

        if precision == "bf16" and not quantize.bf16_supported():
            raise UnsupportedPrecision("this CPU has no native bfloat16 (it would be emulated, "
                                       "slower than fp32); use precision auto or fp32")
        if precision == "int8" and _fastest_precision() != "int8":
            raise UnsupportedPrecision("int8 needs torch's x86 int8 backend, a CPU with VNNI "
                                       "and ranges measured for this detector file; use "
                                       "precision auto or fp32")

    def precision(self) -> str:
        """The precision in use: ``auto`` resolved for this machine."""
        if self._precision is None:
            wanted = self.options.precision
            if wanted == "auto":
                wanted = "fp32" if self.options.exact else _fastest_precision()
            self._precision = wanted
        return self._precision

    def _load(self):
        if self._impl is None:
            from faceclust.models.mmod import MMODDetector

            try:
                self._impl = MMODDetector(precision=self.precision(), dlib_resize=self.options.exact)
            except Exception:
                if self.options.precision != "auto" or self.precision() == "fp32":
                    raise
                # auto never fails because the faster path is missing: fp32 finds the faces too.
                self._precision = "fp32"
                self._impl = MMODDetector(precision="fp32", dlib_resize=self.options.exact)
        return self._impl

    def identity(self) -> str:
        from faceclust.models.files import DETECTOR_FILE, file_sha256, model_path
        from faceclust.models.int8_ranges import ranges_digest

        # The precision asked, not the one resolved: resolving "auto" imports torch, and an
        # unchanged library's second scan should not pay for that. int8's stored ranges are
        # part of what int8 finds, so their digest is recorded with it.
        sha = file_sha256(model_path(DETECTOR_FILE))
        precision = self.options.precision
        if self.options.exact:
            precision = "fp32"
        elif precision in ("auto", "int8"):
            precision += f"(ranges {ranges_digest(sha, 'mmod') or 'none'})"
        search = "exact" if self.options.exact else "thorough" if self.options.thorough else "two-pass"
        return f"mmod:{sha[:12]};{precision};{search}"

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        impl = self._load()
        min_score = self.options.min_score
        if scale > 1.0 + 1e-3 and not (self.options.thorough or self.options.exact):
            # Faces of the window's size and up first, at the photo's own size. Only when that
            # finds nothing is the photo searched as --thorough searches it (enlarged, every
            # scale), so a photo has a face whenever the thorough search would give it one. A
            # photo with no face at all therefore costs both searches.
            boxes, scores = impl.detect(image, scale=1.0, min_score=min_score)
            if len(scores) == 0:
                boxes, scores = impl.detect(image, scale=scale, min_score=min_score)
        else:
            boxes, scores = impl.detect(image, scale=scale, min_score=min_score)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        boxes[:, 2:] += 1  # dlib's rectangles include their right and bottom pixels
        return Detections(boxes, np.asarray(scores, np.float32).reshape(-1))


def _fastest_precision() -> str:
    """int8 where this torch has the backend and the model file has measured ranges."""
    from faceclust.models import quantize
    from faceclust.models.files import DETECTOR_FILE, file_sha256, model_path
    from faceclust.models.int8_ranges import load_ranges

    if quantize.int8_supported() and load_ranges(file_sha256(model_path(DETECTOR_FILE)), "mmod") is not None:
        return "int8"
    return "fp32"


@detectors.register("hog")
class HOGFaceDetector:
    """dlib's frontal HOG + linear SVM detector: fast, frontal faces only."""

    name = "hog"
    window = 80

    def __init__(self, options: DetectOptions | None = None) -> None:
        options = options or DetectOptions()
        options.refuse_mmod_options(self.name)
        self.min_score = options.min_score
        self._impl = None

    def identity(self) -> str:
        import dlib

        return f"hog:dlib-{dlib.__version__}"

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        if self._impl is None:
            import dlib

            self._impl = dlib.get_frontal_face_detector()
        # dlib enlarges by exact doublings (its pyramid_up); other factors are resized here.
        upsample = 0
        while scale >= 2.0 - 1e-6 and upsample < 3:
            scale /= 2.0
            upsample += 1
        work = image if abs(scale - 1.0) < 1e-6 else _resize(image, scale)
        rects, scores, _ = self._impl.run(work, upsample, self.min_score)
        if not rects:
            return Detections.empty()
        sx = work.shape[1] / image.shape[1]
        sy = work.shape[0] / image.shape[0]
        boxes = np.array([[r.left() / sx, r.top() / sy, (r.right() + 1) / sx, (r.bottom() + 1) / sy]
                          for r in rects], np.float32)
        scores = np.asarray(scores, np.float32)
        order = np.argsort(-scores, kind="stable")
        return Detections(boxes[order], scores[order])


# Registered on import, beside mmod and hog (it needs this module's names).
from faceclust.faces import yunet as _yunet  # noqa: E402,F401
