"""Bringing a decoded photo to the size faces are found at: torch's resize (what every path
that finds faces uses), left for later while torch loads, and Pillow's (thumbnails)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import draw_photo
from faceclust.photos.decode import (WorkingSize, at_working_size, decode_image, max_side_policy,
                                     resize_pixels)


def _noise_photo(size=(1000, 750)) -> np.ndarray:
    rng = np.random.default_rng(4)
    smooth = rng.integers(0, 256, (size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(smooth).resize(size, Image.Resampling.BICUBIC))
    return np.clip(base.astype(int) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)


def test_torchs_resize_is_pillows_within_a_few_levels():
    pixels = _noise_photo()
    for size in ((800, 600), (333, 250), (999, 749)):
        a, b = resize_pixels(pixels, size, "torch"), resize_pixels(pixels, size, "pillow")
        assert a.shape == b.shape == (size[1], size[0], 3) and a.dtype == np.uint8 and a.flags.c_contiguous
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 3 and diff.mean() < 0.1
    assert not np.array_equal(resize_pixels(pixels, (800, 600), "torch")[:, :, 0],
                              resize_pixels(pixels, (800, 600), "torch")[:, :, 1])  # channels kept apart


def test_torchs_resize_is_the_same_on_any_thread_count():
    """A photo found by a worker computing alone and one found on the main thread (2 threads)
    must see the same pixels: checked in a fresh process at 1 and 2 threads."""
    code = ("import numpy as np, torch, sys\n"
            "from faceclust.photos.decode import resize_pixels\n"
            "pixels = np.random.default_rng(1).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)\n"
            "out = []\n"
            "for n in (1, 2):\n"
            "    torch.set_num_threads(n)\n"
            "    out.append(resize_pixels(pixels, (1000, 750), 'torch'))\n"
            "print(np.array_equal(out[0], out[1]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_a_photo_resized_later_has_the_pixels_of_one_resized_at_once(tmp_path):
    """JPEG decoded at the decoder's reduced size: "later" keeps those pixels and the size to
    reach; at_working_size then gives exactly what "torch" gives at once, same scale."""
    path = tmp_path / "big.jpg"
    Image.fromarray(_noise_photo((2400, 1800))).save(path, quality=92)
    data = path.read_bytes()
    policy = max_side_policy(1000)
    now = decode_image(data, path, WorkingSize(policy, "torch"))
    later = decode_image(data, path, WorkingSize(policy, "later"))
    assert now.pixels.shape == (750, 1000, 3) and now.resize_to is None
    assert later.resize_to == (1000, 750) and later.pixels.shape == (900, 1200, 3)  # the 1/2-scale decode
    assert later.scale == now.scale and later.content_hash == now.content_hash
    done = at_working_size(later)
    assert done.resize_to is None and np.array_equal(done.pixels, now.pixels)
    assert at_working_size(now) is now
    pillow = decode_image(data, path, policy)  # a plain policy: Pillow, as thumbnails are made
    assert pillow.resize_to is None and np.abs(pillow.pixels.astype(int) - now.pixels.astype(int)).max() <= 3


def test_a_photo_smaller_than_the_working_size_is_never_left_for_later(tmp_path):
    path = draw_photo(tmp_path / "small.png", [(0, 40, 40, 60)])
    image = decode_image(path.read_bytes(), path, WorkingSize(max_side_policy(1000), "later"))
    assert image.resize_to is None and image.pixels.shape == (240, 320, 3)


def test_the_finder_resizes_what_was_left_for_later_and_finds_the_same_faces(tmp_path):
    """A scan decodes its first photos before torch is loaded: found later, they give the faces
    a photo decoded after gives (boxes in original pixels, same chips and embeddings)."""
    from faceclust.faces.detect import DetectOptions
    from faceclust.faces.finder import FaceFinder

    path = draw_photo(tmp_path / "p.jpg", [(0, 400, 300, 200), (2, 1400, 900, 260)], size=(2400, 1800), quality=95)
    finder = FaceFinder.create(DetectOptions(detector="fake", min_face=20, max_side=1000), "fake")
    data = path.read_bytes()
    now = decode_image(data, path, finder.scale_policy())
    later = decode_image(data, path, finder.scale_policy(later=True))
    assert later.resize_to is not None and now.resize_to is None
    a, b = finder.find([now])[0], finder.find([later])[0]
    assert len(a.boxes) == 2
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    chips_now = finder.chips(now, a.landmarks, a.boxes, a.points)
    chips_later = finder.chips(later, a.landmarks, a.boxes, a.points)
    np.testing.assert_array_equal(chips_now, chips_later)


def test_a_working_size_names_a_known_resize():
    with pytest.raises(ValueError, match="resize must be one of"):
        WorkingSize(max_side_policy(100), "bicubic")


def test_the_raw_path_leaves_its_resize_for_later_too(monkeypatch):
    """RAW files decode through LibRaw, then the same resize (or none yet)."""
    import faceclust.photos.raw as raw

    pixels = _noise_photo((1200, 900))
    monkeypatch.setattr(raw, "decode_raw", lambda data, scale_for: (pixels, 2400, 1800, None))
    policy = max_side_policy(1000)
    later = decode_image(b"raw", Path("x.dng"), WorkingSize(policy, "later"))
    now = decode_image(b"raw", Path("x.dng"), WorkingSize(policy, "torch"))
    assert later.resize_to == (1000, 750) and later.pixels.shape == (900, 1200, 3)
    assert np.array_equal(at_working_size(later).pixels, now.pixels) and now.pixels.shape == (750, 1000, 3)


def test_a_big_photo_without_a_reduced_decode_is_resized_at_once(tmp_path):
    """PNG (like TIFF and HEIC) has no reduced decode: left for later, a 12 MP photo would be
    held whole (36 MB) until found; it is resized on arrival, to the same pixels."""
    path = tmp_path / "big.png"
    Image.fromarray(_noise_photo((2400, 1800))).save(path)
    data = path.read_bytes()
    policy = max_side_policy(1000)  # 5.76x the working area
    later = decode_image(data, path, WorkingSize(policy, "later"))
    now = decode_image(data, path, WorkingSize(policy, "torch"))
    assert later.resize_to is None and later.pixels.shape == (750, 1000, 3)
    assert np.array_equal(later.pixels, now.pixels)
    near = decode_image(data, path, WorkingSize(max_side_policy(1500), "later"))  # 2.56x: kept
    assert near.resize_to == (1500, 1125) and near.pixels.shape == (1800, 2400, 3)
