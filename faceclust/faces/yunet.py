"""The ``yunet`` detector: OpenCV Zoo's YuNet (MIT), a small anchor-free CNN that finds faces
at many angles, several times faster than the MMOD CNN.

Its boxes are drawn to another convention than dlib's (taller, from the hairline to the chin);
dlib's landmark predictors, which place their points relative to the box, were trained with
dlib's own detectors' boxes. So each YuNet box is given as the box dlib's MMOD detector draws
around the same face: a square whose centre and side follow YuNet's box by the constants in
``MMOD_GEOMETRY``, measured once on development photos (``benchmarks/bench_yunet.py``).
"""

from __future__ import annotations

import threading

import numpy as np

from faceclust.faces.detect import DetectOptions, Detections, detectors

# A face's box as MMOD draws it, from YuNet's (cx, cy, w, h): centre (cx + a w, cy + b h),
# side c w + d h. Measured by benchmarks/bench_yunet.py --fit (see docs/benchmarks.md).
MMOD_GEOMETRY = (-0.0394, 0.0, 1.0051, 0.0461)
# A cell is a face when sqrt(class * objectness) reaches this, as OpenCV's FaceDetectorYN
# scores it; overlapping cells are thinned at this IoU. OpenCV's defaults are 0.9 and 0.3; at
# 0.9 YuNet misses faces dlib's MMOD finds on the development sets (photos with a face:
# celeba_train 0.93 against MMOD's 0.99), at 0.6 it finds them all (benchmarks/bench_yunet.py).
SCORE = 0.6
NMS_IOU = 0.3
# YuNet (trained at 640 px) misses faces much larger than about 500 px: close-ups and selfies
# in a 1600 px working image. Images whose long side reaches twice this are also searched
# shrunk to about this size (an integer box reduction), for faces the full-size search
# missed (benchmarks/bench_phone.py: 4 of 240 12 MP photos had their only face found so).
COARSE_SIDE = 400
# A face of the shrunk search is the same as one of the full-size search when this much of
# the smaller of the two boxes is shared. At full size YuNet may see only part of a close-up
# (eyes to chin, scoring 0.6-0.8): a full-size box of less than PART of the shrunk one's area,
# scoring lower, gives way to it when the shrunk one is at least COARSE_SIDE wide at full size
# (smaller faces are placed better at full size).
SAME_FACE = 0.5
PART = 0.5
# A full-size box under this share of a shrunk face's area is another, smaller face (someone
# behind, at the edge of the box), never a part: it stays beside it.
OTHER_FACE = 0.1


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    area = _area(boxes)
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = (np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])).clip(0)
        h = (np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])).clip(0)
        inter = w * h
        union = area[i] + area[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return np.array(keep, np.int64)


def covered(boxes: np.ndarray, by: np.ndarray, share: float = SAME_FACE) -> np.ndarray:
    """Whether each of ``boxes`` shares at least ``share`` of the smaller box's area with one of
    ``by`` (the same face found twice)."""
    if not len(boxes) or not len(by):
        return np.zeros(len(boxes), bool)
    w = (np.minimum(boxes[:, None, 2], by[None, :, 2]) - np.maximum(boxes[:, None, 0], by[None, :, 0])).clip(0)
    h = (np.minimum(boxes[:, None, 3], by[None, :, 3]) - np.maximum(boxes[:, None, 1], by[None, :, 1])).clip(0)
    smaller = np.minimum(_area(boxes)[:, None], _area(by)[None, :])
    overlap = np.divide(w * h, smaller, out=np.zeros_like(smaller, dtype=np.float64), where=smaller > 0)
    return (overlap >= share).any(axis=1)


def _merge(boxes: np.ndarray, scores: np.ndarray, big_boxes: np.ndarray, big_scores: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Which full-size faces stay and which faces of the shrunk search join them. A shrunk
    face meeting a full-size face of about its size (PART of its area or more) is that face
    found twice: dropped. Otherwise it joins, unless it meets full-size parts of itself (from
    OTHER_FACE to PART of its area) scoring at least as well: a big one (COARSE_SIDE wide or
    more) scoring higher replaces those parts. Smaller faces it meets stay beside it. Boxes in
    full-size pixels."""
    kept = np.ones(len(boxes), bool)
    new = np.zeros(len(big_boxes), bool)
    for i in np.argsort(-big_scores, kind="stable"):
        met = kept & covered(boxes, big_boxes[i:i + 1])
        share = _area(boxes) / max(float(_area(big_boxes[i:i + 1])[0]), 1e-9)
        if (met & (share >= PART)).any():
            continue
        parts = met & (share >= OTHER_FACE)
        if not parts.any():
            new[i] = True
        elif big_boxes[i, 2] - big_boxes[i, 0] >= COARSE_SIDE and big_scores[i] > scores[parts].max():
            kept &= ~parts
            new[i] = True
    return kept, new


def _resized(image: np.ndarray, rows: int, cols: int, antialias: bool) -> np.ndarray:
    """``image`` resized bilinearly to ``rows`` x ``cols`` (float32): torch's resize, the one
    faceclust has always searched resized images with (photos are mostly decoded at the size
    searched, so this is rare)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        planes = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        planes = F.interpolate(planes, size=(rows, cols), mode="bilinear", align_corners=False, antialias=antialias)
        return planes[0].permute(1, 2, 0).numpy()


def as_mmod_boxes(boxes: np.ndarray, geometry=MMOD_GEOMETRY) -> np.ndarray:
    """YuNet boxes (left, top, right, bottom) as the squares dlib's MMOD draws."""
    a, b, c, d = geometry
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 + a * w, (boxes[:, 1] + boxes[:, 3]) / 2 + b * h
    half = (c * w + d * h) / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


@detectors.register("yunet")
class YuNetFaceDetector:
    """OpenCV Zoo's YuNet (onnxruntime, or the torch rebuild): fast, any angle, faces of 30 pixels and up.

    It finds smaller faces too, but fewer: looking at small photos shrunk so that 30 px faces
    become 20 px lost faces MMOD finds (benchmarks/bench_yunet.py --window 20), so the window
    is 30: at the default ``min_face`` a small photo is searched at its own size."""

    name = "yunet"
    window = 30
    gives_points = True  # Detections.points: the five ArcFace points of every face

    side_by_side = True  # detect() runs on several threads at once

    # Who runs the network: onnxruntime where it is installed (1.5-1.8x faster and nothing
    # to build at start), else the torch rebuild. Their maps agree to about 1e-5: the same
    # faces, one identity (tests/test_yunet_onnx.py).
    RUNTIMES = ("onnxruntime", "torch")

    def __init__(self, options: DetectOptions | None = None, runtime: str | None = None) -> None:
        self.options = options or DetectOptions()
        self.options.refuse_mmod_options(self.name)
        if runtime is not None and runtime not in self.RUNTIMES:
            raise ValueError(f"runtime must be one of: {', '.join(self.RUNTIMES)}")
        self.runtime = runtime
        self._net = None
        self._lock = threading.Lock()

    def identity(self) -> str:
        from faceclust.models.files import YUNET_SHA256

        geometry = ",".join(f"{v:g}" for v in MMOD_GEOMETRY)
        # "points": faces come with YuNet's five points (faces found before they did are found
        # again, so that every face's ArcFace chip is cut the same way).
        return (f"yunet:{YUNET_SHA256[:12]};window={self.window:g};score={SCORE:g};nms={NMS_IOU:g};"
                f"box={geometry};points;coarse={COARSE_SIDE}")

    def unchanged_below(self) -> dict[str, float]:
        """Earlier identities of this detector and the detection size (long side) below which
        they found the same faces: before the shrunk search (2026-12-07), every image it does
        not apply to (see :func:`faceclust.scan.identity.adopt_unchanged`)."""
        before = self.identity().removesuffix(f";coarse={COARSE_SIDE}")
        return {before: 2 * COARSE_SIDE}

    def _load(self):
        with self._lock:
            if self._net is None:
                self._net = self._runner()
            return self._net

    def _runner(self):
        """onnxruntime's session, tried once on a small image (an install that cannot run it
        falls back to torch instead of failing every photo), else the torch rebuild."""
        if self.runtime in (None, "onnxruntime"):
            from faceclust.cpu import compute_threads
            from faceclust.errors import FaceclustError, MissingExtraError

            try:
                from faceclust.models.yunet_onnx import YuNetSession, yunet_model

                session = YuNetSession(yunet_model(rgb=True))
                session(np.zeros((1, 3, 32, 32), np.float32), threads=compute_threads())
            except FaceclustError:
                raise  # the model file itself (missing, damaged): torch would read the same file
            except Exception as exc:  # noqa: BLE001 - missing, or a build that cannot run here
                if self.runtime == "onnxruntime":
                    raise MissingExtraError(f"onnxruntime cannot run YuNet here ({type(exc).__name__}: {exc}); "
                                            "install it with: pip install onnxruntime") from None
            else:
                self.runtime = "onnxruntime"
                return session
        from faceclust.models.yunet import YuNetTorch

        self.runtime = "torch"
        return YuNetTorch()

    def raw(self, image: np.ndarray, scale: float = 1.0, min_score: float = SCORE
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """YuNet's own boxes, scores and 5 landmarks (eye centres, nose tip, mouth corners) in
        ``image``'s pixels, after NMS, best first."""
        from faceclust.cpu import compute_threads
        from faceclust.models.yunet_graph import decode

        net = self._load()
        rows, cols = image.shape[:2]
        out_rows, out_cols = max(1, round(rows * scale)), max(1, round(cols * scale))
        if (out_rows, out_cols) != (rows, cols):
            image = _resized(image, out_rows, out_cols, antialias=scale < 1.0)
        # The network takes RGB: the photo is copied once into float32 padded to multiples of
        # 32, as the runner lays it out: planes (a plane at a time: several times faster than
        # one strided copy), or rows of pixels viewed as planes (torch's channels_last).
        # Only the padding is zeroed (a 1600 px photo's buffer is 23 MB).
        padded = (-(-out_rows // 32) * 32, -(-out_cols // 32) * 32)
        if getattr(net, "channels_last", False):
            buffer = np.empty((*padded, 3), np.float32)
            buffer[:out_rows, :out_cols] = image
            buffer[out_rows:], buffer[:out_rows, out_cols:] = 0, 0
            planes = buffer.transpose(2, 0, 1)[None]
        else:
            planes = np.empty((1, 3, *padded), np.float32)
            for channel in range(3):
                planes[0, channel, :out_rows, :out_cols] = image[:, :, channel]
            planes[0, :, out_rows:], planes[0, :, :out_rows, out_cols:] = 0, 0
        boxes, scores, points = decode(net(planes, threads=compute_threads()), min_score)
        keep = nms(boxes, scores, NMS_IOU)
        sx, sy = cols / out_cols, rows / out_rows
        factor = np.array([sx, sy, sx, sy])
        return boxes[keep] * factor, scores[keep], points[keep] * factor[:2]

    def expect(self, photos: int) -> None:
        """Get ready for ``photos`` photos (the torch runner builds its inference form for
        many)."""
        net = self._load()
        if hasattr(net, "expect"):
            net.expect(photos)

    def search(self, image: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`raw` at ``scale``, then, for an image of at least twice COARSE_SIDE, also
        shrunk by an integer factor to about COARSE_SIDE: its faces that the full-size search
        did not find (too large for YuNet there) are added. Best first."""
        boxes, scores, points = self.raw(image, scale)
        long_side = max(image.shape[:2]) * scale
        if long_side < 2 * COARSE_SIDE:
            return boxes, scores, points
        factor = int(np.ceil(long_side / COARSE_SIDE))
        rows, cols = image.shape[:2]
        if (round(rows * scale), round(cols * scale)) == (rows, cols):  # searched at its own size: the
            # usual case (a scale within rounding of 1), a box reduction of a few ms
            from PIL import Image

            small = np.asarray(Image.fromarray(np.ascontiguousarray(image)).reduce(factor))
            big_boxes, big_scores, big_points = self.raw(small)
            big_boxes, big_points = big_boxes * factor, big_points * factor
        else:
            big_boxes, big_scores, big_points = self.raw(image, scale / factor)
        kept, new = _merge(boxes, scores, big_boxes, big_scores)
        if kept.all() and not new.any():
            return boxes, scores, points
        boxes = np.concatenate([boxes[kept], big_boxes[new]])
        scores = np.concatenate([scores[kept], big_scores[new]])
        points = np.concatenate([points[kept], big_points[new]])
        order = np.argsort(-scores, kind="stable")
        return boxes[order], scores[order], points[order]

    def detect(self, image: np.ndarray, scale: float = 1.0) -> Detections:
        if image.size == 0:
            return Detections.empty()
        boxes, scores, points = self.search(image, scale)
        keep = scores > self.options.min_score
        # YuNet's points are in the ArcFace template's order (the eye on the photo's left first)
        # and align SFace better than dlib's 68-point predictor started from the mapped box
        # (benchmarks/bench_align.py): they come with the faces.
        # A face cut by the photo's edge gets a square reaching past it: the box is kept inside
        # the photo (what the catalog, export and XMP regions hold; the landmark predictor
        # starts from this same box, so re-embedding it later gives the same descriptor).
        rows, cols = image.shape[:2]
        squares = as_mmod_boxes(boxes[keep]).clip(0, [cols, rows, cols, rows])
        return Detections(squares.astype(np.float32), scores[keep].astype(np.float32), points[keep].astype(np.float32))
