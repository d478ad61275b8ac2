"""A report a person can look at: one self-contained HTML file, a row per person.

Face thumbnails are embedded (base64 JPEG), so the file can be mailed or opened anywhere.
Every name and path is escaped. Written only where the user asked.
"""

from __future__ import annotations

import base64
import errno
import html
import io
import os
from collections import defaultdict
from pathlib import Path

from faceclust.errors import FaceclustError
from faceclust.files import atomic_write
from faceclust.records import ProgressEvent
from faceclust.text import printable, strip_unsafe

REPORT_NAME = "faceclust-report.html"  # the report's name in an albums folder (run, serve)
THUMB = 96
FACES_PER_PERSON = 12
MARGIN = 0.2

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.4em} .row{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 1em;padding:.6em}
.row h2{font-size:1.05em;margin:0 0 .4em} .counts{color:#666;font-weight:normal;font-size:.9em}
.strip{display:flex;flex-wrap:wrap;gap:4px} .strip img{width:96px;height:96px;border-radius:4px;object-fit:cover}
.missing{width:96px;height:96px;background:#eee;display:inline-block;border-radius:4px}
.unknown h2{color:#888}
"""


def _crop_side(box: tuple[float, float, float, float]) -> float:
    left, top, right, bottom = box
    return max(right - left, bottom - top, 1.0) * (1 + 2 * MARGIN)


def _thumbnail(path: str, box: tuple[float, float, float, float], cache: dict, scale: float = 1.0) -> str | None:
    """A data: URI of the face's crop, or None when the photo cannot be read any more. The
    photo is decoded at ``scale`` (never above 1600 px a side): enough for its faces'
    thumbnails, so a 12 MP photo is read at 1/4 or 1/8 of its size (as serve's thumbnails)."""
    from PIL import Image

    from faceclust.photos.decode import load_image

    try:
        if path not in cache:
            cache.clear()  # photos come in path order: keep one decoded at a time
            cache[path] = load_image(Path(path), lambda w, h: min(1.0, scale, 1600 / max(w, h, 1)))
        image = cache[path]
    except FaceclustError:
        return None
    left, top, right, bottom = (v * image.scale for v in box)
    side = _crop_side(box) * image.scale
    cx, cy = (left + right) / 2, (top + bottom) / 2
    crop = Image.fromarray(image.pixels).crop((round(cx - side / 2), round(cy - side / 2),
                                               round(cx + side / 2), round(cy + side / 2)))
    crop = crop.resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_report(rows, people: list[dict], title: str = "faceclust", progress=None,
                  dates: dict | None = None) -> str:
    """HTML for ``rows`` (catalog.person_faces()) and ``people`` (catalog.people()); ``progress``
    receives ProgressEvents of stage "report" (thumbnails cut)."""
    visible = [p for p in people if not p["hidden"] and p["faces"]]
    faces_of: dict[int | None, list] = defaultdict(list)
    for person, face_id, path, left, top, right, bottom, score in rows:
        faces_of[person].append((score, right - left, path, (left, top, right, bottom), face_id))
    chosen: list[tuple[int | None, list]] = []
    for person in [p["id"] for p in visible] + [None]:
        best = sorted(faces_of.get(person, []), key=lambda f: (-f[0], -f[1], f[2]))[:FACES_PER_PERSON]
        # Shown in the order the photos were taken (``dates``: path -> taken_at), undated last.
        best.sort(key=lambda f: ((dates or {}).get(f[2]) is None, (dates or {}).get(f[2]) or 0.0, f[2]))
        chosen.append((person, best))
    # Decode each photo once: crops are made in path order.
    wanted = sorted({(f[2], f[4]): f for _, faces in chosen for f in faces}.values(), key=lambda f: f[2])
    scale: dict[str, float] = defaultdict(float)  # per photo: each of its crops at least twice THUMB px
    for f in wanted:
        scale[f[2]] = max(scale[f[2]], 2.0 * THUMB / _crop_side(f[3]))
    cache: dict = {}
    thumbs = {}
    progress = progress or (lambda event: None)
    for done, f in enumerate(wanted, 1):
        thumbs[f[4]] = _thumbnail(f[2], f[3], cache, scale[f[2]])
        if done % 20 == 0 or done == len(wanted):
            progress(ProgressEvent("report", done, len(wanted)))
    by_id = {p["id"]: p for p in visible}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{len(visible)} people</p>"]
    for person, faces in chosen:
        if person is None:
            if not faces_of.get(None):
                continue
            label, counts, css = "Unknown", f"{len(faces_of[None])} faces", "row unknown"
        else:
            p = by_id[person]
            label = strip_unsafe(p["name"] or "") or f"person {person}"
            counts, css = f"{p['faces']} faces, {p['photos']} photos · id {person}", "row person"
        parts.append(f"<div class='{css}'><h2>{html.escape(label)} <span class='counts'>{html.escape(counts)}</span></h2>"
                     "<div class='strip'>")
        for face in faces:
            uri = thumbs.get(face[4])
            alt = html.escape(f"face {face[4]} in {printable(os.path.basename(face[2]))}", quote=True)
            parts.append(f"<img src='{uri}' alt='{alt}' title='{alt}'>" if uri else f"<span class='missing' title='{alt}'></span>")
        parts.append("</div></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(catalog_path, out: Path, progress=None) -> int:
    """Write the report to ``out``; returns the number of people shown."""
    from faceclust.catalog import Catalog, protected_outputs

    with Catalog(catalog_path, create=False) as catalog:
        protected_outputs(catalog, out)
        rows, people, dates = catalog.person_faces(), catalog.people(), catalog.photo_dates()
    folder = Path(out).parent
    if not folder.is_dir():  # fail before cutting thumbnails, as the write below would fail after
        raise OSError(errno.ENOENT if not folder.exists() else errno.ENOTDIR, os.strerror(
            errno.ENOENT if not folder.exists() else errno.ENOTDIR), os.fspath(out))
    text = render_report(rows, people, progress=progress, dates=dates)
    # All or nothing, through a fresh temporary file: a symlink planted beside ``out`` (or at
    # it) cannot redirect the write. Made only once the page is ready, so a kill while the
    # thumbnails are cut leaves nothing behind.
    _write(folder, Path(out), text)
    return sum(1 for p in people if not p["hidden"] and p["faces"])


def _write(folder: Path, out: Path, text: str) -> None:
    """Write the report. In an album folder (``run``, serve's refresh, or ``report`` pointed
    there) under the folder's lock, first removing the half-written copies of it that killed
    writes left (``.faceclust-report.html.XXXX.tmp``, up to the report's size each): with the
    lock held no other faceclust process is writing one. Elsewhere nothing beside it is
    touched (no lock says no one else is writing)."""
    from faceclust.files import remove_stale_temps
    from faceclust.locks import FileLock
    from faceclust.output.albums import LOCK, MANIFEST

    if not (folder / MANIFEST).is_file():
        atomic_write(out, text)
        return
    with FileLock(folder / LOCK, f"the album folder {printable(folder)}"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            remove_stale_temps(fd, out.name)
        finally:
            os.close(fd)
        atomic_write(out, text)
