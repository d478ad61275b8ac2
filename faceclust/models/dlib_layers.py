"""The readers of each dlib layer's details, by the version string that opens them
(``"con_4"``, ``"bn_con2"``, ``"fc_"``, ``"relu_"``, the MMOD loss...): one table entry per
layer kind, each a list of named fields. Used by :mod:`faceclust.models.dlib_format`."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from faceclust.models.dlib_format import (
    INPUT_READERS,
    LAYER_READERS,
    LOSS_READERS,
    DatReader,
    DetailReader,
)

_NO_PARAMS = np.zeros(0, dtype=np.float32)

# A field spec: (name, how to read it). The field named "params" becomes Layer.params.
Field = tuple[str, Callable[[DatReader, str], Any]]


def _int(r: DatReader, name: str) -> int:
    return r.int(name)


def _float(r: DatReader, name: str) -> float:
    return r.float(name)


def _bool(r: DatReader, name: str) -> bool:
    return r.bool(name)


def _alias(r: DatReader, name: str) -> tuple[int, int, int, int]:
    return r.alias(name)


def _tensor(r: DatReader, name: str) -> np.ndarray:
    return r.tensor(name).reshape(-1)


def _box_overlap(r: DatReader, name: str) -> dict[str, float]:
    return {"iou_thresh": r.float(f"{name}.iou_thresh"),
            "percent_covered_thresh": r.float(f"{name}.percent_covered_thresh")}


def _fields_reader(fields: tuple[Field, ...], defaults: dict[str, Any] | None = None,
                   views: tuple[str, ...] = ()) -> DetailReader:
    """A reader for a layer written as a fixed sequence of fields.

    ``views`` name the alias tensors that slice ``params``; their sizes must add up to it.
    """

    def read(r: DatReader, kind: str) -> tuple[dict[str, Any], np.ndarray]:
        start = r.pos
        details: dict[str, Any] = dict(defaults or {})
        params = _NO_PARAMS
        for name, read_field in fields:
            value = read_field(r, f"{kind}.{name}")
            if name == "params":
                params = value
            else:
                details[name] = value
        _check_views(r, kind, params, [details[v] for v in views], start)
        return details, params

    return read


def _check_views(r: DatReader, kind: str, params: np.ndarray,
                 shapes: list[tuple[int, ...]], start: int) -> None:
    if not shapes or params.size == 0:  # a disabled or never-trained layer stores no params
        return
    covered = sum(math.prod(shape) for shape in shapes)
    if covered != params.size:
        raise r.error(f"{kind} views {shapes} covering its {params.size} parameters "
                      f"(they cover {covered})", at=start)


def _register(table: dict[str, DetailReader], kinds: tuple[str, ...],
              reader: DetailReader) -> None:
    for kind in kinds:
        table[kind] = reader


_MULTIPLIERS: tuple[Field, ...] = (
    ("learning_rate_multiplier", _float), ("weight_decay_multiplier", _float),
    ("bias_learning_rate_multiplier", _float), ("bias_weight_decay_multiplier", _float))
_WINDOW: tuple[Field, ...] = (
    ("nr", _int), ("nc", _int), ("stride_y", _int), ("stride_x", _int),
    ("padding_y", _int), ("padding_x", _int))
_CON: tuple[Field, ...] = (
    ("params", _tensor), ("num_filters", _int), *_WINDOW, ("filters", _alias),
    ("biases", _alias), *_MULTIPLIERS)
_FC: tuple[Field, ...] = (
    ("num_outputs", _int), ("num_inputs", _int), ("params", _tensor), ("weights", _alias),
    ("biases", _alias), ("bias_mode", _int))
_AFFINE: tuple[Field, ...] = (
    ("params", _tensor), ("gamma", _alias), ("beta", _alias), ("mode", _int))
_BN: tuple[Field, ...] = (
    ("params", _tensor), ("gamma", _alias), ("beta", _alias), ("means", _tensor),
    ("invstds", _tensor), ("running_means", _tensor), ("running_variances", _tensor),
    ("num_updates", _int), ("running_stats_window_size", _int))
_USE_BIAS: tuple[Field, ...] = (("use_bias", _bool),)
_CONV_MODE, _FC_MODE = 0, 1  # dlib's layer_mode values

_register(LAYER_READERS, ("con_4",), _fields_reader(
    _CON, {"use_bias": True, "use_relu": False}, views=("filters", "biases")))
_register(LAYER_READERS, ("con_5",), _fields_reader(
    _CON + _USE_BIAS, {"use_relu": False}, views=("filters", "biases")))
_register(LAYER_READERS, ("con_6",), _fields_reader(
    _CON + _USE_BIAS + (("use_relu", _bool),), views=("filters", "biases")))
_register(LAYER_READERS, ("cont_1",), _fields_reader(
    _CON, {"use_bias": True}, views=("filters", "biases")))
_register(LAYER_READERS, ("cont_2",), _fields_reader(
    _CON + _USE_BIAS, views=("filters", "biases")))
_register(LAYER_READERS, ("fc_",), _fields_reader(_FC, {"use_bias": True},
                                                  views=("weights", "biases")))
_register(LAYER_READERS, ("fc_2",), _fields_reader(_FC + _MULTIPLIERS, {"use_bias": True},
                                                   views=("weights", "biases")))
_register(LAYER_READERS, ("fc_3",), _fields_reader(_FC + _MULTIPLIERS + _USE_BIAS,
                                                   views=("weights", "biases")))
_register(LAYER_READERS, ("affine_",), _fields_reader(_AFFINE, {"disabled": False},
                                                      views=("gamma", "beta")))
_register(LAYER_READERS, ("affine_2",), _fields_reader(_AFFINE + (("disabled", _bool),),
                                                       views=("gamma", "beta")))
_register(LAYER_READERS, ("bn_con2",), _fields_reader(
    _BN + _MULTIPLIERS + (("eps", _float),), {"mode": _CONV_MODE}, views=("gamma", "beta")))
_register(LAYER_READERS, ("bn_fc2",), _fields_reader(
    _BN + _MULTIPLIERS + (("eps", _float),), {"mode": _FC_MODE}, views=("gamma", "beta")))
_register(LAYER_READERS, ("bn_con",), _fields_reader(_BN, {"mode": _CONV_MODE},
                                                     views=("gamma", "beta")))
_register(LAYER_READERS, ("bn_fc",), _fields_reader(_BN, {"mode": _FC_MODE},
                                                    views=("gamma", "beta")))
# The oldest batch norm stored inverse standard deviations where later ones store variances.
_register(LAYER_READERS, ("bn_",), _fields_reader(
    tuple(("running_invstds", f) if n == "running_variances" else (n, f) for n, f in _BN)
    + (("mode", _int),), views=("gamma", "beta")))
_register(LAYER_READERS, ("layer_norm_",), _fields_reader(
    (("params", _tensor), ("gamma", _alias), ("beta", _alias), ("means", _tensor),
     ("invstds", _tensor), *_MULTIPLIERS, ("eps", _float)), views=("gamma", "beta")))
_register(LAYER_READERS, ("max_pool_2", "avg_pool_2"), _fields_reader(_WINDOW))
_register(LAYER_READERS, ("relu_",), _fields_reader((), {"disabled": False}))
_register(LAYER_READERS, ("relu_2",), _fields_reader((("disabled", _bool),)))
_register(LAYER_READERS, ("prelu_",), _fields_reader(
    (("params", _tensor), ("initial_param_value", _float))))
_register(LAYER_READERS, ("leaky_relu_", "elu_"), _fields_reader((("alpha", _float),)))
_register(LAYER_READERS, ("clipped_relu_",), _fields_reader((("ceiling", _float),)))
_register(LAYER_READERS, ("smelu_",), _fields_reader((("beta", _float),)))
_register(LAYER_READERS, ("l2normalize_",), _fields_reader((("eps", _float),)))
_register(LAYER_READERS, ("multiply_",), _fields_reader((("val", _float),)))
_register(LAYER_READERS, ("dropout_",), _fields_reader(
    (("drop_rate", _float), ("mask", _tensor))))
_register(LAYER_READERS, ("upsample_",), _fields_reader(
    (("scale_y", _int), ("scale_x", _int))))
_register(LAYER_READERS, ("resize_to_",), _fields_reader(
    (("nr", _int), ("nc", _int), ("scale_y", _float), ("scale_x", _float))))
_register(LAYER_READERS, ("extract_",), _fields_reader(
    (("offset", _int), ("k", _int), ("nr", _int), ("nc", _int))))
_register(LAYER_READERS, ("reorg_",), _fields_reader(
    (("row_stride", _int), ("col_stride", _int))))
_register(LAYER_READERS, ("concat_",), _fields_reader((("num_tags", _int),)))
_register(LAYER_READERS, ("scale_", "scale_prev_"), _fields_reader(
    (("reshape_scales", _alias), ("reshape_src", _alias))))
_register(LAYER_READERS, (
    "add_prev_", "mult_prev_", "resize_prev_to_tagged_", "sig_", "htan_", "mish_", "gelu_",
    "silu_", "softmax_", "softmax_all_"), _fields_reader(()))

_AVG_RGB: tuple[Field, ...] = (("avg_red", _float), ("avg_green", _float), ("avg_blue", _float))
_register(INPUT_READERS, ("input_rgb_image",), _fields_reader(_AVG_RGB))
_register(INPUT_READERS, ("input_rgb_image_sized",), _fields_reader(
    _AVG_RGB + (("nr", _int), ("nc", _int))))
_register(INPUT_READERS, ("input_rgb_image_pyramid",), _fields_reader(
    _AVG_RGB, {"pyramid_padding": 10, "pyramid_outer_padding": 11}))
_register(INPUT_READERS, ("input_rgb_image_pyramid2",), _fields_reader(
    _AVG_RGB + (("pyramid_padding", _int), ("pyramid_outer_padding", _int))))

# loss_metric_ predates the stored options; dlib fills in the values it used to hard-code.
_register(LOSS_READERS, ("loss_metric_",), _fields_reader((), {"margin": 0.1,
                                                               "dist_thresh": 0.75}))
_register(LOSS_READERS, ("loss_metric_2",), _fields_reader(
    (("margin", _float), ("dist_thresh", _float))))


def _read_detector_window(r: DatReader) -> dict[str, Any]:
    start = r.pos
    version = r.int("the version of an mmod detector window")
    if version not in (1, 2):
        raise r.error(f"mmod detector window version 1 or 2 (found {version})", at=start)
    window = {"width": r.uint("detector window width"),
              "height": r.uint("detector window height"), "label": ""}
    if version == 2:
        window["label"] = r.string("detector window label")
    return window


def _read_mmod_options(r: DatReader, kind: str) -> tuple[dict[str, Any], np.ndarray]:
    start = r.pos
    version = r.int("the version of mmod_options")
    if not 1 <= version <= 4:
        raise r.error(f"mmod_options version 1 to 4 (found {version})", at=start)
    if version == 1:
        windows = [{"width": r.uint("detector width"), "height": r.uint("detector height"),
                    "label": ""}]
    else:
        windows = [_read_detector_window(r) for _ in range(r.uint("detector window count"))]
    details: dict[str, Any] = {
        "options_version": version,
        "detector_windows": windows,
        "loss_per_false_alarm": r.float("loss_per_false_alarm"),
        "loss_per_missed_target": r.float("loss_per_missed_target"),
        "truth_match_iou_threshold": r.float("truth_match_iou_threshold"),
        "overlaps_nms": _box_overlap(r, "overlaps_nms"),
        "overlaps_ignore": _box_overlap(r, "overlaps_ignore"),
        "assume_image_pyramid": True,
        "use_bounding_box_regression": False,
    }
    if version >= 3:
        details["assume_image_pyramid"] = bool(r.byte("assume_image_pyramid"))
    if version >= 4:
        details["use_bounding_box_regression"] = r.bool("use_bounding_box_regression")
        details["bbr_lambda"] = r.float("bbr_lambda")
    return details, _NO_PARAMS


_register(LOSS_READERS, ("loss_mmod_",), _read_mmod_options)


