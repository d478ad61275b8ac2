"""YuNet's graph read from its ONNX file, without torch: the steps, convs and heads that
:mod:`faceclust.models.yunet` (torch) and :mod:`faceclust.models.yunet_onnx` (onnxruntime) run,
and the decoding of the maps either returns. See :mod:`faceclust.models.yunet` for the
network and what its numbers mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceclust.errors import ModelFormatError
from faceclust.models.onnx_format import Graph, constant_values

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


def input_reading_convs(steps: list[_Step]) -> list[int]:
    """The convs that read the network's input (their weights take its channels)."""
    return [step.conv for step in steps if step.op == "Conv" and step.inputs[0] == "input"]


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
