"""Write a small ONNX model with plain Python: the inverse of :mod:`faceclust.models.onnx_format`
for what a feed-forward CNN needs (nodes with int, ints and string attributes, float32 and
int64 initializers, inputs and outputs whose dimensions may be named, i.e. of any size).

Used to hand a network faceclust has read (and perhaps changed: weights dequantised, channels
swapped, sizes left free) to onnxruntime. Field numbers as in onnx_format's docstring, plus
ModelProto.ir_version = 1, opset_import = 8 (OperatorSetIdProto.version = 2); GraphProto.name =
2, input = 11, output = 12; AttributeProto.type = 20; ValueInfoProto.name = 1, type = 2;
TypeProto.tensor_type = 1 (elem_type = 1, shape = 2); TensorShapeProto.dim = 1 (dim_value = 1,
dim_param = 2).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

IR_VERSION = 8
_ELEMENT_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int64): 7}
_ATTRIBUTE_TYPES = {"int": 2, "string": 3, "ints": 7}


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # two's complement, as protobuf writes negative int64s
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(int(value))


def _bytes_field(number: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def attribute(name: str, value: int | str | Sequence[int]) -> bytes:
    """An AttributeProto: an int, a string or a list of ints."""
    if isinstance(value, str):
        body = _int_field(20, _ATTRIBUTE_TYPES["string"]) + _bytes_field(4, value)
    elif isinstance(value, (int, np.integer)):
        body = _int_field(20, _ATTRIBUTE_TYPES["int"]) + _int_field(3, value)
    elif all(isinstance(v, (int, np.integer)) for v in value):
        body = _int_field(20, _ATTRIBUTE_TYPES["ints"]) + b"".join(_int_field(8, v) for v in value)
    else:
        raise ValueError(f"attribute {name!r}: only ints, lists of ints and strings are written")
    return _bytes_field(1, name) + body


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attributes) -> bytes:
    """A NodeProto; ``""`` as an input is an omitted optional input."""
    return (b"".join(_bytes_field(1, name) for name in inputs)
            + b"".join(_bytes_field(2, name) for name in outputs)
            + _bytes_field(4, op_type)
            + b"".join(_bytes_field(5, attribute(key, value)) for key, value in attributes.items()))


def tensor(name: str, array: np.ndarray) -> bytes:
    """A TensorProto holding ``array`` (float32, uint8 or int64) as raw little-endian data."""
    array = np.asarray(array)
    if array.dtype not in _ELEMENT_TYPES:
        raise ValueError(f"tensor {name!r}: dtype {array.dtype} is not written")
    data = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
    return (b"".join(_int_field(1, d) for d in array.shape) + _int_field(2, _ELEMENT_TYPES[array.dtype])
            + _bytes_field(8, name) + _bytes_field(9, data))


def value_info(name: str, dims: Sequence[int | str], dtype=np.float32) -> bytes:
    """A graph input or output: ``dims`` are sizes, or names for sizes left free."""
    shape = b"".join(_bytes_field(1, _int_field(1, d) if isinstance(d, (int, np.integer)) else _bytes_field(2, d))
                     for d in dims)
    tensor_type = _int_field(1, _ELEMENT_TYPES[np.dtype(dtype)]) + _bytes_field(2, shape)
    return _bytes_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))


def model(name: str, nodes: Sequence[bytes], initializers: Sequence[bytes], inputs: Sequence[bytes],
          outputs: Sequence[bytes], opset: int) -> bytes:
    """A ModelProto of one graph, in the default (ai.onnx) domain at ``opset``."""
    graph = (b"".join(_bytes_field(1, n) for n in nodes) + _bytes_field(2, name)
             + b"".join(_bytes_field(5, t) for t in initializers)
             + b"".join(_bytes_field(11, i) for i in inputs) + b"".join(_bytes_field(12, o) for o in outputs))
    opset_id = _bytes_field(1, "") + _int_field(2, opset)
    return (_int_field(1, IR_VERSION) + _bytes_field(2, "faceclust") + _bytes_field(7, graph)
            + _bytes_field(8, opset_id))

