"""Read dlib's serialized DNN files (``.dat``) with plain Python and numpy.

dlib writes a network as nested C++ objects. The loss layer comes first (``int 1``, its
details, then its subnet); every wrapper writes its version int before its subnet, so the
file opens with the outermost-first run of version ints and the layer contents follow
innermost-first, which is the input-to-output order:

* ``add_layer`` writes ``int 2``, its subnet, its details, three bools and three tensors;
* the innermost ``add_layer`` (``int 2`` or ``3``) holds the input layer, then its own
  details, three bools, three tensors and (version 3) the sample expansion factor;
* ``tag`` and ``skip`` layers write ``int 1`` and their subnet only: no id, and nothing
  tells one from the other, so the topology has to come from the network's definition.

Each layer's details begin with a version string (``"con_4"``, ``"affine_"``, ...) that
picks its reader from :data:`LAYER_READERS`. Anything unexpected raises
:class:`~faceclust.errors.ModelFormatError` naming the file and the byte offset.
``repeat<>`` layers and a tag placed directly on the input layer are not supported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from faceclust.errors import ModelFormatError, ModelNotFound

_HINT = ("the file is damaged or is not a dlib DNN model; if it came from face_recognition_models, "
         "reinstall it with: pip install --force-reinstall face_recognition_models")

# Exponents dlib's float_details uses for the non-finite values.
_EXP_INF, _EXP_NINF = 32000, 32001

_ADD_LAYER = 2
_TAG_OR_SKIP = 1
_INNERMOST_VERSIONS = (2, 3)
_WRAPPER_VERSIONS = (_TAG_OR_SKIP, _ADD_LAYER, 3)


@dataclass
class Layer:
    """One serialized layer: its version string, its own fields and its flat parameters."""

    kind: str
    details: dict
    params: np.ndarray


@dataclass
class Network:
    """A parsed dlib network. ``layers`` are the computational layers, input to output."""

    path: Path
    loss: Layer
    input: Layer
    layers: list[Layer]


class DatReader:
    """dlib's primitive encodings read from an in-memory file, with positioned errors."""

    def __init__(self, data: bytes, path: Path | str = "<bytes>") -> None:
        self.data = memoryview(data)
        self.path = Path(path)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def error(self, expected: str, at: int | None = None) -> ModelFormatError:
        offset = self.pos if at is None else at
        return ModelFormatError(
            f"{self.path}: at byte {offset} of {len(self.data)}: expected {expected}; {_HINT}")

    def take(self, count: int, what: str) -> memoryview:
        if count < 0 or count > self.remaining:
            raise self.error(f"{what} ({count} bytes), but only {self.remaining} bytes are left")
        start = self.pos
        self.pos += count
        return self.data[start:self.pos]

    def int(self, what: str = "an integer", signed: bool = True) -> int:
        """A control byte (sign bit 0x80, byte count in the low nibble), then the magnitude."""
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        negative = bool(control & 0x80)
        # Writers never set bits 0x70 and always write at least one byte, even for zero.
        if control & 0x70 or not 1 <= size <= 8 or (negative and not signed):
            raise self.error(f"{what} (found control byte 0x{control:02x})", at=start)
        magnitude = int.from_bytes(self.take(size, what), "little")
        return -magnitude if negative else magnitude

    def uint(self, what: str = "an unsigned integer") -> int:
        return self.int(what, signed=False)

    def float(self, what: str = "a floating point number") -> float:
        """A mantissa and a power-of-two exponent (the old ASCII form is read too)."""
        if self.remaining and self.data[self.pos] & 0x70:
            return self._ascii_float(what)
        mantissa = self.int(f"the mantissa of {what}")
        exponent = self.int(f"the exponent of {what}")
        if exponent < _EXP_INF:
            return math.ldexp(float(mantissa), exponent)
        if exponent == _EXP_INF:
            return math.inf
        return -math.inf if exponent == _EXP_NINF else math.nan

    double = float  # dlib writes float and double the same way

    def _ascii_float(self, what: str) -> float:
        start = self.pos
        end = bytes(self.data[start:start + 64]).find(b" ")
        if end < 0:
            raise self.error(f"{what} in dlib's old text form", at=start)
        text = bytes(self.take(end + 1, what)[:-1]).decode("ascii", "replace")
        special = {"inf": math.inf, "ninf": -math.inf, "NaN": math.nan}
        try:
            return special[text] if text in special else float(text)
        except ValueError:
            raise self.error(f"{what} in dlib's old text form (found {text!r})", at=start) from None

    def string(self, what: str = "a string") -> str:
        length = self.uint(f"the length of {what}")
        raw = bytes(self.take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"{what} as ASCII text", at=self.pos - length) from None

    def bool(self, what: str = "a bool") -> bool:
        start = self.pos
        value = bytes(self.take(1, what))
        if value not in (b"0", b"1"):
            raise self.error(f"{what} ('0' or '1', found {value!r})", at=start)
        return value == b"1"

    def byte(self, what: str = "a byte") -> int:
        return self.take(1, what)[0]

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        """Version 2, then num_samples, k, nr, nc, then little-endian float32 in NCHW order."""
        start = self.pos
        version = self.int(f"the version of {what}")
        if version != 2:
            raise self.error(f"{what} of version 2 (found version {version})", at=start)
        shape = tuple(self.uint(f"a dimension of {what}") for _ in range(4))
        raw = self.take(4 * math.prod(shape), f"the values of {what} {shape}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str = "a tensor view") -> tuple[int, int, int, int]:
        """An alias_tensor: the shape of a view into a layer's flat parameters."""
        start = self.pos
        version = self.int(f"the version of {what}")
        if version != 1:
            raise self.error(f"{what} of version 1 (found version {version})", at=start)
        return tuple(self.uint(f"a dimension of {what}") for _ in range(4))

    def peek_string(self) -> str | None:
        """The string at the current position if one is there, without moving."""
        start = self.pos
        try:
            return self.string()
        except ModelFormatError:
            return None
        finally:
            self.pos = start


# ---------------------------------------------------------------------------------------
# Per-kind detail readers. A reader gets the DatReader (positioned just after the version
# string) and the version string, and returns (details, flat float32 params).

DetailReader = Callable[[DatReader, str], tuple[dict[str, Any], np.ndarray]]

LAYER_READERS: dict[str, DetailReader] = {}
INPUT_READERS: dict[str, DetailReader] = {}
LOSS_READERS: dict[str, DetailReader] = {}

# ---------------------------------------------------------------------------------------
# The network structure.

def _read_entry(r: DatReader, table: dict[str, DetailReader], role: str) -> Layer:
    """A version string, then the fields its reader knows."""
    start = r.pos
    kind = r.string(f"the version string of the {role}")
    reader = table.get(kind)
    if reader is None:
        known = ", ".join(sorted(table))
        raise r.error(f"a known {role} version (found {kind!r}; known: {known})", at=start)
    details, params = reader(r, kind)
    return Layer(kind=kind, details=details, params=params)


def _read_versions(r: DatReader, what: str, allowed: tuple[int, ...]) -> int:
    start = r.pos
    version = r.int(f"the version of {what}")
    if version not in allowed:
        raise r.error(f"{what} version {' or '.join(map(str, allowed))} (found {version})",
                      at=start)
    return version


def _read_wrapper_versions(r: DatReader) -> list[tuple[int, int]]:
    """The outermost-first run of (layer version, its offset) up to the input layer."""
    versions: list[tuple[int, int]] = []
    while not (r.peek_string() or "").startswith("input"):
        start = r.pos
        versions.append((_read_versions(r, "a layer wrapper (add_layer, tag or skip)",
                                        _WRAPPER_VERSIONS), start))
    if not versions:
        raise r.error("at least one computational layer before the input layer")
    return versions


def _read_layer_trailer(r: DatReader, version: int, innermost: bool) -> None:
    """The bookkeeping add_layer writes after its details; none of it matters at inference."""
    for name in ("this_layer_setup_called", "gradient_input_is_stale",
                 "get_output_and_gradient_input_disabled"):
        r.bool(name)
    tensors = ("x_grad", "cached_output", "grad_final" if innermost else "params_grad")
    for name in tensors:
        r.tensor(name)
    if innermost and version == 3:
        r.uint("sample_expansion_factor")


def _read_layers(r: DatReader, versions: list[tuple[int, int]]) -> list[Layer]:
    """Layer contents, innermost (next to the input) first."""
    innermost, innermost_at = versions[-1]
    if innermost not in _INNERMOST_VERSIONS:
        raise r.error("a computational layer directly on the input layer (a tag there is not "
                      "supported)", at=innermost_at)
    layers = [_read_entry(r, LAYER_READERS, "layer")]
    _read_layer_trailer(r, innermost, innermost=True)
    for version, offset in reversed(versions[:-1]):
        if version == _TAG_OR_SKIP:
            continue
        if version != _ADD_LAYER:
            raise r.error(f"add_layer version {_ADD_LAYER} outside the innermost layer "
                          f"(found {version})", at=offset)
        layers.append(_read_entry(r, LAYER_READERS, "layer"))
        _read_layer_trailer(r, version, innermost=False)
    return layers


def parse_network(data: bytes, path: Path | str = "<bytes>") -> Network:
    """Parse a whole serialized network held in memory; every byte must be accounted for."""
    from faceclust.models import dlib_layers  # noqa: F401 - fills the reader tables on first use

    r = DatReader(data, path)
    _read_versions(r, "the loss layer wrapper (add_loss_layer)", (1,))
    loss = _read_entry(r, LOSS_READERS, "loss layer")
    versions = _read_wrapper_versions(r)
    input_layer = _read_entry(r, INPUT_READERS, "input layer")
    layers = _read_layers(r, versions)
    if r.remaining:
        raise r.error(f"the end of the network, but {r.remaining} more bytes follow")
    return Network(path=Path(path), loss=loss, input=input_layer, layers=layers)


def read_network(path: Path | str) -> Network:
    """Read a dlib DNN ``.dat`` file to its last byte.

    >>> from faceclust.models.files import model_path, EMBEDDER_FILE
    >>> net = read_network(model_path(EMBEDDER_FILE))
    >>> net.loss.kind, net.input.kind, net.layers[0].kind
    ('loss_metric_2', 'input_rgb_image_sized', 'con_4')
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelNotFound(f"model file {path} does not exist") from None
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot be read ({exc.strerror}); {_HINT}") from None
    return parse_network(data, path)
