"""Running a conv stack at lower precision on the CPU: int8 and bfloat16.

fp32 is the reference (it reproduces dlib). The detector's conv stack spends most of a scan's
time, and on a CPU with VNNI int8 convs run it about 3.6x faster (``benchmarks/
bench_detector.py``). int8 here is static quantization: weights per output channel (symmetric,
taken from the fp32 weights when the model loads) and activations per tensor over the full
8-bit range, with ranges measured once on development photos and stored in a JSON file next to
this module, keyed by the model file's SHA-256 (:func:`calibrate` makes them; see
``benchmarks/calibrate_detector.py``). The full 8-bit range is exact only with VNNI (without
it, x86 int8 kernels can saturate), so :func:`int8_supported` asks for VNNI. torch's FX
quantization does the conversion; it sets torch's process-wide quantized engine to ``x86``.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable

import torch
from torch import nn

from faceclust.errors import ModelFormatError

PRECISIONS = ("fp32", "bf16", "int8")


# torch warns that torch.ao quantization is deprecated (it still ships and works in the
# versions faceclust installs) and about observer arguments; users can do nothing about either.
# Filtered by message, so nothing else is hidden; a filter is added once, not swapped in and
# out (catch_warnings is not thread-safe, and photos are decoded in threads meanwhile).
for _message in (r"torch\.ao\.quantization is deprecated", r"Please use quant_min and quant_max",
                 r"torch\.quantize_per_tensor, torch\.quantize_per_channel"):
    warnings.filterwarnings("ignore", message=_message)


def int8_supported() -> bool:
    """Whether this torch has FX quantization and an x86 int8 conv backend, on a CPU with VNNI
    (the 8-bit products the stored ranges assume do not saturate)."""
    try:
        import torch.ao.quantization.quantize_fx  # noqa: F401
    except ImportError:
        return False
    vnni = getattr(torch.cpu, "_is_vnni_supported", None)
    return "x86" in torch.backends.quantized.supported_engines and bool(vnni and vnni())


def bf16_supported() -> bool:
    """Whether the CPU runs bfloat16 convs natively (else they are emulated and slow)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and check is not None and check())


def _qconfig_mapping():
    from torch.ao.quantization import (
        MinMaxObserver,
        PerChannelMinMaxObserver,
        QConfig,
        QConfigMapping,
    )

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
    prepared = _prepared(net, first)
    with torch.no_grad():
        prepared(first)
        for batch in inputs:
            prepared(batch)
    return [[float(o.min_val), float(o.max_val)] for o in _observers(prepared)]


def quantize_fx(net: nn.Module, ranges: list[list[float]], example: torch.Tensor) -> nn.Module:
    """An int8 copy of ``net`` made by torch's FX conversion (traces the module: about 1.5 s
    for the detector). The reference :func:`quantize` is tested against."""
    from torch.ao.quantization.quantize_fx import convert_fx

    prepared = _prepared(net, example)
    observers = _observers(prepared)
    _check_ranges(ranges, len(observers))
    for observer, (low, high) in zip(observers, ranges):
        observer.min_val = torch.tensor(float(low))
        observer.max_val = torch.tensor(float(high))
    return convert_fx(prepared).eval()


def _check_ranges(ranges: list, activations: int) -> None:
    if len(ranges) != activations:
        raise ModelFormatError(f"stored int8 ranges cover {len(ranges)} activations, the "
                               f"network has {activations}")


def _activation_qparams(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point of an activation with this stored range, as FX's observer has them."""
    from torch.ao.quantization import MinMaxObserver

    observer = _qconfig_mapping().global_qconfig.activation()
    assert isinstance(observer, MinMaxObserver)
    observer.min_val, observer.max_val = torch.tensor(float(low)), torch.tensor(float(high))
    scale, zero = observer.calculate_qparams()
    return float(scale), int(zero)


def _quantized_conv(conv: nn.Conv2d, relu: bool, low: float, high: float) -> nn.Module:
    from torch.ao.nn.intrinsic.quantized import ConvReLU2d
    from torch.ao.nn.quantized import Conv2d

    observer = _qconfig_mapping().global_qconfig.weight()
    weight = conv.weight.detach().float()
    observer(weight)
    w_scale, w_zero = observer.calculate_qparams()
    qweight = torch.quantize_per_channel(weight, w_scale.to(torch.double), w_zero.to(torch.int64), 0, torch.qint8)
    kind = ConvReLU2d if relu else Conv2d
    out = kind(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
               dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
               padding_mode=conv.padding_mode)
    out.set_weight_bias(qweight, None if conv.bias is None else conv.bias.detach().float())
    out.scale, out.zero_point = _activation_qparams(low, high)
    return out


class _Int8Chain(nn.Module):
    def __init__(self, scale: float, zero: int, layers: list[nn.Module]) -> None:
        super().__init__()
        self.scale, self.zero = scale, zero
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.quantize_per_tensor(x, self.scale, self.zero, torch.quint8)).dequantize()


def quantize(net: nn.Module, ranges: list[list[float]], example: torch.Tensor | None = None) -> nn.Module:
    """An int8 copy of a chain of convs (each optionally followed by a ReLU) using stored
    activation ``ranges`` (see :func:`calibrate`): the modules FX's conversion makes, with
    the same scales and rounding (tested), built directly, without tracing the module, so a
    command's start-up does not pay FX's 1.5 s. Another shape of ``net`` goes through FX."""
    modules = list(net.children()) if isinstance(net, nn.Sequential) else None
    chain, i = [], 0
    while modules is not None and i < len(modules):
        conv = modules[i]
        relu = i + 1 < len(modules) and type(modules[i + 1]) is nn.ReLU
        if type(conv) is not nn.Conv2d:
            modules = None
            break
        chain.append((conv, relu))
        i += 2 if relu else 1
    if modules is None or not chain:
        if example is None:
            raise ValueError("int8 of this network needs an example input")
        return quantize_fx(net, ranges, example)
    _check_ranges(ranges, len(chain) + 1)
    torch.backends.quantized.engine = "x86"
    layers = [_quantized_conv(conv, relu, *ranges[k + 1]) for k, (conv, relu) in enumerate(chain)]
    return _Int8Chain(*_activation_qparams(*ranges[0]), layers).eval()


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
