"""The scan: files -> photos -> faces -> embeddings -> catalog.

Orchestration only: walking and decoding live in ``scan``, compute in ``detect``/``align``/
``embed``, SQL in ``catalog``. Work is committed in batches, so a killed scan resumes where it
stopped; a file that cannot be read is recorded and the scan goes on. Originals are only read.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Sequence

from faceclust.cpu import short_gil_turns, side_by_side
from faceclust.errors import FaceclustError, UsageProblem
from faceclust.faces.detect import Detector, detectors
from faceclust.faces.embed import Embedder
from faceclust.faces.finder import FaceFinder, Timer
from faceclust.photos.decode import decode_image, read_file
from faceclust.photos.walk import PhotoFile
from faceclust.records import FaceArrays, PhotoResult, PhotoState, ScanSummary
from faceclust.scan.options import ProgressCallback, ProgressEvent, ScanOptions
from faceclust.scan.identity import adopt_unchanged, redetect_warning
from faceclust.scan.prepare import Prepared, PreparingMixin, in_chunks
from faceclust.scan.prune import PruningMixin
from faceclust.scan.reembed import ReembedMixin
from faceclust.scan.tags import TagImportMixin
from faceclust.scan.walker import WalkingMixin
from faceclust.text import printable


DATE_HEAD = 128 * 1024  # bytes read from a photo catalogued without a date: JPEG's EXIF is in its first 64 KB


class Scanner(WalkingMixin, PreparingMixin, PruningMixin, ReembedMixin, TagImportMixin):
    """One scan of some roots into one catalog."""

    def __init__(self, catalog, options: ScanOptions | None = None,
                 progress: ProgressCallback | None = None,
                 detector: Detector | None = None, embedder: Embedder | None = None) -> None:
        self.catalog = catalog
        self.options = options or ScanOptions()
        self.progress = progress or (lambda event: None)
        self.timer = Timer()
        detector = detector or detectors.create(self.options.detect.detector,
                                                options=self.options.detect)
        self.model = None
        if embedder is None:
            from faceclust.faces.embed import choose_model

            self.model = choose_model(catalog, self.options.model, self.options.embedder)
            embedder = self.model.create()
        self.finder = FaceFinder(self.options.detect, detector, embedder, self.timer)
        self.model_id = embedder.identity()
        self.detect_identity = self.options.detect.identity(detector.identity())
        self.summary = ScanSummary()
        self._walk_stalled = False
        self._sidecars: dict[str, tuple[int, int]] = {}  # XMP files the walk saw (path -> size, mtime_ns)
        self._fresh: set[str] = set()  # photos whose faces this scan made
        self._rewritten: set[str] = set()  # photos whose content (and faces) changed in this scan
        self._embedded: set[str] = set()  # of those, the ones that may hold XMP face regions

    # -- the run ---------------------------------------------------------------------------

    def run(self, roots: Iterable[Path]) -> ScanSummary:
        started = time.perf_counter()
        roots = [Path(os.path.abspath(r)) for r in roots]
        run_id = self.catalog.start_run("scan", {
            "roots": [str(r) for r in roots], "detect": self.options.detect.__dict__,
            "model": self.model_id, "detect_identity": self.detect_identity})
        self.run_id = run_id
        status = "failed"
        try:
            files, walk_errors = self._walk(roots)
            adopt_unchanged(self.catalog, self.finder.detector, self.options.detect, self.detect_identity)
            states = self.catalog.photo_states()
            by_id = {s.id: s for s in states.values()}
            aliases = self.catalog.aliases()
            new_aliases = [f for f in files if f.same_as is not None
                           and not self._known_alias(aliases.get(str(f.path)), f, by_id)]
            todo = [f for f in files if f.same_as is None and not self._unchanged(states.get(str(f.path)), f)
                    and not self._known_alias(aliases.get(str(f.path)), f, by_id)]
            self.summary.photos_seen = len(files)
            self.summary.unchanged = len(files) - len(todo) - len(new_aliases)
            if (warning := redetect_warning(todo, states, self.detect_identity)) is not None:
                self.summary.warnings.append(warning)
            seen = {str(f.path) for f in files}
            self._process(todo, states, seen)
            self._record_walk_aliases(new_aliases)
            self._import_tags(files, self._sidecars, self._fresh, self._embedded)
            self._reembed()
            if self.model is not None:
                # Only now: an interrupted switch leaves the catalog on its old, complete model.
                from faceclust.faces.embed import record_model

                record_model(self.catalog, self.model)
            self._mark_gone(roots, seen, walk_errors)
            self._fill_dates(seen)
            status = "ok"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.summary.seconds = time.perf_counter() - started
            self.summary.timings = {k: round(v, 3) for k, v in self.timer.seconds.items()}
            self.catalog.finish_run(run_id, self.summary.as_dict(), status)
        if self.options.update_index:
            # The models are done with: their memory goes to the index build (glibc keeps it
            # for reuse), so the peak is the larger of the two, not their sum.
            import gc

            self.finder = None
            gc.collect()
            self._update_index()
        return self.summary

    # -- new and changed files -------------------------------------------------------------

    def _process(self, todo: list[PhotoFile], states: dict[str, PhotoState], seen: set[str]) -> None:
        by_hash: dict[str, list[PhotoState]] = defaultdict(list)
        self._by_hash_earlier: dict[str, list[PhotoState]] = defaultdict(list)
        for state in states.values():
            if state.content_hash and state.status in ("ok", "gone"):
                same = state.detect_identity == self.detect_identity
                (by_hash if same else self._by_hash_earlier)[state.content_hash].append(state)
        policy = self.finder.scale_policy()
        batch = self.options.batch_photos
        total = len(todo)
        claimed: set[int] = set()
        done = 0
        # With several workers and a detector that allows it, each worker decodes, detects and
        # embeds its own photos, torch on one thread each (on 2 cores, faster than one op on
        # both: docs/benchmarks.md). The first two batches decode while the models load.
        self._workers_find = self.options.decode_workers > 1 and getattr(self.finder.detector, "side_by_side", False)
        self._models_loaded = False
        with ThreadPoolExecutor(self.options.decode_workers) as pool, ExitStack() as stack:
            stack.enter_context(short_gil_turns())
            def chunks(items, shares=1):
                return in_chunks(items, self.options.decode_workers, shares)

            def submit(files, last=False):
                # The last batch in two chunks a worker: they finish closer together.
                return [pool.submit(self._prepare_chunk, c, states, by_hash, policy)
                        for c in chunks(files, 2 if last else 1)]

            # On an error or Ctrl-C: what is queued is dropped, what runs is waited for.
            stop = lambda: pool.shutdown(wait=True, cancel_futures=True)  # noqa: E731
            stack.callback(stop)
            queued = deque([submit(todo[:batch], total <= batch), submit(todo[batch:2 * batch], total <= 2 * batch)])
            following = 2 * batch
            if total:
                self.progress(ProgressEvent("models", 0, 1))
                self.finder.load(total)
                if self._workers_find:
                    # The main thread computes alone too until the pool has stopped (its own
                    # count is read before any worker sets torch's process-wide one).
                    stack.enter_context(side_by_side())
                    stack.callback(stop)
                self._models_loaded = True
                self.progress(ProgressEvent("models", 1, 1))
            early_finds = [pool.submit(self._find_chunk, c) for c in chunks(self._decoded_early(queued))]
            self.progress(ProgressEvent("photos", 0, total))  # starts the clock of the rate shown
            # Batches queued beyond the one being finished: one (decoded while this one is
            # detected on the main thread); two when the workers find faces, so that they never
            # wait for the main thread (found photos hold no pixels).
            ahead = 2 if self._workers_find else 1
            for start in range(0, total, batch):
                ready = [p for chunk in queued.popleft() for p in chunk.result()]
                while len(queued) < ahead and following < total:
                    queued.append(submit(todo[following:following + batch], following + batch >= total))
                    following += batch
                for future in early_finds:
                    future.result()
                early_finds = []
                if self._workers_find:  # decoded before the models were there
                    unfound = [p for p in ready if p.image is not None and not p.find_tried]
                    for future in [pool.submit(self._find_chunk, c) for c in chunks(unfound)]:
                        future.result()
                results = self._finish_batch(ready, states, seen, claimed)
                t = time.perf_counter()
                self.catalog.write_results(results, self.model_id, self.detect_identity, self.run_id)
                # Copies later in this scan (a backup folder of the same photos) take these
                # photos' faces instead of being detected again.
                for state in self.catalog.photo_states_of([r.path for r in results if r.kind == "faces"]):
                    old = states.get(state.path)
                    if old is not None and old.content_hash != state.content_hash:
                        self._rewritten.add(state.path)  # its old content's entry is stale now
                    if state.content_hash and state.status == "ok":
                        by_hash[state.content_hash].append(state)
                self.timer.add("sql", t)
                done += len(ready)
                self.progress(ProgressEvent("photos", done, total, self.summary.faces_found,
                                            self.summary.errors, ready[-1].file.path.name))

    def _finish_batch(self, ready: list[Prepared], states, seen: set[str], claimed: set[int]) -> list[PhotoResult]:
        results: list[PhotoResult] = []
        to_detect: list[tuple[Prepared, PhotoResult]] = []
        for p in ready:
            path = str(p.file.path)
            base = dict(path=path, size=p.file.size, mtime_ns=p.file.mtime_ns, content_hash=p.content_hash)
            if p.candidates and not p.error:
                self._current(p)
            if p.error:
                state = states.get(path)
                known = (state is not None and state.status == "error" and state.size == p.file.size
                         and state.mtime_ns == p.file.mtime_ns and state.error == p.error)
                results.append(PhotoResult("error", error=p.error, known_error=known, **base))
                if known:
                    self.summary.known_errors += 1
                else:
                    self._note_error(path, p.error)
            elif p.touched:
                results.append(PhotoResult("touched", **base))
            elif p.candidates:
                results.append(self._relink(p, base, seen, claimed))
                self._note_fresh(p)
            else:
                moved = self._moved_earlier(p, seen, claimed)
                if moved is not None:
                    # Re-pointed first, then detected again in the same batch: the new faces
                    # take over who the moved ones were (same bytes, another detector).
                    results.append(PhotoResult("moved", source_id=moved.id, **base))
                taken = p.image.taken_at if p.image.taken_at is not None else base["mtime_ns"] / 1e9
                result = PhotoResult("faces", width=p.image.original_width, height=p.image.original_height,
                                     taken_at=taken, **base)
                to_detect.append((p, result))
                results.append(result)
                self._note_fresh(p)
            self._count(p, states.get(path))
        if to_detect:
            self._detect(to_detect, results)
        return results

    def _current(self, p: Prepared) -> None:
        """Drop candidates whose photo changed in this scan (their faces are no longer those
        of this content); with none left, the file is decoded here, to be detected."""
        p.candidates = [c for c in p.candidates if c.path not in self._rewritten]
        if p.candidates:
            return
        try:
            p.image = decode_image(read_file(p.file.path, self.options.stall_seconds), p.file.path,
                                   self.finder.scale_policy())
        except FaceclustError as exc:
            p.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a batch job
            p.error = f"unexpected error while decoding ({type(exc).__name__}: {exc})"

    def _note_fresh(self, p: Prepared) -> None:
        self._fresh.add(str(p.file.path))
        if p.xmp:
            self._embedded.add(str(p.file.path))

    def _count(self, p: Prepared, state: PhotoState | None) -> None:
        if p.error:
            return
        if p.touched:
            self.summary.unchanged += 1
        elif state is not None and state.status == "ok":
            self.summary.changed += 1
        elif not p.candidates and not p.moved:
            self.summary.new += 1

    def _moved_earlier(self, p: Prepared, seen: set[str], claimed: set[int]) -> PhotoState | None:
        """A catalogued photo of these bytes, found with other detection settings, whose file is
        gone: this one, moved (counted as moved; it is detected again all the same)."""
        for cand in p.earlier:
            if cand.id not in claimed and cand.path not in seen and not os.path.lexists(cand.path):
                claimed.add(cand.id)
                self.summary.moved += 1
                p.moved = True
                return cand
        return None

    def _relink(self, p: Prepared, base: dict, seen: set[str], claimed: set[int]) -> PhotoResult:
        for cand in p.candidates:
            if cand.status == "ok" and _same_file(str(p.file.path), cand.path):
                self.summary.aliases += 1  # the same file by another path: catalogued once
                return PhotoResult("alias", source_id=cand.id, **base)
        for cand in p.candidates:
            if cand.id not in claimed and cand.path not in seen and not os.path.lexists(cand.path):
                claimed.add(cand.id)
                self.summary.moved += 1
                return PhotoResult("moved", source_id=cand.id, **base)
        self.summary.copied += 1
        return PhotoResult("copied", source_id=p.candidates[0].id, **base)

    def _detect(self, to_detect: list[tuple[Prepared, PhotoResult]], results: list[PhotoResult]) -> None:
        missing = [(p, r) for p, r in to_detect if p.faces is None]  # not found by a worker
        if missing:
            try:
                found = self.finder.find([p.image for p, _ in missing])
            except Exception:  # noqa: BLE001 - find the photo that failed, keep the rest
                found = [self._find_one(p, r) for p, r in missing]
            for (p, _result), faces in zip(missing, found):
                p.faces = faces
        for p, result in to_detect:
            if p.faces is None:  # failed (reported by _find_one)
                continue
            result.faces = p.faces
            self.summary.faces_found += len(p.faces)
            self.summary.photos_with_faces += bool(len(p.faces))
            p.image = None  # free the pixels early

    def _find_one(self, p: Prepared, result: PhotoResult) -> FaceArrays | None:
        try:
            return self.finder.find([p.image])[0]
        except Exception as exc:  # noqa: BLE001
            result.kind = "error"
            result.error = f"face detection failed ({type(exc).__name__}: {exc})"
            self._note_error(result.path, result.error)
            return None

    def _note_error(self, path: str, message: str) -> None:
        self.summary.errors += 1
        if len(self.summary.error_samples) < 20:
            self.summary.error_samples.append((path, message))

    # -- other steps -----------------------------------------------------------------------

    def _fill_dates(self, seen: set[str]) -> None:
        """Capture dates for photos catalogued before dates were stored (read once: the first
        DATE_HEAD bytes of each, where its EXIF is; else the file's time). Only photos this
        walk saw: an unmounted share is not given wrong dates."""
        from faceclust.errors import FaceclustError
        from faceclust.photos.decode import taken_at_from_head
        from faceclust.photos.read import read_photo_bytes

        missing = [m for m in self.catalog.photos_without_dates() if m[1] in seen]
        if not missing:
            return

        def date(item) -> tuple[float, int]:
            photo_id, path, mtime_ns = item
            try:
                head = read_photo_bytes(path, stall_seconds=self.options.stall_seconds, head=DATE_HEAD)
                taken = taken_at_from_head(head, Path(path))
            except FaceclustError:  # unreadable now, or a format whose extra is missing
                taken = None
            return (taken if taken is not None else mtime_ns / 1e9, photo_id)

        self.progress(ProgressEvent("dates", 0, len(missing)))
        with ThreadPoolExecutor(self.options.decode_workers) as pool:
            for start in range(0, len(missing), 500):
                dates = list(pool.map(date, missing[start:start + 500]))  # read first: no lock held while reading
                self.catalog.set_dates(dates)
                self.progress(ProgressEvent("dates", min(start + 500, len(missing)), len(missing)))

    def _update_index(self) -> None:
        from faceclust.catalog.index import open_index

        self.progress(ProgressEvent("index", 0, 1))
        t = time.perf_counter()
        open_index(self.catalog, self.model_id)
        self.timer.add("index", t)
        self.progress(ProgressEvent("index", 1, 1))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def scan_library(catalog_path: Path, roots: Sequence[Path], options: ScanOptions | None = None,
                 progress: ProgressCallback | None = None) -> ScanSummary:
    """Scan ``roots`` into the catalog at ``catalog_path`` and refresh its index."""
    from faceclust.catalog import Catalog
    from faceclust.locks import catalog_lock

    check_roots(roots)
    with Catalog(catalog_path) as catalog, catalog_lock(catalog.path, "scan"):
        return Scanner(catalog, options, progress).run(roots)


def check_roots(roots: Sequence[Path]) -> None:
    """Every photo folder asked for must exist: a typo, or a share that is not mounted at all,
    must not look like a library whose photos were all deleted."""
    if not roots:
        raise UsageProblem("no photo folder given")
    for root in roots:
        if not os.path.lexists(root):
            raise UsageProblem(f"{printable(root)}: no such file or folder; check the path "
                               "(is the share mounted?)")
        if not os.path.exists(root):
            raise UsageProblem(f"{printable(root)}: a broken symbolic link; check the path (is the share mounted?)")


