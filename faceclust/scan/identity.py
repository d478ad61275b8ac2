"""Which catalogued photos a scan searches again when detection changed.

A photo's faces are kept while it was searched under the scan's detect identity (the detector
and the options that decide what is found). When a detector changes in a way that leaves some
photos' faces as they were (a new step that only runs on big images), it says so
(``unchanged_below``) and those photos move to the new identity without being searched again.
"""

from __future__ import annotations

from faceclust.faces.detect import DetectOptions


def adopt_unchanged(catalog, detector, options: DetectOptions, identity: str) -> int:
    """Photos recorded under an earlier identity of ``detector`` whose faces it finds alike
    today are recorded under ``identity``; how many. ``detector.unchanged_below()``, if it has
    it, maps an earlier detector identity to the detection size (long side, pixels) below
    which that detector found the same faces as this one."""
    earlier = getattr(detector, "unchanged_below", None)
    adopted = 0
    for old_detector, limit in (earlier() if earlier is not None else {}).items():
        old = options.identity(old_detector)
        if old == identity:
            continue

        def same(width: int, height: int, limit=limit) -> bool:
            return searched_size_at_most(width, height, options, detector.window) < limit

        adopted += catalog.adopt_detect_identity(old, identity, same)
    return adopted


def searched_size_at_most(width: int, height: int, options: DetectOptions, window: float) -> float:
    """An upper bound of the long side a detector is given for a photo of this size: the
    detection scale's, plus what the decode's rounding to whole pixels adds (its scale is
    taken from the width: up to half a pixel times the aspect ratio, and one)."""
    long_side, short_side = max(width, height), max(1, min(width, height))
    return long_side * options.detection_scale(width, height, window) + 0.5 * (long_side / short_side + 1) + 1


def redetect_warning(files, states, identity: str) -> str | None:
    """The warning for photos this scan searches again because detection changed."""
    redetected = sum(1 for f in files if (st := states.get(str(f.path))) is not None and st.status == "ok"
                     and st.size == f.size and st.mtime_ns == f.mtime_ns and st.detect_identity != identity)
    if not redetected:
        return None
    return (f"{redetected} photo{'s' if redetected != 1 else ''} scanned before with another detector or "
            "other detection options (--detector, --min-face, --max-side...; or a newer faceclust's detector) "
            "are searched again once; the faces found again keep their people, names and rejections")
