"""Walking a scan's folders under a watchdog: a folder that stops answering (a hung network
share) ends the walk with an error instead of hanging the scan; other paths to files already
catalogued (hard links, symlinks, a folder reached twice) are recorded, not scanned again."""

from __future__ import annotations

import os
import time
from pathlib import Path

from faceclust.photos.walk import PhotoFile, walk_photos
from faceclust.records import PhotoResult, PhotoState
from faceclust.scan.options import ProgressEvent


class WalkingMixin:
    """The walk of :class:`~faceclust.scan.scanner.Scanner`."""

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
                files.extend(walk_photos(roots, errors, on_progress=tick, skipped=self.summary.skipped,
                                         sidecars=self._sidecars))
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
