"""Running a conv stack at lower precision on the CPU: int8 and bfloat16.

fp32 is the reference (it reproduces dlib). The detector's conv stack spends most of a scan's
time, and on a CPU with VNNI int8 convs run it about 3x faster (bfloat16 about 1.8x, where the
CPU has native bfloat16). int8 here is static quantization: weights per output channel
(symmetric, taken from the fp32 weights when the model loads) and activations per tensor, with
ranges measured once on development photos and stored in a JSON file next to this module,
keyed by the model file's SHA-256 (:func:`calibrate` makes them; see
``benchmarks/calibrate_detector.py``). torch's FX quantization does the conversion.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from faceclust.errors import ModelFormatError

PRECISIONS = ("fp32", "bf16", "int8")
RANGES_FILE = Path(__file__).with_name("int8_ranges.json")


def int8_supported() -> bool:
    """Whether this torch has FX quantization and an x86 int8 conv backend."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch.ao.quantization.quantize_fx  # noqa: F401
    except ImportError:
        return False
    return "x86" in torch.backends.quantized.supported_engines


def bf16_supported() -> bool:
    """Whether the CPU runs bfloat16 convs natively (else they are emulated and slow)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and check is not None and check())


def _qconfig_mapping():
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver, QConfig, QConfigMapping

    activation = MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=False)
    weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    return QConfigMapping().set_global(QConfig(activation=activation, weight=weight))


def _prepared(net: nn.Module, example: torch.Tensor) -> nn.Module:
    import copy

    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = "x86"
    return prepare_fx(copy.deepcopy(net).eval(), _qconfig_mapping(), (example,))


def _observers(prepared: nn.Module) -> list[nn.Module]:
    """The activation observers in graph order (the names FX gives them are stable)."""
    return [module for name, module in prepared.named_modules()
            if name.startswith("activation_post_process")]


def calibrate(net: nn.Module, inputs: Iterable[torch.Tensor]) -> list[list[float]]:
    """[min, max] of every quantized activation of ``net`` over ``inputs``, in graph order."""
    inputs = iter(inputs)
    first = next(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = _prepared(net, first)
        with torch.no_grad():
            prepared(first)
            for batch in inputs:
                prepared(batch)
    return [[float(o.min_val), float(o.max_val)] for o in _observers(prepared)]


def quantize(net: nn.Module, ranges: list[list[float]], example: torch.Tensor) -> nn.Module:
    """An int8 copy of ``net`` using stored activation ``ranges`` (see :func:`calibrate`)."""
    from torch.ao.quantization.quantize_fx import convert_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = _prepared(net, example)
        observers = _observers(prepared)
        if len(observers) != len(ranges):
            raise ModelFormatError(f"stored int8 ranges cover {len(ranges)} activations, the "
                                   f"network has {len(observers)}")
        for observer, (low, high) in zip(observers, ranges):
            observer.min_val = torch.tensor(float(low))
            observer.max_val = torch.tensor(float(high))
        return convert_fx(prepared).eval()


def load_ranges(model_sha256: str, name: str, path: Path | None = None) -> list[list[float]] | None:
    """The stored ranges of the model file with this hash, or None when none were measured."""
    path = RANGES_FILE if path is None else path
    if not path.is_file():
        return None
    entry = json.loads(path.read_text()).get(name)
    if not entry or entry.get("model_sha256") != model_sha256:
        return None
    return entry["ranges"]


def save_ranges(model_sha256: str, name: str, ranges: list[list[float]], source: str,
                path: Path | None = None) -> None:
    path = RANGES_FILE if path is None else path
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored[name] = {"model_sha256": model_sha256, "source": source, "ranges": ranges}
    path.write_text(json.dumps(stored, indent=1) + "\n")


def runner(net: nn.Module, precision: str, ranges: list[list[float]] | None = None,
           example: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function running ``net`` (fp32, channels-last) at ``precision``; fp32 output."""
    if precision == "fp32":
        return net
    if precision == "bf16":
        def run_bf16(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(x).float()
        return run_bf16
    if precision == "int8":
        if ranges is None or example is None:
            raise ValueError("int8 needs stored activation ranges and an example input")
        quantized = quantize(net, ranges, example)
        return lambda x: quantized(x).float()
    raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
