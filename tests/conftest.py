"""Shared fixtures.

Real photo sets live in ../shared/data (never copied into the project); tests that need them
skip with a clear reason when that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FACECLUST_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The labelled development photo sets, or skip."""
    if not (SHARED_DATA / "lfw_dev").is_dir() or not (SHARED_DATA / "celeba_train").is_dir():
        pytest.skip(f"real photo sets not found at {SHARED_DATA} (set FACECLUST_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dlib_module():
    """dlib itself (the reference implementation), or skip."""
    return pytest.importorskip("dlib", reason="dlib (dlib-bin) is not installed")
