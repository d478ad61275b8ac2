"""The scan: files -> photos -> faces -> embeddings -> catalog.

Orchestration only: walking and decoding live in ``scan``, compute in ``detect``/``align``/
``embed``, SQL in ``catalog``. Work is committed in batches, so a killed scan resumes where it
stopped; a file that cannot be read is recorded and the scan goes on. Originals are only read.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from faceclust.errors import FaceclustError, UsageProblem
from faceclust.faces.detect import DetectOptions, Detector, detectors
from faceclust.faces.embed import Embedder
from faceclust.faces.finder import FaceFinder, Timer
from faceclust.photos.decode import LoadedImage, content_hash, decode_image, read_file
from faceclust.photos.read import READ_STALL_SECONDS
from faceclust.photos.walk import PhotoFile, walk_photos
from faceclust.records import FaceArrays, PhotoResult, PhotoState, ScanSummary
from faceclust.text import printable


@dataclass(frozen=True)
class ScanOptions:
    detect: DetectOptions = field(default_factory=DetectOptions)
    embedder: str | None = None  # None: the catalog's current embedder (see embed.choose_model)
    model: str | None = None  # a fine-tuned checkpoint, or "default"; None: the catalog's current
    batch_photos: int = 32
    reembed_faces: int = 64
    decode_workers: int = 2
    update_index: bool = True
    prune: bool = False  # mark photos gone even when most of a folder vanished at once
    # A photo or folder that delivers nothing for this long is given up (a hung network share).
    stall_seconds: float = READ_STALL_SECONDS

    def __post_init__(self) -> None:
        if self.batch_photos < 1:
            raise ValueError("batch_photos must be at least 1")
        if self.decode_workers < 1:
            raise ValueError("decode_workers must be at least 1")
        if self.reembed_faces < 1:
            raise ValueError("reembed_faces must be at least 1")
        if not self.stall_seconds > 0:
            raise ValueError("stall_seconds must be above 0")


# A scan that finds more than this share of a folder's catalogued photos missing, and more
# than this many, does not mark them gone without --prune (see Scanner._mark_gone).
PRUNE_SAFETY_SHARE = 0.5
PRUNE_SAFETY_COUNT = 5


@dataclass
class ProgressEvent:
    stage: str  # "walk", "photos", "reembed", "index", "done"
    done: int
    total: int
    faces: int = 0
    errors: int = 0
    path: str | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class _Prepared:
    """What a decode worker hands back for one file."""

    file: PhotoFile
    content_hash: str | None = None
    image: LoadedImage | None = None
    error: str | None = None
    touched: bool = False
    candidates: list[PhotoState] = field(default_factory=list)


class Scanner:
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
            states = self.catalog.photo_states()
            by_id = {s.id: s for s in states.values()}
            aliases = self.catalog.aliases()
            new_aliases = [f for f in files if f.same_as is not None
                           and not self._known_alias(aliases.get(str(f.path)), f, by_id)]
            todo = [f for f in files if f.same_as is None and not self._unchanged(states.get(str(f.path)), f)
                    and not self._known_alias(aliases.get(str(f.path)), f, by_id)]
            self.summary.photos_seen = len(files)
            self.summary.unchanged = len(files) - len(todo) - len(new_aliases)
            seen = {str(f.path) for f in files}
            self._process(todo, states, seen)
            self._record_walk_aliases(new_aliases)
            self._reembed()
            if self.model is not None:
                # Only now: an interrupted switch leaves the catalog on its old, complete model.
                from faceclust.faces.embed import record_model

                record_model(self.catalog, self.model)
            self._mark_gone(roots, seen, walk_errors)
            status = "ok"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.summary.seconds = time.perf_counter() - started
            self.summary.timings = {k: round(v, 3) for k, v in self.timer.seconds.items()}
            self.catalog.finish_run(run_id, self.summary.as_dict(), status)
        if self.options.update_index:
            self._update_index()
        return self.summary

    def _walk(self, roots: list[Path]):
        """The photo files under ``roots``. The walk runs on a watchdog's daemon thread: a
        folder that stops answering (a hung network share) for ``stall_seconds`` ends the walk
        with an error instead of hanging the scan; nothing is marked gone after such a walk."""
        import threading

        from faceclust.photos.walk import WalkError

        errors: list[WalkError] = []
        files: list[PhotoFile] = []  # the walker appends; what it found stays found if it hangs
        outcome: dict = {}
        finished = threading.Event()
        beat = {"count": 0, "at": roots[0] if roots else Path(".")}

        def tick(path: Path) -> None:
            beat["count"] += 1
            beat["at"] = path

        def walk() -> None:
            try:
                files.extend(walk_photos(roots, errors, on_progress=tick))
            except BaseException as exc:  # noqa: BLE001 - raised again in the scanning thread
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=walk, name="faceclust-walk", daemon=True).start()
        stall = self.options.stall_seconds
        seen_beats = -1
        while not finished.wait(min(stall, 1.0)):
            self.progress(ProgressEvent("walk", len(files), 0))
            if beat["count"] != seen_beats:  # slow but moving (a big folder of other files)
                seen_beats, quiet_since = beat["count"], time.monotonic()
            elif time.monotonic() - quiet_since >= stall:
                errors = [*errors, WalkError(Path(beat["at"]), f"no answer for {stall:g} s (a slow or "
                          "unresponsive network share?); the walk stopped here, the next scan tries again")]
                self._walk_stalled = True
                files = list(files)  # a snapshot: the stuck walker may still append later
                break
        if "error" in outcome:
            raise outcome["error"]
        self.progress(ProgressEvent("walk", len(files), len(files)))
        if errors:
            # A folder or odd file that failed the same way before is not a new error tonight.
            pairs = [(str(e.path), e.message) for e in errors]
            known = self.catalog.recorded_errors(pairs)
            new = [pair for pair in pairs if pair not in known]
            self.catalog.record_errors(self.run_id, new)
            self.summary.known_errors += len(pairs) - len(new)
            for path, message in new:
                self._note_error(path, message)
        return files, errors

    def _record_walk_aliases(self, files: list[PhotoFile]) -> None:
        """Paths this walk found to a file it had already found: remembered with that photo."""
        if not files:
            return
        states = self.catalog.photo_states()
        aliases = self.catalog.aliases()  # the first path may itself be another path to a photo
        results = []
        for f in files:
            target = states.get(str(f.same_as))
            photo_id = target.id if target is not None and target.status == "ok" else None
            if photo_id is None and str(f.same_as) in aliases:
                photo_id = aliases[str(f.same_as)][0]
            if photo_id is not None:
                results.append(PhotoResult("alias", str(f.path), f.size, f.mtime_ns, source_id=photo_id))
        self.catalog.write_results(results, self.model_id, self.detect_identity, self.run_id)
        self.summary.aliases += len(results)

    @staticmethod
    def _known_alias(alias: tuple | None, f: PhotoFile, photos: dict[int, PhotoState]) -> bool:
        """An unchanged other path to a photo that is still catalogued and still there."""
        if alias is None or (alias[1], alias[2]) != (f.size, f.mtime_ns):
            return False
        target = photos.get(alias[0])
        return target is not None and target.status == "ok" and os.path.lexists(target.path)

    def _unchanged(self, state: PhotoState | None, f: PhotoFile) -> bool:
        return (state is not None and state.status == "ok" and state.size == f.size
                and state.mtime_ns == f.mtime_ns and state.detect_identity == self.detect_identity)

    # -- new and changed files -------------------------------------------------------------

    def _process(self, todo: list[PhotoFile], states: dict[str, PhotoState], seen: set[str]) -> None:
        by_hash: dict[str, list[PhotoState]] = defaultdict(list)
        for state in states.values():
            if state.content_hash and state.status in ("ok", "gone") and state.detect_identity == self.detect_identity:
                by_hash[state.content_hash].append(state)
        policy = self.finder.scale_policy()
        batch = self.options.batch_photos
        total = len(todo)
        claimed: set[int] = set()
        done = 0
        self.progress(ProgressEvent("photos", 0, total))  # starts the clock of the rate shown
        with ThreadPoolExecutor(self.options.decode_workers) as pool:
            prepare = lambda f: self._prepare(f, states.get(str(f.path)), by_hash, policy)  # noqa: E731
            pending = [pool.submit(prepare, f) for f in todo[:batch]]
            for start in range(0, total, batch):
                ready = [p.result() for p in pending]
                # Decode the next batch while this one is detected and embedded.
                pending = [pool.submit(prepare, f) for f in todo[start + batch:start + 2 * batch]]
                results = self._finish_batch(ready, states, seen, claimed)
                t = time.perf_counter()
                self.catalog.write_results(results, self.model_id, self.detect_identity, self.run_id)
                self.timer.add("sql", t)
                done += len(ready)
                self.progress(ProgressEvent("photos", done, total, self.summary.faces_found,
                                            self.summary.errors, ready[-1].file.path.name))

    def _prepare(self, f: PhotoFile, state: PhotoState | None, by_hash, policy) -> _Prepared:
        t = time.perf_counter()
        out = _Prepared(f)
        try:
            data = read_file(f.path, self.options.stall_seconds)
            out.content_hash = content_hash(data)
            if state is not None and state.status in ("ok", "gone") \
                    and state.content_hash == out.content_hash and state.detect_identity == self.detect_identity:
                out.touched = True
                return out
            out.candidates = [c for c in by_hash.get(out.content_hash, ()) if c.path != str(f.path)]
            if not out.candidates:
                out.image = decode_image(data, f.path, policy)
        except FaceclustError as exc:
            out.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a batch job
            out.error = f"unexpected error while decoding ({type(exc).__name__}: {exc})"
        finally:
            self.timer.add("decode", t)
        return out

    def _finish_batch(self, ready: list[_Prepared], states, seen: set[str], claimed: set[int]) -> list[PhotoResult]:
        results: list[PhotoResult] = []
        to_detect: list[tuple[_Prepared, PhotoResult]] = []
        for p in ready:
            path = str(p.file.path)
            base = dict(path=path, size=p.file.size, mtime_ns=p.file.mtime_ns, content_hash=p.content_hash)
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
            else:
                result = PhotoResult("faces", width=p.image.original_width, height=p.image.original_height, **base)
                to_detect.append((p, result))
                results.append(result)
            self._count(p, states.get(path))
        if to_detect:
            self._detect(to_detect, results)
        return results

    def _count(self, p: _Prepared, state: PhotoState | None) -> None:
        if p.error:
            return
        if p.touched:
            self.summary.unchanged += 1
        elif state is not None and state.status == "ok":
            self.summary.changed += 1
        elif not p.candidates:
            self.summary.new += 1

    def _relink(self, p: _Prepared, base: dict, seen: set[str], claimed: set[int]) -> PhotoResult:
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

    def _detect(self, to_detect: list[tuple[_Prepared, PhotoResult]], results: list[PhotoResult]) -> None:
        try:
            found = self.finder.find([p.image for p, _ in to_detect])
        except Exception:  # noqa: BLE001 - find the photo that failed, keep the rest
            found = [self._find_one(p, r) for p, r in to_detect]
        for (p, result), faces in zip(to_detect, found):
            if faces is None:
                continue
            result.faces = faces
            self.summary.faces_found += len(faces)
            self.summary.photos_with_faces += bool(len(faces))
            p.image = None  # free the pixels early

    def _find_one(self, p: _Prepared, result: PhotoResult) -> FaceArrays | None:
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

    def _reembed(self) -> None:
        """Faces found earlier but without an embedding from this model (the model changed):
        decode and align again from the stored landmarks, embed in batches, never re-detect."""
        photos = self.catalog.photos_missing_embeddings(self.model_id)
        if not photos:
            return
        policy = self.finder.scale_policy()
        window = 4 * self.options.decode_workers
        chips: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        pending = 0
        self.progress(ProgressEvent("reembed", 0, len(photos)))

        def submit(pool, state):  # landmarks are read here: the connection stays in this thread
            face_ids, marks = self.catalog.face_landmarks(state.id)
            return face_ids, pool.submit(self._reembed_chips, state, marks, policy)

        with ThreadPoolExecutor(self.options.decode_workers) as pool:
            queue = [submit(pool, state) for state in photos[:window]]
            for i, state in enumerate(photos):
                face_ids, future = queue.pop(0)
                if i + window < len(photos):
                    queue.append(submit(pool, photos[i + window]))
                photo_chips = future.result()
                if photo_chips is not None and len(face_ids):
                    ids.append(face_ids)
                    chips.append(photo_chips)
                    pending += len(face_ids)
                    self.summary.reembedded += 1
                if pending >= self.options.reembed_faces or i == len(photos) - 1:
                    self._write_reembedded(ids, chips)
                    ids, chips, pending = [], [], 0
                    self.progress(ProgressEvent("reembed", i + 1, len(photos), path=Path(state.path).name))

    def _reembed_chips(self, state: PhotoState, landmarks: np.ndarray, policy) -> np.ndarray | None:
        t = time.perf_counter()
        try:
            data = read_file(Path(state.path), self.options.stall_seconds)
            if content_hash(data) != state.content_hash:
                return None  # changed since: the next scan redoes it
            image = decode_image(data, Path(state.path), policy)
        except FaceclustError as exc:
            self._note_error(state.path, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a batch job
            self._note_error(state.path, f"unexpected error while decoding ({type(exc).__name__}: {exc})")
            return None
        finally:
            self.timer.add("decode", t)
        return self.finder.chips(image, landmarks)

    def _write_reembedded(self, ids: list[np.ndarray], chips: list[np.ndarray]) -> None:
        if not ids:
            return
        vectors = self.finder.embed(np.concatenate(chips))
        t = time.perf_counter()
        self.catalog.write_embeddings(np.concatenate(ids), vectors, self.model_id)
        self.timer.add("sql", t)

    def _mark_gone(self, roots: list[Path], seen: set[str], walk_errors) -> None:
        """Photos of ``roots`` that are no longer there are marked gone (their album entries
        go with them) -- unless too many vanished at once from one folder that is still
        there: more than PRUNE_SAFETY_SHARE of the catalogued photos under a root or any
        folder below it, and more than PRUNE_SAFETY_COUNT, looks like an unmounted share or an
        emptied mount point, not like deletions; they are kept unless ``prune`` (rclone's
        --max-delete is the model). A folder deleted as a whole is a deletion."""
        if self._walk_stalled:
            return  # the walk did not see everything: it says nothing about missing photos
        # Read the catalog again: rows re-pointed by a move now carry their new path.
        # A folder that could not be listed (an unmounted share, a permission change) says
        # nothing about its photos: they are not marked gone.
        blind = [str(e.path) for e in walk_errors]
        states = [s for s in self.catalog.photo_states().values() if s.status != "gone"]
        gone: set[int] = set()
        for root in roots:
            root_text = str(root)
            under = [s for s in states if _is_under(s.path, root_text)]
            vanished = [s for s in under
                        if s.path not in seen and not any(_is_under(s.path, b) for b in blind)
                        and not os.path.lexists(s.path)]  # still there (a skipped folder): leave it
            if not vanished:
                continue
            held, lost = Counter(), Counter()
            for s in under:
                held.update(_folders_between(s.path, root_text))
            for s in vanished:
                lost.update(_folders_between(s.path, root_text))
            emptied = {folder for folder, n in lost.items()
                       if n > PRUNE_SAFETY_COUNT and n > PRUNE_SAFETY_SHARE * held[folder] and os.path.isdir(folder)}
            kept = [s for s in vanished if emptied & set(_folders_between(s.path, root_text))]
            if kept and not self.options.prune:
                self.summary.kept_missing += len(kept)
                for folder in sorted(f for f in emptied if not any(f != g and _is_under(f, g) for g in emptied)):
                    self.summary.warnings.append(
                        f"{lost[folder]} of the {held[folder]} catalogued photos under {printable(folder)} are missing; "
                        "they were kept with their people and albums (an unmounted share or an emptied "
                        "folder looks like this). If they were deleted, run again with --prune.")
                kept_ids = {s.id for s in kept}
                vanished = [s for s in vanished if s.id not in kept_ids]
            gone.update(s.id for s in vanished)
        self.summary.gone = self.catalog.mark_gone(sorted(gone))

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


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _folders_between(path: str, root: str) -> list[str]:
    """The folders holding ``path``, from its own up to ``root`` (included)."""
    out = []
    folder = os.path.dirname(path)
    while _is_under(folder, root):
        out.append(folder)
        if folder == root.rstrip(os.sep) or os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    return out


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


