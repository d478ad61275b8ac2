"""The int8 activation ranges stored with faceclust, per model file (no torch needed).

``int8_ranges.json`` maps a model name to the SHA-256 of the model file the ranges were
measured on, where they came from, and one [min, max] per quantized activation (see
``quantize.calibrate`` and ``benchmarks/calibrate_detector.py``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

RANGES_FILE = Path(__file__).with_name("int8_ranges.json")


def ranges_digest(model_sha256: str, name: str, path: Path | None = None) -> str | None:
    """A short hash of the stored ranges (None when there are none): measuring them again
    changes what int8 finds, so it is part of the detector's identity."""
    ranges = load_ranges(model_sha256, name, path)
    if ranges is None:
        return None
    return hashlib.sha256(json.dumps(ranges).encode()).hexdigest()[:8]


def load_ranges(model_sha256: str, name: str, path: Path | None = None) -> list[list[float]] | None:
    """The stored ranges of the model file with this hash, or None when none were measured."""
    path = RANGES_FILE if path is None else path
    if not path.is_file():
        return None
    entry = json.loads(path.read_text()).get(name)
    if not entry or entry.get("model_sha256") != model_sha256:
        return None
    return entry["ranges"]


def save_ranges(model_sha256: str, name: str, ranges: list[list[float]], source: str,
                path: Path | None = None) -> None:
    path = RANGES_FILE if path is None else path
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored[name] = {"model_sha256": model_sha256, "source": source, "ranges": ranges}
    path.write_text(json.dumps(stored, indent=1) + "\n")
