"""The torch rebuild of dlib's face-recognition ResNet against dlib itself, and the .dat
reader on intact and damaged files.

Chips are real faces aligned by dlib (HOG detector, 5-point landmarks, get_face_chip) from
the first photo of the first identities of lfw_dev and celeba_train, plus scikit-image's
astronaut; they are built once per module.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from faceclust.errors import ModelFormatError
from faceclust.models.dlib_format import DatReader, read_network
from faceclust.models.files import DETECTOR_FILE, EMBEDDER_FILE, LANDMARKS_FILE, model_path
from faceclust.models.resnet import DESCRIPTOR_DIM, load_resnet, normalize_chips

pytestmark = pytest.mark.models

IDENTITIES_PER_SET = 24
MIN_CHIPS = 40
PARITY_TOLERANCE = 1e-4


def _first_photos(root: Path, count: int) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())[:count]
    return [sorted(folder.glob("*.jpg"))[0] for folder in folders]


def _largest_face_chip(dlib, detector, predictor, image: np.ndarray) -> np.ndarray | None:
    # Upsampling only when needed keeps the large celeba photos fast.
    faces = detector(image, 0) or detector(image, 1)
    if not faces:
        return None
    face = max(faces, key=lambda rect: rect.area())
    return dlib.get_face_chip(image, predictor(image, face), size=150, padding=0.25)


@pytest.fixture(scope="module")
def chips(shared_data: Path, dlib_module) -> np.ndarray:
    from PIL import Image
    from skimage.data import astronaut

    detector = dlib_module.get_frontal_face_detector()
    predictor = dlib_module.shape_predictor(str(model_path(LANDMARKS_FILE)))
    photos = [photo for name in ("lfw_dev", "celeba_train")
              for photo in _first_photos(shared_data / name, IDENTITIES_PER_SET)]
    images = [np.asarray(Image.open(photo).convert("RGB")) for photo in photos]
    images.append(astronaut())
    found = (_largest_face_chip(dlib_module, detector, predictor, image) for image in images)
    return np.stack([chip for chip in found if chip is not None])


@pytest.fixture(scope="module")
def dlib_descriptors(chips: np.ndarray, dlib_module) -> np.ndarray:
    reference = dlib_module.face_recognition_model_v1(str(model_path(EMBEDDER_FILE)))
    return np.array([np.array(d) for d in reference.compute_face_descriptor(list(chips))])


@pytest.fixture(scope="module")
def resnet():
    return load_resnet()


@pytest.fixture(scope="module")
def embedder_bytes() -> bytes:
    return model_path(EMBEDDER_FILE).read_bytes()


def test_descriptors_match_dlib_on_real_chips(resnet, chips, dlib_descriptors, record_property):
    ours = resnet.embed(chips)
    max_abs_diff = float(np.abs(ours.astype(np.float64) - dlib_descriptors).max())
    record_property("max_abs_diff", max_abs_diff)
    record_property("chips", len(chips))
    print(f"max abs difference to dlib over {len(chips)} chips: {max_abs_diff:.3g}")
    assert len(chips) >= MIN_CHIPS
    assert max_abs_diff <= PARITY_TOLERANCE


def test_batch_size_does_not_change_descriptors(resnet, chips):
    whole = resnet.embed(chips, batch_size=len(chips))
    for batch_size in (1, 7):
        np.testing.assert_allclose(resnet.embed(chips, batch_size=batch_size), whole,
                                   rtol=0, atol=1e-5)


def test_random_batch_gives_finite_float32_descriptors(resnet):
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 150, 150, 3), dtype=np.uint8)
    out = resnet(normalize_chips(pixels, resnet.mean_rgb))
    assert out.shape == (5, DESCRIPTOR_DIM)
    assert out.dtype == torch.float32
    assert bool(out.isfinite().all())


def test_normalize_chips_follows_dlibs_formula():
    pixels = np.random.default_rng(1).integers(0, 256, size=(2, 150, 150, 3), dtype=np.uint8)
    mean = (122.782, 117.001, 104.298)
    expected = np.empty((2, 3, 150, 150), dtype=np.float32)
    for channel in range(3):
        expected[:, channel] = (pixels[..., channel] - np.float32(mean[channel])) / 256.0
    np.testing.assert_array_equal(normalize_chips(pixels, mean).numpy(), expected)


@pytest.mark.parametrize("bad", [np.zeros((1, 150, 150, 3), np.float32),
                                 np.zeros((1, 112, 112, 3), np.uint8),
                                 np.zeros((150, 150, 3), np.uint8)])
def test_normalize_chips_rejects_other_inputs(bad):
    with pytest.raises(ValueError, match="150"):
        normalize_chips(bad)


@pytest.mark.parametrize("encoded, method, value", [
    (b"\x01\x00", "int", 0), (b"\x81\x05", "int", -5), (b"\x02\x00\x01", "int", 256),
    (b"\x01\x10\x81\x04", "float", 1.0), (b"\x01\x03\x01\x00", "float", 3.0),
    (b"\x01\x01\x02\x00\x7d", "float", float("inf")), (b"1.5 ", "float", 1.5),
    (b"\x01\x03abc", "string", "abc"), (b"1", "bool", True), (b"0", "bool", False)])
def test_primitives_follow_dlibs_encoding(encoded, method, value):
    reader = DatReader(encoded)
    assert getattr(reader, method)() == value
    assert reader.remaining == 0


@pytest.mark.parametrize("encoded, method", [(b"\x09" + bytes(9), "int"), (b"\x81\x01", "uint"),
                                             (b"x", "bool"), (b"\x01\x05ab", "string")])
def test_malformed_primitives_raise(encoded, method):
    with pytest.raises(ModelFormatError, match="at byte"):
        getattr(DatReader(encoded), method)()


def test_both_models_parse_to_the_last_byte():
    embedder = read_network(model_path(EMBEDDER_FILE))
    assert (embedder.loss.kind, embedder.input.kind) == ("loss_metric_2", "input_rgb_image_sized")
    assert sum(layer.kind == "con_4" for layer in embedder.layers) == 29
    assert embedder.layers[-1].kind == "fc_2"
    detector = read_network(model_path(DETECTOR_FILE))
    assert (detector.loss.kind, detector.input.kind) == ("loss_mmod_", "input_rgb_image_pyramid")
    windows = detector.loss.details["detector_windows"]
    assert [(w["width"], w["height"]) for w in windows] == [(80, 80)]
    for layer in embedder.layers + detector.layers:
        assert layer.params.dtype == np.float32 and layer.params.ndim == 1


@pytest.mark.parametrize("keep", [0, 1, 40, 300, 5_000_000, -1])
def test_truncated_file_raises_naming_the_file(tmp_path, embedder_bytes, keep):
    path = tmp_path / "truncated.dat"
    path.write_bytes(embedder_bytes[:keep % len(embedder_bytes)])
    with pytest.raises(ModelFormatError, match=re.escape(str(path))):
        read_network(path)


def test_trailing_bytes_raise(tmp_path, embedder_bytes):
    path = tmp_path / "longer.dat"
    path.write_bytes(embedder_bytes + b"\x00")
    with pytest.raises(ModelFormatError, match="1 more bytes"):
        read_network(path)


@pytest.mark.parametrize("known, unknown", [(b"con_4", b"con_9"), (b"relu_", b"relv_"),
                                            (b"loss_metric_2", b"loss_metric_9"),
                                            (b"input_rgb_image_sized", b"input_rgb_image_sizex")])
def test_unknown_version_string_raises(tmp_path, embedder_bytes, known, unknown):
    path = tmp_path / "unknown.dat"
    path.write_bytes(embedder_bytes.replace(known, unknown, 1))
    with pytest.raises(ModelFormatError, match=re.escape(repr(unknown.decode()))):
        read_network(path)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_raise(tmp_path, seed):
    path = tmp_path / "random.dat"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    with pytest.raises(ModelFormatError, match=re.escape(str(path))):
        read_network(path)


def test_resnet_refuses_another_network():
    with pytest.raises(ModelFormatError, match="not dlib's face-recognition ResNet"):
        load_resnet(model_path(DETECTOR_FILE))
