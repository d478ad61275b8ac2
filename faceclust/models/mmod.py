"""dlib's CNN face detector (``mmod_human_face_detector.dat``) rebuilt in torch.

The detector scores every position of one big image in which the photo and its whole image
pyramid (each level 5/6 of the one before) are tiled side by side, as dlib's
``input_rgb_image_pyramid<pyramid_down<6>>`` does. Each score-map position above the
threshold is an 80x80 window in the tiled image; it is mapped back through the pyramid level
it falls in to the photo, rounded as dlib rounds, and greedy non-maximum suppression keeps
the best of overlapping windows. At ``scale=1`` every step follows dlib's own arithmetic, so
the rectangles are dlib's to the pixel and the scores agree to float rounding; ``scale=2**k``
also enlarges the image the way dlib's ``upsample_num_times=k`` does, with the same result.

>>> import numpy as np
>>> detector = MMODDetector()
>>> boxes, scores = detector.detect(np.zeros((100, 120, 3), np.uint8))
>>> boxes.shape, boxes.dtype, scores.shape
((0, 4), dtype('float32'), (0,))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceclust.errors import ModelFormatError, UnsupportedPrecision
from faceclust.models.dlib_format import Layer, Network, read_network
from faceclust.models.files import DETECTOR_FILE, file_sha256, model_path
from faceclust.models.mmod_boxes import non_max_suppression, round_rects
from faceclust.models.mmod_pyramid import (
    PYRAMID_N,
    TiledPyramid,
    _doublings,
    build_tiled_image,
    enlarge_like_dlib,
    pyramid_level_sizes,
    shrink_like_dlib,
    tile_pyramid,
    tiled_to_image,
)

_CONV_KINDS = ("con_4", "con_5", "con_6")
_BN_KINDS = ("bn_con2", "bn_con")
_RELU_KINDS = ("relu_", "relu_2")


# ---------------------------------------------------------------------------------------
# The tiled image pyramid.


# ---------------------------------------------------------------------------------------
# From score-map positions to rectangles in the image.


# ---------------------------------------------------------------------------------------
# The network.

class MMODNet(nn.Module):
    """The detector's conv stack with each batch norm folded into the conv before it.

    dlib itself runs the stored ``bn_con2`` layers as affine layers with
    ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - scale * mean``; folding that
    affine into the conv's weights and bias gives the same function in fewer passes.
    ``stride`` and ``offset`` map a score-map position ``p`` to the input pixel ``stride * p
    + offset`` at the centre of its window.
    """

    def __init__(self, layers: list[Layer]) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        self.stride, self.offset = 1, 0
        geometry: list[tuple[int, int, int]] = []
        for layer in layers:
            if layer.kind in _CONV_KINDS:
                modules.append(_conv_from(layer))
                d = layer.details
                if (d["stride_y"], d["padding_y"], d["nr"]) != (d["stride_x"], d["padding_x"],
                                                                d["nc"]):
                    raise ModelFormatError(f"{layer.kind}: only square windows are supported")
                geometry.append((d["stride_x"], d["padding_x"], d["nc"]))
            elif layer.kind in _BN_KINDS:
                if not modules or not isinstance(modules[-1], nn.Conv2d):
                    raise ModelFormatError(f"{layer.kind} must follow a conv layer")
                _fold_batch_norm(modules[-1], layer)
            elif layer.kind in _RELU_KINDS:
                modules.append(nn.ReLU(inplace=True))
            else:
                raise ModelFormatError(f"the MMOD detector has an unexpected layer {layer.kind}; "
                                       "is this mmod_human_face_detector.dat?")
        # dlib's con_::map_output_to_input, applied from the output layer inwards.
        for stride, padding, size in reversed(geometry):
            self.offset = self.offset * stride - padding + size // 2
            self.stride *= stride
        last = modules.pop() if modules else None
        if not isinstance(last, nn.Conv2d) or last.out_channels != 1 or last.stride != (1, 1):
            raise ModelFormatError("the MMOD detector must end in a one-channel, stride-1 conv")
        self.body = nn.Sequential(*modules)
        self.head = ScoreHead(last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def min_input(self) -> int:
        """The smallest input side that still gives a score map at least one cell wide."""
        side = 1
        for module in [self.head.conv, *reversed(self.body)]:
            if isinstance(module, nn.Conv2d):
                k, s, p = module.kernel_size[0], module.stride[0], module.padding[0]
                side = (side - 1) * s + k - 2 * p
        return side


class ScoreHead(nn.Module):
    """The last conv (many channels to one score, 9x9) as a depthwise conv plus a sum over
    channels: the same function, about 7x faster on the CPU, where a conv with a single output
    channel runs far below the machine's rate (it was 40% of the detector's time)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (1, C, k, k) -> (C, 1, k, k): one k x k filter per channel (a 45x81 copy per call).
        depthwise = self.conv.weight.transpose(0, 1)
        per_channel = F.conv2d(x, depthwise, None, padding=self.conv.padding, groups=x.shape[1])
        return per_channel.sum(1, keepdim=True) + self.conv.bias.view(1, -1, 1, 1)


def _conv_from(layer: Layer) -> nn.Conv2d:
    d = layer.details
    shape = tuple(d["filters"])
    n = int(np.prod(shape))
    conv = nn.Conv2d(shape[1], shape[0], (d["nr"], d["nc"]), stride=(d["stride_y"], d["stride_x"]),
                     padding=(d["padding_y"], d["padding_x"]), bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(layer.params[:n].reshape(shape)))
        bias = layer.params[n:n + shape[0]] if d.get("use_bias", True) else np.zeros(shape[0])
        conv.bias.copy_(torch.from_numpy(np.asarray(bias, np.float32)))
    return conv


def _fold_batch_norm(conv: nn.Conv2d, layer: Layer) -> None:
    d = layer.details
    channels = conv.out_channels
    gamma = layer.params[:channels].astype(np.float64)
    beta = layer.params[channels:2 * channels].astype(np.float64)
    scale = gamma / np.sqrt(d["running_variances"].astype(np.float64) + d["eps"])
    shift = beta - scale * d["running_means"].astype(np.float64)
    with torch.no_grad():
        conv.weight.mul_(torch.from_numpy(scale.astype(np.float32)).view(-1, 1, 1, 1))
        conv.bias.copy_(conv.bias * torch.from_numpy(scale.astype(np.float32))
                        + torch.from_numpy(shift.astype(np.float32)))


# ---------------------------------------------------------------------------------------
# Resizing before the pyramid.


# ---------------------------------------------------------------------------------------
# The detector.

BoxMap = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Pyramid:
    """A prepared image: the ``(1, 3, NR, NC)`` channels-last tiled pyramid, where its levels
    are, and how rects found in the (rescaled) image map back to the caller's image."""

    tiled: torch.Tensor
    layout: TiledPyramid
    back: BoxMap

class MMODDetector:
    """dlib's CNN face detector: finds faces of about 80/scale pixels and larger.

    ``threads`` sets torch's intra-op threads for each call (``None`` leaves torch's setting).
    ``precision`` runs the conv stack in ``fp32`` (dlib's scores to float rounding), ``bf16``
    or ``int8`` (faster; scores move by up to a few tenths, see ``quantize``).
    ``dlib_resize=False`` enlarges by plain bilinear interpolation instead of reproducing
    dlib's pixel arithmetic (several times cheaper; the rectangles then differ from dlib's by
    a pixel or so). ``precision="fp32"`` with ``dlib_resize=True`` gives dlib's rectangles.
    """

    def __init__(self, path: str | Path | None = None, *, threads: int | None = None,
                 precision: str = "fp32", dlib_resize: bool = True) -> None:
        path = Path(path) if path is not None else model_path(DETECTOR_FILE)
        network = read_network(path)
        self._check(network)
        self.threads = threads
        self.precision = precision
        self.dlib_resize = dlib_resize
        options, pyramid = network.loss.details, network.input.details
        window = options["detector_windows"][0]
        self.window = (int(window["width"]), int(window["height"]))
        self.nms_iou = float(options["overlaps_nms"]["iou_thresh"])
        self.nms_covered = float(options["overlaps_nms"]["percent_covered_thresh"])
        self.mean_rgb = np.array([pyramid["avg_red"], pyramid["avg_green"], pyramid["avg_blue"]],
                                 np.float32)
        self.padding = int(pyramid["pyramid_padding"])
        self.outer_padding = int(pyramid["pyramid_outer_padding"])
        self.net = MMODNet(network.layers).eval().to(memory_format=torch.channels_last)
        self._run = self._runner(path, precision)

    def _runner(self, path: Path, precision: str):
        from faceclust.models import quantize
        from faceclust.models.int8_ranges import load_ranges

        if precision not in quantize.PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of: "
                             f"{', '.join(quantize.PRECISIONS)}")
        ranges = None
        if precision == "int8":
            if not quantize.int8_supported():
                raise UnsupportedPrecision("int8 needs torch's x86 int8 backend and a CPU with "
                                           "VNNI, which this machine lacks; use precision auto or fp32")
            ranges = load_ranges(file_sha256(path), "mmod")
            if ranges is None:
                raise UnsupportedPrecision(f"no int8 activation ranges were measured for {path}; "
                                           "use precision auto or fp32")
        side = max(self.net.min_input(), 64)
        example = torch.zeros((1, 3, side, side)).contiguous(memory_format=torch.channels_last)
        # The score head stays fp32: it is cheap, and scores are not clipped to a calibrated
        # range, so the best of overlapping windows stays the best.
        body = quantize.runner(self.net.body, precision, ranges, example)
        return lambda x: self.net.head(body(x))

    @staticmethod
    def _check(network: Network) -> None:
        options = network.loss.details
        if network.loss.kind != "loss_mmod_" or not network.input.kind.startswith(
                "input_rgb_image_pyramid"):
            raise ModelFormatError(f"{network.path} is not an MMOD detector on an RGB pyramid "
                                   f"({network.loss.kind}, {network.input.kind})")
        if len(options["detector_windows"]) != 1 or options["use_bounding_box_regression"]:
            raise ModelFormatError(f"{network.path}: only one detector window without bounding "
                                   "box regression is supported")

    def detect(self, image: np.ndarray, *, scale: float = 1.0, max_face: float | None = None,
               min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(n, 4)`` float32 (left, top, right, bottom; right and bottom inclusive, as
        dlib's rectangles) in ``image``'s pixels, and scores ``(n,)`` float32, best first.

        ``image`` is uint8 ``(H, W, 3)`` RGB. ``scale`` resizes it before the pyramid: the
        smallest face found is about ``80 / scale`` px. ``scale = 2**k`` enlarges exactly as
        dlib's ``upsample_num_times=k`` does (and maps boxes back as dlib does); any other
        scale is a plain bilinear resize. ``max_face`` (input pixels) leaves out the pyramid
        levels whose window would be larger. Windows need a raw score above ``min_score``.
        """
        pyramid = self.pyramid(image, scale=scale, max_face=max_face)
        if pyramid is None:
            return _empty()
        return self.boxes(self.score_map(pyramid), pyramid, min_score=min_score)

    def pyramid(self, image: np.ndarray, *, scale: float = 1.0,
                max_face: float | None = None) -> Pyramid | None:
        """First stage of :meth:`detect`: the tiled pyramid image, or None when the image is
        too small for any window."""
        _check_image(image)
        if not scale > 0:
            raise ValueError(f"scale must be positive (got {scale})")
        if image.size == 0:
            return None
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        work, back = _rescale(image, scale, self.dlib_resize)
        with torch.inference_mode():
            pixels = self._normalised(work)
            layout = self._layout(pixels.shape[1], pixels.shape[2], scale, max_face)
            if len(layout.rects) == 0 or min(layout.height, layout.width) < self.net.min_input():
                return None
            return Pyramid(build_tiled_image(pixels, layout), layout, back)

    def score_map(self, pyramid: Pyramid) -> np.ndarray:
        """Second stage of :meth:`detect`: the conv stack's ``(rows, cols)`` score map."""
        with torch.inference_mode():
            return self._run(pyramid.tiled)[0, 0].numpy()

    def boxes(self, scores: np.ndarray, pyramid: Pyramid, *,
              min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Last stage of :meth:`detect`: windows scoring above ``min_score``, mapped to the
        input image and thinned by non-maximum suppression."""
        rects, values = self._candidates(scores, pyramid.layout, min_score)
        if len(rects) == 0:
            return _empty()
        return pyramid.back(rects).astype(np.float32), values.astype(np.float32)

    def _normalised(self, work: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(3, H, W)`` float32 of ``(pixel - mean) / 256`` from ``(H, W, 3)`` pixels."""
        pixels = work if isinstance(work, torch.Tensor) else torch.from_numpy(
            work.astype(np.float32))
        mean = torch.from_numpy(self.mean_rgb)
        return ((pixels - mean) / 256.0).permute(2, 0, 1)

    def _layout(self, rows: int, cols: int, scale: float, max_face: float | None) -> TiledPyramid:
        sizes = pyramid_level_sizes(rows, cols)
        if max_face is not None:
            ratio = PYRAMID_N / (PYRAMID_N - 1.0)
            window = max(self.window) / scale
            sizes = [s for i, s in enumerate(sizes) if window * ratio ** i <= max_face]
        return tile_pyramid(sizes, self.padding, self.outer_padding)

    def _candidates(self, scores: np.ndarray, layout: TiledPyramid,
                    min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Rounded rects and scores after NMS, best first."""
        rows, cols = np.nonzero(scores > min_score)
        values = scores[rows, cols].astype(np.float64)
        order = np.argsort(-values, kind="stable")
        rows, cols, values = rows[order], cols[order], values[order]
        centre_x = cols * self.net.stride + self.net.offset
        centre_y = rows * self.net.stride + self.net.offset
        # dlib's centered_drect: a w x h window spans w - 1 pixels between its corner centres.
        half_w, half_h = (self.window[0] - 1) / 2, (self.window[1] - 1) / 2
        boxes = np.stack([centre_x - half_w, centre_y - half_h,
                          centre_x + half_w, centre_y + half_h], axis=1).astype(np.float64)
        rects = round_rects(tiled_to_image(boxes, layout))
        keep = non_max_suppression(rects, self.nms_iou, self.nms_covered)
        if len(keep) == 0:
            return np.zeros((0, 4), np.int64), np.zeros((0,), np.float64)
        return rects[keep], values[keep]


def _rescale(image: np.ndarray, scale: float,
             dlib_resize: bool = True) -> tuple[np.ndarray | torch.Tensor, BoxMap]:
    """The image the pyramid is built from, and how its integer rects map back to ``image``."""
    if scale == 1.0:
        return image, lambda rects: rects.astype(np.float64)
    doublings = _doublings(scale) if dlib_resize else 0
    if doublings:
        work = image
        for _ in range(doublings):
            work = enlarge_like_dlib(work)
        return work, lambda rects: shrink_like_dlib(rects, doublings).astype(np.float64)
    rows, cols = (max(1, round(n * scale)) for n in image.shape[:2])
    pixels = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    # Antialiasing only matters when shrinking; it keeps small faces from aliasing away.
    resized = F.interpolate(pixels, size=(rows, cols), mode="bilinear", align_corners=False,
                            antialias=scale < 1.0)[0].permute(1, 2, 0)
    sx, sy = image.shape[1] / cols, image.shape[0] / rows
    return resized, lambda rects: _unscale(rects.astype(np.float64), sx, sy)


def _unscale(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Inclusive pixel boxes in a resized image back to the original image's pixels.

    With pixel centres at integers, a box's outer edges are ``left - 0.5`` and ``right +
    0.5``; those edges scale by the size ratio, then the inclusive sides are recovered.
    """
    out = np.empty_like(boxes)
    out[:, 0] = boxes[:, 0] * sx
    out[:, 1] = boxes[:, 1] * sy
    out[:, 2] = (boxes[:, 2] + 1) * sx - 1
    out[:, 3] = (boxes[:, 3] + 1) * sy - 1
    return out


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        got = getattr(image, "dtype", type(image).__name__), getattr(image, "shape", None)
        raise ValueError(f"the detector needs a uint8 (H, W, 3) RGB array (got {got})")


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
