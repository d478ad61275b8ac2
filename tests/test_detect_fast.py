"""The detector's fast defaults: int8 conv stack, plain enlargement, two-pass search.

The exact mode (fp32, dlib's enlargement, one pass) is held to dlib's own rectangles in
``test_model_mmod.py``; here the fast modes are held to the exact one, and the two-pass rule
is checked on photos built from scikit-image's astronaut.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceclust.errors import ModelFormatError, UnsupportedPrecision
from faceclust.faces.detect import DetectOptions, detectors
from faceclust.models import int8_ranges, quantize
from faceclust.models.mmod import MMODDetector

needs_int8 = pytest.mark.skipif(not quantize.int8_supported(), reason="this torch has no x86 int8 backend")


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def pairs(reference, found, threshold=0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matches of boxes at IoU >= threshold."""
    out, used = [], set()
    for i, a in enumerate(reference):
        scored = [(iou(a, b), j) for j, b in enumerate(found) if j not in used]
        best = max(scored, default=(0.0, -1))
        if best[0] >= threshold:
            out.append((i, best[1]))
            used.add(best[1])
    return out


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()


def shrunk(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(w * factor), round(h * factor)),
                                                    Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def small_astronaut(astronaut) -> np.ndarray:
    """The astronaut shrunk until her face is about 50 px: findable only by enlarging."""
    exact = MMODDetector()
    boxes, _ = exact.detect(astronaut)
    width = boxes[0, 2] - boxes[0, 0] + 1
    image = shrunk(astronaut, 50 / width)
    assert len(exact.detect(image)[1]) == 0  # not at its own size
    return image


@needs_int8
def test_two_pass_enlarges_only_photos_where_nothing_was_found(astronaut, small_astronaut):
    big_and_small = np.zeros((astronaut.shape[0], astronaut.shape[1] + small_astronaut.shape[1], 3), np.uint8)
    big_and_small[:, :astronaut.shape[1]] = astronaut
    big_and_small[:small_astronaut.shape[0], astronaut.shape[1]:] = small_astronaut
    two_pass = detectors.create("mmod", options=DetectOptions())
    thorough = detectors.create("mmod", options=DetectOptions(thorough=True))

    assert len(two_pass.detect(small_astronaut, scale=1.0)) == 0  # int8 at its own size: nothing
    alone = two_pass.detect(small_astronaut, scale=2.0)
    assert len(alone) == 1 and alone.boxes[0, 2] - alone.boxes[0, 0] < 80  # so it was enlarged

    default = two_pass.detect(big_and_small, scale=2.0)
    everything = thorough.detect(big_and_small, scale=2.0)
    assert len(default) == 1 and default.boxes[0, 2] <= astronaut.shape[1]  # the big face only
    assert len(everything) == 2
    small = everything.boxes[everything.boxes[:, 0] >= astronaut.shape[1]]
    assert len(small) == 1 and 40 <= small[0, 2] - small[0, 0] < 80


@needs_int8
def test_int8_finds_the_faces_exact_fp32_finds(shared_data):
    """On real photos (celeba, which the int8 ranges were not measured on), enlarged as a
    scan enlarges them: every photo keeps its faces or its lack of them, and the faces match."""
    photos = sorted(p for p in (shared_data / "celeba_train").rglob("*.jpg"))[::97][:30]
    exact, fast = MMODDetector(), MMODDetector(precision="int8", dlib_resize=False)
    reference_faces = matched = 0
    for path in photos:
        image = np.asarray(Image.open(path).convert("RGB"))
        ref_boxes, ref_scores = exact.detect(image, scale=2.0)
        boxes, scores = fast.detect(image, scale=2.0)
        assert (len(ref_scores) > 0) == (len(scores) > 0), path.name
        found = pairs(ref_boxes, boxes)
        reference_faces += len(ref_boxes)
        matched += len(found)
        for i, j in found:
            assert abs(ref_scores[i] - scores[j]) < 0.5, path.name
    assert matched >= 0.95 * reference_faces


def test_bf16_scores_follow_fp32(astronaut):
    if not quantize.bf16_supported():
        pytest.skip("this CPU has no native bfloat16")
    exact, half = MMODDetector(), MMODDetector(precision="bf16")
    pyramid = exact.pyramid(astronaut)
    reference = exact.score_map(pyramid)
    assert np.abs(half.score_map(pyramid) - reference).max() < 0.1
    ours, theirs = half.detect(astronaut)[0], exact.detect(astronaut)[0]
    assert len(ours) == len(theirs) and np.abs(ours - theirs).max() <= 2


def test_calibrated_int8_net_follows_fp32():
    if not quantize.int8_supported():
        pytest.skip("this torch has no x86 int8 backend")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 1, 3)).eval()
    inputs = [torch.rand(1, 3, 24, 24) for _ in range(4)]
    ranges = quantize.calibrate(net, inputs)
    assert len(ranges) == 4  # the input, two conv+relu outputs and the last conv's output
    assert ranges[1][0] == 0.0 and ranges[1][1] > 0
    q = quantize.quantize(net, ranges, inputs[0])
    with torch.no_grad():
        for x in inputs:
            reference = net(x)
            assert torch.abs(q(x) - reference).max() < 0.05 * reference.abs().max()
    with pytest.raises(ModelFormatError, match="cover 2 activations"):
        quantize.quantize(net, ranges[:2], inputs[0])


@needs_int8
def test_direct_int8_build_is_fx_conversion_bit_for_bit():
    """quantize() builds the int8 modules without FX's tracing (1.5 s of every start-up): the
    detector's conv stack and a small chain ending without a ReLU give FX's output exactly."""
    from faceclust.models.dlib_format import read_network
    from faceclust.models.files import DETECTOR_FILE, file_sha256, model_path
    from faceclust.models.mmod import MMODNet

    path = model_path(DETECTOR_FILE)
    body = MMODNet(read_network(path).layers).eval().to(memory_format=torch.channels_last).body
    ranges = int8_ranges.load_ranges(file_sha256(path), "mmod")
    torch.manual_seed(1)
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 4, 3, stride=2)).eval()
    small_inputs = [torch.rand(1, 3, 20, 20)]
    cases = [(body, ranges, torch.rand(1, 3, 200, 260) * 1.2 - 0.5),
             (small, quantize.calibrate(small, small_inputs), small_inputs[0])]
    for net, stored, x in cases:
        x = x.contiguous(memory_format=torch.channels_last)
        direct, traced = quantize.quantize(net, stored), quantize.quantize_fx(net, stored, x)
        assert not isinstance(direct, torch.fx.GraphModule)
        with torch.no_grad():
            ours, theirs = direct(x), traced(x)
        assert ours.shape == theirs.shape and torch.equal(ours, theirs)
        assert ours.abs().max() > 0  # not a chain of zeros
    with pytest.raises(ModelFormatError, match="cover 2 activations"):
        quantize.quantize(small, ranges[:2])


def test_ranges_are_found_by_the_model_files_hash(tmp_path, monkeypatch):
    stored = tmp_path / "ranges.json"
    stored.write_text(json.dumps({"mmod": {"model_sha256": "0" * 64, "source": "test", "ranges": [[0, 1]]}}))
    monkeypatch.setattr(int8_ranges, "RANGES_FILE", stored)
    assert int8_ranges.load_ranges("1" * 64, "mmod") is None
    assert int8_ranges.load_ranges("0" * 64, "mmod") == [[0, 1]]
    assert int8_ranges.ranges_digest("1" * 64, "mmod") is None
    digest = int8_ranges.ranges_digest("0" * 64, "mmod")
    stored.write_text(json.dumps({"mmod": {"model_sha256": "0" * 64, "source": "test", "ranges": [[0, 2]]}}))
    assert int8_ranges.ranges_digest("0" * 64, "mmod") not in (None, digest)


@needs_int8
def test_without_ranges_for_the_model_int8_is_refused_and_auto_is_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(int8_ranges, "RANGES_FILE", tmp_path / "none.json")
    with pytest.raises(UnsupportedPrecision, match="no int8 activation ranges"):
        MMODDetector(precision="int8")
    with pytest.raises(UnsupportedPrecision, match="use precision auto or fp32"):
        detectors.create("mmod", options=DetectOptions(precision="int8"))  # before any photo
    auto = detectors.create("mmod")
    assert auto.precision() == "fp32" and "(ranges none)" in auto.identity()


def test_auto_falls_back_to_fp32_when_int8_fails(monkeypatch, astronaut):
    import faceclust.faces.detect as detect_module
    from faceclust.models import mmod

    built = []

    class Failing(mmod.MMODDetector):
        def __init__(self, *args, precision="fp32", **kwargs):
            built.append(precision)
            if precision == "int8":
                raise RuntimeError("quantization failed")
            super().__init__(*args, precision=precision, **kwargs)

    monkeypatch.setattr(detect_module, "_fastest_precision", lambda: "int8")
    monkeypatch.setattr(mmod, "MMODDetector", Failing)
    detector = detectors.create("mmod")
    assert len(detector.detect(astronaut)) == 1
    assert built == ["int8", "fp32"] and detector.precision() == "fp32"
    monkeypatch.setattr(detect_module.MMODFaceDetector, "_check_asked_precision", staticmethod(lambda p: None))
    asked = detectors.create("mmod", options=DetectOptions(precision="int8"))
    with pytest.raises(RuntimeError, match="quantization failed"):  # asked for, not silently replaced
        asked.detect(astronaut)


def test_detection_identity_names_precision_and_search():
    """A catalog scanned one way is detected again when scanned another way."""
    identities = {
        detectors.create("mmod", options=DetectOptions(**options)).identity()
        for options in ({}, {"thorough": True}, {"exact": True}, {"precision": "fp32"})}
    assert len(identities) == 4
    assert detectors.create("mmod", options=DetectOptions(exact=True)).identity().endswith(";fp32;exact")
    assert ";auto(ranges " in detectors.create("mmod").identity()
    assert detectors.create("mmod").identity().endswith(";two-pass")


@needs_int8
def test_auto_is_int8_on_a_cpu_with_vnni():
    assert detectors.create("mmod").precision() == "int8"


def test_scan_options_from_the_cli_flags():
    from faceclust.cli.scan import _scan_options

    default = _scan_options(detector=None, min_face=None, thorough=None, exact=None, precision=None)
    assert default.detect == DetectOptions()
    chosen = _scan_options(thorough=True, exact=None, precision="fp32", min_face=30)
    assert chosen.detect == DetectOptions(thorough=True, precision="fp32", min_face=30)
    with pytest.raises(ValueError, match="precision"):
        DetectOptions(precision="fp16")
    with pytest.raises(ValueError, match="exact detection is fp32"):
        DetectOptions(exact=True, precision="int8")


def test_cli_offers_every_precision():
    from faceclust.cli.scan import scan
    from faceclust.faces.detect import PRECISION_CHOICES

    (option,) = [p for p in scan.params if p.name == "precision"]
    assert tuple(option.type.choices) == PRECISION_CHOICES


def test_cli_takes_the_detection_flags(tmp_path):
    import sqlite3

    from click.testing import CliRunner

    from faceclust.cli import main

    photo = tmp_path / "photos" / "a.png"
    photo.parent.mkdir()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(photo)
    catalog = tmp_path / "c.sqlite"
    runner = CliRunner()
    result = runner.invoke(main, ["scan", str(photo.parent), "--catalog", str(catalog), "--detector", "fake",
                                  "--thorough", "--precision", "fp32", "--quiet", "--no-index"])
    assert result.exit_code == 0, result.output
    (options,) = sqlite3.connect(catalog).execute("SELECT options FROM runs").fetchone()
    detect = json.loads(options)["detect"]
    assert detect["thorough"] is True and detect["precision"] == "fp32" and detect["exact"] is False
    refused = runner.invoke(main, ["scan", str(photo.parent), "--catalog", str(catalog), "--exact",
                                   "--precision", "int8"])
    assert refused.exit_code == 2 and "exact detection is fp32" in refused.output


def test_stored_ranges_belong_to_the_shipped_detector():
    from faceclust.models.files import DETECTOR_FILE, file_sha256, model_path

    entry = json.loads(Path(int8_ranges.RANGES_FILE).read_text())["mmod"]
    assert entry["model_sha256"] == file_sha256(model_path(DETECTOR_FILE))
    assert all(low <= high for low, high in entry["ranges"])


@pytest.mark.parametrize("detector", ["yunet", "hog"])
def test_mmod_options_with_another_detector_are_refused_not_ignored(tmp_path, detector):
    from click.testing import CliRunner

    from faceclust.cli import main

    for options in ({"precision": "fp32"}, {"thorough": True}, {"exact": True}):
        with pytest.raises(ValueError, match=f"{next(iter(options))} is an option of the mmod detector"):
            detectors.create(detector, options=DetectOptions(detector=detector, **options))
    detectors.create(detector, options=DetectOptions(detector=detector))  # its own options are fine
    photo = tmp_path / "photos" / "a.png"
    photo.parent.mkdir()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(photo)
    result = CliRunner().invoke(main, ["scan", str(photo.parent), "--catalog", str(tmp_path / "c.sqlite"),
                                       "--detector", detector, "--thorough", "--quiet"])
    assert result.exit_code == 2 and "--thorough is an option of the mmod detector" in result.output
    assert "Traceback" not in result.output
