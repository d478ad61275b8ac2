"""What a scan is asked, and the progress it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from faceclust.faces.detect import DetectOptions
from faceclust.photos.read import READ_STALL_SECONDS
from faceclust.records import ProgressCallback, ProgressEvent  # noqa: F401 (the scan's events, re-exported)


def _threads() -> int:
    from faceclust.cpu import threads

    return threads()


@dataclass(frozen=True)
class ScanOptions:
    detect: DetectOptions = field(default_factory=DetectOptions)
    embedder: str | None = None  # None: the catalog's current embedder (see embed.choose_model)
    model: str | None = None  # a fine-tuned checkpoint, or "default"; None: the catalog's current
    batch_photos: int = 32
    reembed_faces: int = 64
    decode_workers: int = field(default_factory=lambda: _threads())  # --threads, else the cores
    update_index: bool = True
    prune: bool = False  # mark photos gone even when most of a folder vanished at once
    # A photo or folder that delivers nothing for this long is given up (a hung network share).
    stall_seconds: float = READ_STALL_SECONDS
    # Face tags other programs wrote (XMP sidecars, a photo's own XMP) name the faces they mark.
    import_tags: bool = True

    def __post_init__(self) -> None:
        if self.batch_photos < 1:
            raise ValueError("batch_photos must be at least 1")
        if self.decode_workers < 1:
            raise ValueError("decode_workers must be at least 1")
        if self.reembed_faces < 1:
            raise ValueError("reembed_faces must be at least 1")
        if not self.stall_seconds > 0:
            raise ValueError("stall_seconds must be above 0")
