"""Locate dlib's model files shipped by the PyPI package ``face_recognition_models``.

The package's ``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so it is
never imported: its folder is found with ``importlib.util.find_spec``. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from faceclust.errors import ModelNotFound

EMBEDDER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DETECTOR_FILE = "mmod_human_face_detector.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"

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
