"""The photo formats faceclust reads, by file name, and the optional openers they need
(HEIC/HEIF through pillow-heif, registered once for every command)."""

from __future__ import annotations

from pathlib import Path

from faceclust.errors import MissingExtraError

HEIF_EXTENSIONS = frozenset({".heic", ".heif"})

# Camera RAW files (read through rawpy / LibRaw; see faceclust.photos.raw).
RAW_EXTENSIONS = frozenset(
    {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".dng", ".pef",
     ".srw", ".3fr", ".iiq", ".erf", ".mrw", ".x3f", ".rwl", ".kdc", ".dcr"}
)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif",
     ".heic", ".heif", ".avif"} | RAW_EXTENSIONS
)


_HEIF_REGISTERED = False


def ensure_opener(path: Path) -> None:
    """Make sure Pillow can open ``path``'s format: the optional HEIC/HEIF opener is registered
    once per process, for every command that opens photos (scan, report, dedupe, verify...).
    Raises :class:`MissingExtraError` naming the extra to install."""
    global _HEIF_REGISTERED
    if Path(path).suffix.lower() not in HEIF_EXTENSIONS:
        return
    try:
        import pillow_heif
    except ImportError:
        raise MissingExtraError(
            "HEIC/HEIF photos need the optional extra: pip install 'faceclust[heif]'"
        ) from None
    if not _HEIF_REGISTERED:
        pillow_heif.register_heif_opener()
        _HEIF_REGISTERED = True


def raw_partners(paths) -> dict[str, str]:
    """RAW path -> the other photo of the same shot: the one photo in the same folder with the
    same name (any case) that is not a RAW file (the camera's JPEG, or a HEIC). A RAW with no
    such photo, or with several, has none."""
    import os

    by_stem: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        folder, name = os.path.split(path)
        by_stem.setdefault((folder, os.path.splitext(name)[0].lower()), []).append(path)
    out = {}
    for group in by_stem.values():
        raws = [p for p in group if Path(p).suffix.lower() in RAW_EXTENSIONS]
        others = [p for p in group if Path(p).suffix.lower() not in RAW_EXTENSIONS]
        if len(others) == 1:
            out.update({raw: others[0] for raw in raws})
    return out
