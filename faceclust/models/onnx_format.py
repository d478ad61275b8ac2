"""Read an ONNX model file with plain Python and numpy: the graph's nodes and its tensors.

ONNX files are protocol buffers. Only what a feed-forward network needs is decoded: the graph's
nodes (op type, inputs, outputs, attributes) and its initializers (tensors, with their raw
data). Anything malformed raises :class:`~faceclust.errors.ModelFormatError` naming the file.
No onnx package and no onnxruntime at run time (the tests compare with onnxruntime).

Field numbers follow onnx/onnx.proto3: ModelProto.graph = 7; GraphProto.node = 1,
initializer = 5; NodeProto.input = 1, output = 2, op_type = 4, attribute = 5;
AttributeProto.name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8; TensorProto.dims =
1, data_type = 2, float_data = 4, int32_data = 5, int64_data = 7, name = 8, raw_data = 9.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceclust.errors import ModelFormatError

# TensorProto.DataType -> numpy dtype (the ones a quantised CNN uses).
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 10: np.float16,
           11: np.float64}


@dataclass
class Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict = field(default_factory=dict)


@dataclass
class Graph:
    path: Path
    nodes: list[Node]
    tensors: dict[str, np.ndarray]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("a number runs past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 70:
            raise ValueError("a number is too long")


def _fields(data: bytes):
    """(field number, wire type, value) for each field of one message; length-delimited values
    are bytes, varints ints, fixed32/fixed64 raw bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("a field runs past the end")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_ints(value, wire: int) -> list[int]:
    if wire == 0:
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        number, pos = _varint(value, pos)
        out.append(_signed(number))
    return out


def _tensor(data: bytes) -> tuple[str, np.ndarray]:
    dims, dtype, name, raw = [], 1, "", None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(data):
        if number == 1:
            dims += _packed_ints(value, wire)
        elif number == 2:
            dtype = value
        elif number == 4:
            floats += (list(struct.unpack(f"<{len(value) // 4}f", value)) if wire == 2
                       else [struct.unpack("<f", value)[0]])
        elif number in (5, 7):
            ints += _packed_ints(value, wire)
        elif number == 8:
            name = value.decode("utf-8")
        elif number == 9:
            raw = value
        elif number == 14:
            raise ValueError(f"tensor {name!r} keeps its data in an external file")
    if dtype not in _DTYPES:
        raise ValueError(f"tensor {name!r} has an unsupported data type {dtype}")
    np_type = _DTYPES[dtype]
    if raw is not None:
        array = np.frombuffer(raw, dtype=np.dtype(np_type).newbyteorder("<")).astype(np_type)
    elif floats:
        array = np.array(floats, np_type)
    else:
        array = np.array(ints, np_type)
    count = int(np.prod(dims)) if dims else 1
    if array.size != count:
        raise ValueError(f"tensor {name!r} holds {array.size} values for shape {dims}")
    return name, array.reshape(dims)


def _attribute(data: bytes):
    name, value = "", None
    for number, wire, raw in _fields(data):
        if number == 1:
            name = raw.decode("utf-8")
        elif number == 2:
            value = struct.unpack("<f", raw)[0]
        elif number == 3:
            value = _signed(raw)
        elif number == 4:
            value = raw
        elif number == 5:
            value = _tensor(raw)[1]
        elif number == 7:
            value = list(struct.unpack(f"<{len(raw) // 4}f", raw)) if wire == 2 else [struct.unpack("<f", raw)[0]]
        elif number == 8:
            value = (value or []) + _packed_ints(raw, wire)
    return name, value


def _node(data: bytes) -> Node:
    node = Node("", [], [])
    for number, _wire, value in _fields(data):
        if number == 1:
            node.inputs.append(value.decode("utf-8"))
        elif number == 2:
            node.outputs.append(value.decode("utf-8"))
        elif number == 4:
            node.op_type = value.decode("utf-8")
        elif number == 5:
            name, attribute = _attribute(value)
            node.attributes[name] = attribute
    return node


def parse_graph(data: bytes, path: Path | str = "<bytes>") -> Graph:
    """The nodes, in file order (ONNX requires a topological order), and the initializers."""
    try:
        graph = next((value for number, wire, value in _fields(data) if number == 7 and wire == 2), None)
        if graph is None:
            raise ValueError("no graph in the file")
        nodes, tensors = [], {}
        for number, wire, value in _fields(graph):
            if number == 1 and wire == 2:
                nodes.append(_node(value))
            elif number == 5 and wire == 2:
                name, array = _tensor(value)
                tensors[name] = array
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path} is not a readable ONNX model ({exc}); reinstall the package "
                               "that ships it") from exc
    return Graph(Path(path), nodes, tensors)


def read_graph(path: Path | str) -> Graph:
    return parse_graph(Path(path).read_bytes(), path)


def dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear, blockwise: element i along ``axis`` uses scale[i // block]."""
    if block:
        scale = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(q.shape[axis]), axis=axis)
    elif scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q.astype(np.float64) - zero.astype(np.float64)) * scale.astype(np.float64)


def constant_values(graph: Graph) -> dict[str, np.ndarray]:
    """Every tensor the graph computes from its weights alone (dequantised, reshaped)."""
    values = {name: array for name, array in graph.tensors.items()}
    for node in graph.nodes:
        if node.op_type == "DequantizeLinear":
            q, scale, zero = (values[name] for name in node.inputs[:3])
            values[node.outputs[0]] = dequantize(q, scale, zero, int(node.attributes.get("axis", 1)),
                                                 int(node.attributes.get("block_size", 0)))
        elif node.op_type == "Reshape" and all(name in values for name in node.inputs):
            values[node.outputs[0]] = values[node.inputs[0]].reshape(values[node.inputs[1]].astype(np.int64))
        elif node.op_type == "Constant":
            values[node.outputs[0]] = np.asarray(node.attributes["value"])
    return values
