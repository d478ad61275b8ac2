"""The scan's workers: each reads, hashes and decodes its share of the new and changed files
and, when the detector allows it (``side_by_side``), finds their faces too: detection,
landmarks, chips and one embedding call for its share, torch on one thread per worker. On 2
cores that beats spreading each op over both cores while other threads decode (a 12-megapixel
scan: docs/benchmarks.md). What fails in a worker is left for the main thread, which finds it
again and reports it: the workers never record anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from faceclust.cpu import compute_alone_on_this_thread
from faceclust.errors import FaceclustError
from faceclust.photos.decode import LoadedImage, content_hash, decode_image, read_file
from faceclust.photos.walk import PhotoFile
from faceclust.photos.xmp import embedded_xmp_possible
from faceclust.records import FaceArrays, PhotoState


@dataclass
class Prepared:
    """What a decode worker hands back for one file."""

    file: PhotoFile
    content_hash: str | None = None
    image: LoadedImage | None = None
    error: str | None = None
    touched: bool = False
    candidates: list[PhotoState] = field(default_factory=list)
    # Catalogued photos of the same bytes found with another detector or other options: a
    # gone one is this photo moved, whose faces (and who they are) follow it before it is
    # detected again.
    earlier: list[PhotoState] = field(default_factory=list)
    moved: bool = False  # it was one of ``earlier``, moved
    xmp: bool = False  # its bytes may hold face regions in embedded XMP
    faces: FaceArrays | None = None  # found by a worker
    find_tried: bool = False  # a worker tried (what failed there is found again on the main thread)


# Photos a worker takes at a time: their chips are embedded in one call (a face costs 0.7x
# (dlib's ResNet) and 0.9x (SFace) in calls of 8 or more chips what it costs alone:
# benchmarks/bench_threads.py).
CHUNK = 8
_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)


def in_chunks(items: list, workers: int, shares: int = 1) -> list[list]:
    """``items`` in chunks of up to CHUNK, at least ``shares`` chunks a worker when there are
    few (a few photos still go to every worker)."""
    step = max(1, min(CHUNK, -(-len(items) // (shares * workers))))
    return [items[i:i + step] for i in range(0, len(items), step)]


class PreparingMixin:
    """The workers' side of :class:`~faceclust.scan.scanner.Scanner`. Before the first
    chunk: ``_workers_find`` (whether workers find faces) and ``_models_loaded`` (set by the
    main thread once the models are loaded: photos decoded before are found later, by
    :meth:`_find_chunk`)."""

    def _prepare_chunk(self, files: list[PhotoFile], states, by_hash, policy) -> list[Prepared]:
        """A worker's share: read and decode each file; once the models are loaded and when
        workers find faces, also find those to be detected."""
        if self._models_loaded:
            # The decode's resize computes alone too (a core a worker). Not before: torch may
            # still be importing on the main thread, and this would wait for it (photos decoded
            # before are resized when found, but for those too big to hold: decode.LATER_AT_MOST).
            compute_alone_on_this_thread()
        prepared = [self._prepare(f, states.get(str(f.path)), by_hash, policy) for f in files]
        if self._workers_find and self._models_loaded:
            self._find_chunk(prepared)
        return prepared

    def _decoded_early(self, queued) -> list[Prepared]:
        """Photos decoded before the models were loaded, among the chunks already done (called
        once they are loaded: found then, ahead of the batches queued after them; a chunk still
        decoding finds its own, or the main thread's check finds them)."""
        if not self._workers_find:
            return []
        return [p for futures in queued for f in futures if f.done() and f.exception() is None
                for p in f.result() if p.image is not None and not p.find_tried]

    def _find_chunk(self, prepared: list[Prepared]) -> None:
        """Detection, landmarks, chips and one embedding call for the decoded photos among
        ``prepared``; their pixels are let go once found. What fails is left to the main
        thread, which finds it again and reports it."""
        todo = [p for p in prepared if p.image is not None and not p.candidates and not p.find_tried]
        if not todo:
            return
        for p in todo:
            p.find_tried = True
        try:
            compute_alone_on_this_thread()
            located = [self.finder.locate(p.image) for p in todo]
            found = self.finder.finish([p.image for p in todo], located)
        except Exception:  # noqa: BLE001 - the main thread finds these again and reports the failure
            return
        for p, faces in zip(todo, found):
            p.faces = faces
            p.image = replace(p.image, pixels=_NO_PIXELS)

    def _prepare(self, f: PhotoFile, state: PhotoState | None, by_hash, policy) -> Prepared:
        t = time.perf_counter()
        out = Prepared(f)
        try:
            data = read_file(f.path, self.options.stall_seconds)
            out.content_hash = content_hash(data)
            if state is not None and state.status in ("ok", "gone") \
                    and state.content_hash == out.content_hash and state.detect_identity == self.detect_identity:
                out.touched = True
                return out
            out.candidates = [c for c in by_hash.get(out.content_hash, ()) if c.path != str(f.path)]
            if not out.candidates:
                out.earlier = [c for c in self._by_hash_earlier.get(out.content_hash, ()) if c.path != str(f.path)]
            out.xmp = embedded_xmp_possible(data)  # recorded even with --no-import: read later
            if not out.candidates:
                # Before the models are loaded torch may still be importing: the resize waits
                # for the photo's turn to be found (the same torch resize either way).
                scale = policy if self._models_loaded else self.finder.scale_policy(later=True)
                out.image = decode_image(data, f.path, scale, known_hash=out.content_hash)
        except FaceclustError as exc:
            out.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a batch job
            out.error = f"unexpected error while decoding ({type(exc).__name__}: {exc})"
        finally:
            self.timer.add("decode", t)
        return out
