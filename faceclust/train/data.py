"""Labelled faces for training: which face of which photo belongs to whom, and their chips.

Two sources, both read from a catalog (so detection is the scan's, incremental and resumable):

* a folder per person, scanned into a private training catalog: the face of each photo is its
  only face, or, when the photo has several, the one closest to the person's other photos
  (the centroid of their single-face photos; of their largest faces when there are none);
* the people the user named in their own catalog, with the faces they rejected as known
  negatives of that person.

Chips are cut again from the stored landmarks (exactly as the scan cut them) and cached in one
``.npz`` per source, keyed by photo content and landmarks, so a second run decodes nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from faceclust.errors import FaceclustError


class TrainingDataError(FaceclustError):
    """The labelled data cannot give a training set (too few people or faces)."""


@dataclass
class LabelledFaces:
    """One row per training face. ``labels`` index ``names``; a known negative (a face the user
    rejected from a person) gets a label of its own, ``>= len(names)``, and ``negative_of`` names
    the person it is not (-1 for every other face)."""

    face_ids: np.ndarray  # int64 (n,)
    paths: np.ndarray  # object (n,)
    content_hashes: np.ndarray  # object (n,)
    landmarks: np.ndarray  # float32 (n, 5, 2), original pixels
    labels: np.ndarray  # int64 (n,)
    names: list[str]
    negative_of: np.ndarray  # int64 (n,)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.face_ids)

    def take(self, rows: np.ndarray) -> "LabelledFaces":
        return replace(self, face_ids=self.face_ids[rows], paths=self.paths[rows],
                       content_hashes=self.content_hashes[rows], landmarks=self.landmarks[rows],
                       labels=self.labels[rows], negative_of=self.negative_of[rows], info=dict(self.info))

    def identity_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels[self.labels < len(self.names)], minlength=len(self.names))
        return {name: int(c) for name, c in zip(self.names, counts)}

    def split(self, held_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, rows of the faces of ``held_out`` people drawn at random among those
        with at least 2 faces, kept out of training). Known negatives go with the person they
        were rejected from. ``held_out`` 0 gives no validation rows."""
        counts = np.bincount(self.labels[self.labels < len(self.names)], minlength=len(self.names))
        candidates = np.flatnonzero(counts >= 2)
        if held_out and (held_out < 2 or held_out > len(candidates) or len(self.names) - held_out < 2):
            raise TrainingDataError(
                f"cannot hold out {held_out} of {len(self.names)} people: validation needs at least 2 people "
                f"with 2 or more faces ({len(candidates)} have that many) and training at least 2 others; "
                "change --val-identities (0 turns validation off) or use --val-photos")
        val_ids = np.zeros(len(self.names), bool)
        val_ids[np.random.default_rng(seed).permutation(candidates)[:held_out]] = True
        person = np.where(self.labels < len(self.names), self.labels, self.negative_of)
        in_val = np.zeros(len(self), bool)
        known = person >= 0
        in_val[known] = val_ids[person[known]]
        return np.flatnonzero(~in_val), np.flatnonzero(in_val & (self.labels < len(self.names)))

    def split_photos(self, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, rows of ``fraction`` of each person's faces, drawn at random, kept
        out of training): validation on new photos of the same people, the question a user who
        trains on their own people asks. Known negatives all stay in training."""
        if not 0 < fraction < 1:
            raise TrainingDataError(f"--val-photos must be between 0 and 1, got {fraction}")
        rng = np.random.default_rng(seed)
        in_val = np.zeros(len(self), bool)
        for label in range(len(self.names)):
            rows = np.flatnonzero(self.labels == label)
            count = int(round(fraction * len(rows)))
            if len(rows) - count >= 2 and count >= 1:
                in_val[rng.choice(rows, size=count, replace=False)] = True
        if len(np.unique(self.labels[in_val])) < 2:
            raise TrainingDataError("validation on held-out photos needs at least 2 people with 3 or more "
                                    "faces; label more photos or turn validation off (--val-identities 0)")
        return np.flatnonzero(~in_val), np.flatnonzero(in_val)

    def summary(self) -> dict:
        counts = [c for c in self.identity_counts().values() if c]
        return {"people": len(counts), "faces": int((self.labels < len(self.names)).sum()),
                "known_negatives": int((self.negative_of >= 0).sum()),
                "faces_per_person_min": min(counts, default=0), "faces_per_person_max": max(counts, default=0),
                **self.info}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def faces_from_folders(catalog, root: Path, model_id: str) -> LabelledFaces:
    """One face per photo of a folder-per-person tree that was scanned into ``catalog``.

    A photo's person is its first folder under ``root``; photos directly in ``root`` are
    ignored; photos without a face are counted in ``info``."""
    from faceclust.evaluate import photo_label

    records = catalog.face_records(model_id)
    roots = {os.path.abspath(root), os.path.realpath(root)}
    label_of_photo: dict[int, str] = {}
    rows_of_photo: dict[int, list[int]] = defaultdict(list)
    for row, (photo, path) in enumerate(zip(records["photo_id"], records["path"])):
        label = next((lab for r in roots if (lab := photo_label(path, r)) is not None), None)
        if label is not None:
            label_of_photo[int(photo)] = label
            rows_of_photo[int(photo)].append(row)
    names = sorted(set(label_of_photo.values()))
    index = {name: i for i, name in enumerate(names)}
    vectors = _unit(np.nan_to_num(records["vector"]))
    area = np.prod(records["box"][:, 2:] - records["box"][:, :2], axis=1)
    photos_of: dict[str, list[int]] = defaultdict(list)
    for photo, label in label_of_photo.items():
        photos_of[label].append(photo)
    chosen, multi = [], 0
    for name in names:
        photos = photos_of[name]
        single = [rows_of_photo[p][0] for p in photos if len(rows_of_photo[p]) == 1]
        reference = single or [max(rows_of_photo[p], key=lambda r: area[r]) for p in photos]
        centre = _unit(vectors[reference].mean(axis=0, keepdims=True))[0]
        for photo in photos:
            rows = rows_of_photo[photo]
            if len(rows) > 1:
                multi += 1
                rows = [max(rows, key=lambda r: float(vectors[r] @ centre))]
            chosen.append(rows[0])
    chosen = np.array(sorted(chosen), np.int64)
    labels = np.array([index[label_of_photo[int(p)]] for p in records["photo_id"][chosen]], np.int64)
    info = {"source": str(root), "photos_with_several_faces": multi}
    return _labelled(records, chosen, labels, names, np.full(len(chosen), -1, np.int64), info)


MAX_FACES_PER_PERSON = 300


def faces_from_people(catalog, model_id: str, max_faces_per_person: int | None = MAX_FACES_PER_PERSON,
                      seed: int = 0) -> LabelledFaces:
    """The faces of the people the user named (hidden people left out), and every face the user
    rejected from one of them as a known negative of that person.

    At most ``max_faces_per_person`` faces of each person, drawn at random (a library can hold
    tens of thousands of faces of the family; their chips would not fit in memory, and a few
    people with most of the faces would dominate the batches). None: all of them."""
    records = catalog.face_records(model_id)
    people = {p["id"]: p["name"] for p in catalog.people() if p["name"] and not p["hidden"]}
    names = sorted(set(people.values()))
    index = {name: i for i, name in enumerate(names)}
    row_of_face = {int(f): i for i, f in enumerate(records["face_id"])}
    rows_of: dict[int, list[int]] = defaultdict(list)
    for row, person in enumerate(records["person"]):
        if int(person) in people:
            rows_of[index[people[int(person)]]].append(row)
    rng = np.random.default_rng(seed)
    chosen, labels, negative_of = [], [], []
    capped = 0
    for label, rows in sorted(rows_of.items()):
        if max_faces_per_person is not None and len(rows) > max_faces_per_person:
            capped += 1
            rows = sorted(rng.choice(rows, size=max_faces_per_person, replace=False).tolist())
        chosen.extend(rows)
        labels.extend([label] * len(rows))
        negative_of.extend([-1] * len(rows))
    next_label = len(names)
    named_now = {int(f) for f, p in zip(records["face_id"], records["person"]) if int(p) in people}
    for face, person in sorted(set(catalog.rejections())):
        # A rejected face that now belongs to a named person trains as that person only: one
        # chip, one label. (It can be rejected from several people: one row per rejection.)
        if person in people and face in row_of_face and face not in named_now:
            chosen.append(row_of_face[face])
            labels.append(next_label)
            negative_of.append(index[people[person]])
            next_label += 1
    info = {"source": "named people in the catalog", "people_capped": capped,
            "max_faces_per_person": max_faces_per_person}
    return _labelled(records, np.array(chosen, np.int64), np.array(labels, np.int64), names,
                     np.array(negative_of, np.int64), info)


def _labelled(records: dict, rows: np.ndarray, labels, names, negative_of, info) -> LabelledFaces:
    return LabelledFaces(records["face_id"][rows], records["path"][rows], records["content_hash"][rows],
                         records["landmarks"][rows], labels, list(names), negative_of, info)


# -- chips --------------------------------------------------------------------------------------


def _chip_keys(faces: LabelledFaces) -> np.ndarray:
    keys = [hashlib.sha1(f"{h}|".encode() + np.ascontiguousarray(m, "<f4").tobytes()).hexdigest()[:20]
            for h, m in zip(faces.content_hashes, faces.landmarks)]
    return np.array(keys, dtype="S20")


def load_chips(faces: LabelledFaces, cache_file: Path | None, finder=None, workers: int = 2,
               progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 chips (n, 150, 150, 3), bool ok (n,)) for ``faces``, from the cache where it holds
    them; the rest are cut from their photos (decoded as the scan decodes them) and cached.
    A photo that can no longer be read, or changed since it was scanned, gives ``ok = False``
    for its faces (scan it again)."""
    from faceclust.cpu import compute_alone_on_this_thread
    from faceclust.faces.finder import FaceFinder
    from faceclust.photos.decode import content_hash, decode_image, read_file

    keys = _chip_keys(faces)
    chips = np.zeros((len(faces), 150, 150, 3), np.uint8)
    ok = np.zeros(len(faces), bool)
    cached: dict[bytes, np.ndarray] = {}
    if cache_file is not None and Path(cache_file).is_file():
        try:
            with np.load(cache_file) as data:
                stored_keys, stored = data["keys"], data["chips"]
            cached = {k: i for i, k in enumerate(stored_keys)}
            for i, key in enumerate(keys):
                if key in cached:
                    chips[i], ok[i] = stored[cached[key]], True
        except (OSError, ValueError, KeyError, EOFError):
            cached = {}  # a damaged cache is rebuilt
    missing = np.flatnonzero(~ok)
    if len(missing):
        finder = finder or FaceFinder.create()
        policy = finder.scale_policy()
        by_path: dict[str, list[int]] = defaultdict(list)
        for i in missing:
            by_path[faces.paths[i]].append(int(i))

        def cut(path: str):
            compute_alone_on_this_thread()  # the resize: a core a worker
            rows = by_path[path]
            try:
                data = read_file(Path(path))
                if content_hash(data) != faces.content_hashes[rows[0]]:
                    return path, None  # changed since it was scanned: its landmarks no longer fit
                image = decode_image(data, Path(path), policy,
                                     known_hash=faces.content_hashes[rows[0]])
            except FaceclustError:
                return path, None
            return path, finder.chips(image, faces.landmarks[rows])

        with ThreadPoolExecutor(workers) as pool:
            for done, (path, cut_chips) in enumerate(pool.map(cut, list(by_path))):
                if cut_chips is not None:
                    chips[by_path[path]] = cut_chips
                    ok[by_path[path]] = True
                if progress:
                    progress(done + 1, len(by_path))
        if cache_file is not None:
            from faceclust.files import atomic_file

            Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(cache_file) as handle:
                np.savez(handle, keys=keys[ok], chips=chips[ok])
    return chips, ok
