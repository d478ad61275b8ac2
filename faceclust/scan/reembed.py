"""Re-embedding: faces found earlier get descriptors from a new or changed model, decoded and
aligned again from their stored landmarks, never detected again."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from faceclust.cpu import compute_alone_on_this_thread
from faceclust.errors import FaceclustError
from faceclust.photos.decode import content_hash, decode_image, read_file
from faceclust.records import PhotoState
from faceclust.scan.options import ProgressEvent


class ReembedMixin:
    """Re-embedding for :class:`~faceclust.scan.scanner.Scanner`."""

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
            face_ids, marks, boxes, points = self.catalog.face_geometry(state.id)
            return face_ids, pool.submit(self._reembed_chips, state, marks, boxes, points, policy)

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

    def _reembed_chips(self, state: PhotoState, landmarks: np.ndarray, boxes: np.ndarray,
                       points: np.ndarray | None, policy) -> np.ndarray | None:
        t = time.perf_counter()
        compute_alone_on_this_thread()  # the resize: a core a worker
        try:
            data = read_file(Path(state.path), self.options.stall_seconds)
            if content_hash(data) != state.content_hash:
                return None  # changed since: the next scan redoes it
            image = decode_image(data, Path(state.path), policy, known_hash=state.content_hash)
        except FaceclustError as exc:
            self._note_error(state.path, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a batch job
            self._note_error(state.path, f"unexpected error while decoding ({type(exc).__name__}: {exc})")
            return None
        finally:
            self.timer.add("decode", t)
        return self.finder.chips(image, landmarks, boxes, points)

    def _write_reembedded(self, ids: list[np.ndarray], chips: list[np.ndarray]) -> None:
        if not ids:
            return
        vectors = self.finder.embed(self.finder.join(chips))
        t = time.perf_counter()
        self.catalog.write_embeddings(np.concatenate(ids), vectors, self.model_id)
        self.timer.add("sql", t)
