"""dlib's 128-D face-recognition ResNet rebuilt in torch from its ``.dat`` file.

The topology is the one ``dnn_face_recognition_ex.cpp`` defines (the file stores no tag
ids): a 7x7/2 conv stem with a 3x3/2 max pool, then 14 residual blocks in five levels, a
global average pool and a 256 -> 128 fully connected layer. Every layer's shape, stride
and padding come from the file and are checked against that definition.

Semantics that differ from a textbook ResNet and that dlib's numbers depend on:

* stride-2 convs and pools are unpadded (dlib pads ``k/2`` only at stride 1);
* a downsampling block adds a 2x2/2 average pool of its input to its branch, zero-padding
  both at the end (extra channels, bottom rows, right columns) to the larger shape; in the
  last two levels the pooled input is spatially larger than the branch;
* the descriptor is not L2-normalised; dlib's 0.6 same-person threshold applies to it raw.

Each conv absorbs the per-channel affine that follows it (``scale * (W*x + b) + shift``),
which changes results only by float rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from faceclust.errors import ModelFormatError
from faceclust.models.dlib_format import Layer, Network, read_network
from faceclust.models.files import EMBEDDER_FILE, model_path

CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)

# Levels from input to output (alevel4 ... alevel0 in dnn_face_recognition_ex.cpp):
# (channels, residual blocks, whether the first block downsamples).
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
_CONV_KINDS = ("con_4", "con_5", "con_6")
_AFFINE_KINDS = ("affine_", "affine_2", "bn_con2")
_RELU_KINDS = ("relu_", "relu_2")
_CONV_MODE = 0


class _Layers:
    """Walks the parsed layers in order, checking each against what the topology expects."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.index = 0

    def take(self, kinds: tuple[str, ...], role: str) -> Layer:
        layers = self.network.layers
        found = layers[self.index].kind if self.index < len(layers) else "the end of the network"
        if found not in kinds:
            raise self.mismatch(f"{role} ({' or '.join(kinds)}) as layer {self.index}, "
                                f"found {found}")
        self.index += 1
        return layers[self.index - 1]

    def mismatch(self, what: str) -> ModelFormatError:
        return ModelFormatError(
            f"{self.network.path} is not dlib's face-recognition ResNet: expected {what}; "
            "use dlib_face_recognition_resnet_model_v1.dat from face_recognition_models")

    def finish(self) -> None:
        if self.index != len(self.network.layers):
            raise self.mismatch(f"{self.index} layers, found {len(self.network.layers)}")


def _scale_shift(layer: Layer, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel ``y = scale * x + shift`` of an affine or batch-norm layer."""
    details = layer.details
    if details.get("disabled"):
        return np.ones(channels), np.zeros(channels)
    gamma = layer.params[:channels].astype(np.float64)
    beta = layer.params[channels:2 * channels].astype(np.float64)
    if layer.kind.startswith("bn_"):
        variance = details["running_variances"].astype(np.float64)
        scale = gamma / np.sqrt(variance + details["eps"])
        return scale, beta - scale * details["running_means"].astype(np.float64)
    return gamma, beta


def _folded_conv(layers: _Layers, stride: int, out_channels: int) -> nn.Conv2d:
    """A conv layer and the affine after it, as one torch conv."""
    con = layers.take(_CONV_KINDS, "a conv")
    d = con.details
    out, cin, kh, kw = d["filters"]
    if (out, d["stride_y"], d["stride_x"]) != (out_channels, stride, stride) or d.get("use_relu"):
        raise layers.mismatch(f"a {out_channels}-filter conv of stride {stride}, found "
                              f"{out} filters of stride {d['stride_y']}x{d['stride_x']}")
    affine = layers.take(_AFFINE_KINDS, "the affine after a conv")
    if affine.details.get("mode", _CONV_MODE) != _CONV_MODE:
        raise layers.mismatch("a per-channel (conv mode) affine")
    weight = con.params[:out * cin * kh * kw].reshape(out, cin, kh, kw).astype(np.float64)
    bias = con.params[out * cin * kh * kw:].astype(np.float64) if d["use_bias"] else 0.0
    scale, shift = _scale_shift(affine, out)
    conv = nn.Conv2d(cin, out, (kh, kw), stride=stride, padding=(d["padding_y"], d["padding_x"]))
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight * scale[:, None, None, None]))
        conv.bias.copy_(torch.from_numpy(bias * scale + shift))
    return conv


def _pool(layers: _Layers, kind: str, size: int, stride: int) -> dict[str, int]:
    """The window of a pool layer, checked; ``size`` 0 is dlib's global pool."""
    d = layers.take((kind,), f"a {size}x{size}/{stride} pool").details
    if (d["nr"], d["nc"], d["stride_y"], d["stride_x"]) != (size, size, stride, stride):
        raise layers.mismatch(f"a {size}x{size}/{stride} {kind}, found {d}")
    return {"kernel_size": size, "stride": stride, "padding": d["padding_y"]}


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add of differently shaped tensors: both zero-padded at the end to the larger."""
    if a.shape == b.shape:
        return a.add_(b)
    shape = [max(s, t) for s, t in zip(a.shape, b.shape)]
    out = a.new_zeros(shape).contiguous(memory_format=torch.channels_last)
    for part in (a, b):
        out[:, :part.shape[1], :part.shape[2], :part.shape[3]] += part
    return out


class _ResidualBlock(nn.Module):
    """relu(block(x) + x), or with a 2x2/2 average pool of x when the block downsamples."""

    def __init__(self, layers: _Layers, channels: int, downsample: bool) -> None:
        super().__init__()
        self.conv1 = _folded_conv(layers, 2 if downsample else 1, channels)
        layers.take(_RELU_KINDS, "a relu inside a residual block")
        self.conv2 = _folded_conv(layers, 1, channels)
        self.pool = None
        if downsample:
            window = _pool(layers, "avg_pool_2", 2, 2)
            self.pool = nn.AvgPool2d(**window, count_include_pad=False)
        layers.take(("add_prev_",), "the residual add")
        layers.take(_RELU_KINDS, "the relu after a residual add")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv2(torch.relu_(self.conv1(x)))
        shortcut = x if self.pool is None else self.pool(x)
        return torch.relu_(_add_zero_padded(branch, shortcut))


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet: normalised (N, 3, 150, 150) chips -> (N, 128).

    The output is dlib's raw descriptor, not L2-normalised. Build it with
    :func:`load_resnet`; feed it :func:`normalize_chips` output or use :meth:`embed`.
    """

    def __init__(self, network: Network) -> None:
        super().__init__()
        _check_ends(network)
        avg = network.input.details
        self.mean_rgb = (avg["avg_red"], avg["avg_green"], avg["avg_blue"])
        layers = _Layers(network)
        self.stem = _folded_conv(layers, 2, _LEVELS[0][0])
        layers.take(_RELU_KINDS, "the relu of the stem")
        self.stem_pool = nn.MaxPool2d(**_pool(layers, "max_pool_2", 3, 2))
        self.blocks = nn.Sequential(*(
            _ResidualBlock(layers, channels, downsample and i == 0)
            for channels, count, downsample in _LEVELS for i in range(count)))
        _pool(layers, "avg_pool_2", 0, 1)
        self.fc = _linear(layers)
        layers.finish()
        # Set for fine-tuned weights (trained on L2-normalised descriptors): the output is
        # normalised and scaled to this length, the base model's mean descriptor length, so
        # raw-distance thresholds keep dlib's scale. None: dlib's raw descriptor.
        self.output_norm: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem_pool(torch.relu_(self.stem(x)))
        x = self.blocks(x)
        x = self.fc(x.mean(dim=(2, 3)))
        if self.output_norm is not None:
            x = torch.nn.functional.normalize(x, dim=1) * self.output_norm
        return x

    @torch.inference_mode()
    def embed(self, chips: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Descriptors of uint8 RGB chips ``(N, 150, 150, 3)`` as a float32 ``(N, 128)`` array."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.zeros((len(chips), DESCRIPTOR_DIM), dtype=np.float32)
        for start in range(0, len(chips), batch_size):
            batch = normalize_chips(chips[start:start + batch_size], self.mean_rgb)
            out[start:start + len(batch)] = self(batch).numpy()
        return out


def _check_ends(network: Network) -> None:
    details = network.input.details
    size = (details.get("nr"), details.get("nc"))
    if network.input.kind != "input_rgb_image_sized" or size != (CHIP_SIZE, CHIP_SIZE):
        raise _Layers(network).mismatch(f"a {CHIP_SIZE}x{CHIP_SIZE} RGB input, found "
                                        f"{network.input.kind} {size}")
    if not network.loss.kind.startswith("loss_metric_"):
        raise _Layers(network).mismatch(f"a metric loss, found {network.loss.kind}")


def _linear(layers: _Layers) -> nn.Linear:
    """dlib's fc layer; it stores W as (inputs, outputs), torch wants the transpose."""
    fc = layers.take(("fc_", "fc_2", "fc_3"), "the final fc layer")
    d = fc.details
    n_in, n_out = d["num_inputs"], d["num_outputs"]
    if (n_in, n_out) != (_LEVELS[-1][0], DESCRIPTOR_DIM):
        raise layers.mismatch(f"a {_LEVELS[-1][0]} -> {DESCRIPTOR_DIM} fc, found {n_in} -> {n_out}")
    has_bias = d["bias_mode"] == 0 and d["use_bias"]
    linear = nn.Linear(n_in, n_out, bias=has_bias)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(fc.params[:n_in * n_out].reshape(n_in, n_out).T))
        if has_bias:
            linear.bias.copy_(torch.from_numpy(fc.params[n_in * n_out:]))
    return linear


def normalize_chips(chips: np.ndarray,
                    mean_rgb: tuple[float, float, float] = DLIB_MEAN_RGB) -> torch.Tensor:
    """uint8 RGB chips ``(N, 150, 150, 3)`` -> float32 ``(N, 3, 150, 150)`` as dlib feeds them.

    dlib subtracts the training set's mean colour and divides by 256 (not 255). The result
    is an NCHW view of NHWC memory, i.e. already in torch's channels_last layout.
    """
    chips = np.asarray(chips)
    if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"expected uint8 chips of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), "
                         f"got {chips.dtype} {chips.shape}")
    pixels = torch.from_numpy(np.ascontiguousarray(chips)).to(torch.float32)
    mean = torch.tensor(mean_rgb, dtype=torch.float32)
    return ((pixels - mean) * (1.0 / 256.0)).permute(0, 3, 1, 2)


def load_resnet(path: Path | str | None = None, checkpoint=None) -> DlibResNet:
    """The embedder in eval mode, weights read from the ``.dat`` file (never downloaded).

    ``checkpoint`` (a path or a loaded :class:`~faceclust.models.checkpoint.Checkpoint`) replaces
    the weights with fine-tuned ones written by ``faceclust train``.
    """
    network = read_network(model_path(EMBEDDER_FILE) if path is None else path)
    model = DlibResNet(network).eval()
    if checkpoint is not None:
        apply_checkpoint(model, checkpoint)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.to(memory_format=torch.channels_last)


def apply_checkpoint(model: DlibResNet, checkpoint) -> None:
    """Load fine-tuned weights into ``model``; a checkpoint of another shape raises ModelFormatError."""
    from faceclust.models.checkpoint import ARCHITECTURE, Checkpoint, load_checkpoint

    source = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    where = "the checkpoint" if isinstance(checkpoint, Checkpoint) else str(checkpoint)
    if source.architecture != ARCHITECTURE:
        raise ModelFormatError(f"{where} holds a {source.architecture!r} model, not {ARCHITECTURE!r}")
    try:
        model.load_state_dict(source.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFormatError(f"{where} does not fit dlib's face-recognition ResNet: {first}") from exc
    norm = source.meta.get("output_norm")
    model.output_norm = float(norm) if norm else None
