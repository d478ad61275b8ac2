"""Stable people: clusters of faces that last across runs.

Clustering gives labels; this module turns them into people with stable ids, and keeps every
decision the user made. Re-running after new photos were scanned keeps existing people and
only adds or grows them (new faces are recognised by their nearest named faces, the rest are
clustered among themselves); ``full=True`` re-clusters everything and matches the new clusters
to the old people by their faces. Manual decisions are constraints: faces the user placed stay
(must-link), two people the user kept apart stay apart, a rejected face never returns to the
person that rejected it, and two faces of one photo are never one person.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from faceclust.people.nearest import near_any_of, nearest_among_people, unit_rows
from faceclust.records import AssignmentTable, FaceTable

# Chord distance between L2-normalised descriptors, the clustering threshold; chosen by
# benchmarks/bench_people.py (best BCubed F1 of 0.30-0.42 on both sets, see docs/benchmarks.md).
DEFAULT_RECOGNITION_THRESHOLD = 0.35
RECOGNITION_NEIGHBOURS = 10
RECOGNITION_AGREEMENT = 0.6
# Up to this many (new face, assigned face) pairs, recognition searches exactly (matrix
# products): 10,000 new faces in a library of a million. Training an inverted file over a
# large library costs more than that (benchmarks/bench_incremental.py).
EXACT_RECOGNITION_PAIRS = 10_000 * 1_000_000
# Above this many assigned faces, recognition looks for a new face's nearest assigned faces
# among the people whose mean descriptor is nearest to it (RECOGNITION_PEOPLE of them), not
# among every assigned face: at a million faces the same decisions as the exact search
# (benchmarks/bench_incremental.py) in a fraction of its time.
PREFILTER_ABOVE = 200_000
RECOGNITION_PEOPLE = 20
# New faces that no person recognised are clustered again with the unknown faces among the
# nearest of each of them (as many as the clusterer's k-NN lists hold): only those can form a
# new person with them, and a large library's many unknown faces are not clustered every run.
POOL_NEIGHBOURS = 30


@dataclass(frozen=True)
class ClusterOptions:
    """What ``faceclust cluster`` asks; ``None`` means the library's default."""

    method: str | None = None
    min_faces: int | None = None
    min_face_size: float = 0.0
    min_score: float | None = None
    full: bool = False
    recognition_threshold: float | None = None
    method_options: dict = field(default_factory=dict)
    # Multiplies the default distance thresholds (not those given here): a fine-tuned model
    # records how its distances compare with the pretrained model's (see embed.ModelChoice).
    distance_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.min_face_size < 0:
            raise ValueError("min_face_size must be >= 0")
        if self.recognition_threshold is not None and not 0 < self.recognition_threshold < 2:
            raise ValueError("recognition_threshold must be between 0 and 2")
        if not 0 < self.distance_scale < 10:
            raise ValueError("distance_scale must be between 0 and 10")

    @property
    def threshold_for_recognition(self) -> float:
        if self.recognition_threshold is not None:
            return self.recognition_threshold
        return DEFAULT_RECOGNITION_THRESHOLD * self.distance_scale

    def clusterer_options(self) -> dict:
        """``method_options`` plus the method's default distance thresholds times ``distance_scale``."""
        options = {k: v for k, v in self.method_options.items() if v is not None}
        if self.distance_scale == 1.0:
            return options
        from faceclust.people.cluster import DEFAULT_METHOD, clusterers

        defaults = clusterers.create(self.method or DEFAULT_METHOD).get_params()
        for name, value in defaults.items():
            if name.endswith("threshold") and isinstance(value, float) and name not in options:
                options[name] = value * self.distance_scale
        return options


@dataclass
class ClusterSummary:
    faces: int = 0
    eligible: int = 0
    mode: str = "incremental"
    recognized: int = 0
    new_people: int = 0
    grown_people: int = 0
    people: int = 0
    assigned: int = 0
    unknown: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class PeopleClusterer:
    """One clustering run over a catalog."""

    def __init__(self, catalog, model_id: str, options: ClusterOptions | None = None, progress=None) -> None:
        self.catalog = catalog
        self.model_id = model_id
        self.options = options or ClusterOptions()
        self.summary = ClusterSummary()
        self.progress = progress or (lambda event: None)

    def run(self) -> ClusterSummary:
        from faceclust.records import ProgressEvent

        start = time.perf_counter()
        self.progress(ProgressEvent("cluster", 0, 3))
        table = self.catalog.face_table(self.model_id)
        assignments = self.catalog.assignment_table()
        rejected = self.catalog.rejections()
        eligible = self._eligible(table)
        self.summary.faces, self.summary.eligible = len(table), int(eligible.sum())
        full = self.options.full or assignments.user.all()
        self.summary.mode = "full" if full else "incremental"
        self._fresh = 0
        # Faces an earlier run saw: they stay in the catalog's list (a million rows not written
        # again), and an incremental run leaves them where they are.
        seen = np.isin(table.face_ids, np.fromiter(self.catalog.clustered_faces(), np.int64))
        self.progress(ProgressEvent("cluster", 1, 3, faces=int(eligible.sum())))
        if full:
            rows = self._full(table, eligible, self.catalog.assignments(), rejected)
        else:
            rows = self._incremental(table, eligible, assignments, rejected, seen)
        self.progress(ProgressEvent("cluster", 2, 3, faces=int(eligible.sum())))
        # Everything is written at once (people, assignments, the faces seen), as one undoable
        # history entry: a scan or a decision in between never sees half a clustering.
        with self.catalog.recorded("cluster", "cluster") as entry:
            self.catalog.write_clustering(rows, self._fresh, replace=full, clustered=table.face_ids[eligible & ~seen])
            entry.description = (f"cluster ({self.summary.mode}): {self.summary.new_people} new people, "
                                 f"{self.summary.recognized} faces recognised")
            entry.details = {"method": self.options.method, "mode": self.summary.mode,
                             "new_people": self.summary.new_people}
        self.progress(ProgressEvent("cluster", 3, 3, faces=int(eligible.sum())))
        self.summary.people, self.summary.assigned = self.catalog.people_totals()
        self.summary.unknown = self.summary.faces - self.summary.assigned
        self.summary.seconds = time.perf_counter() - start
        return self.summary

    def _eligible(self, table: FaceTable) -> np.ndarray:
        keep = table.widths >= self.options.min_face_size
        if self.options.min_score is not None:
            keep &= table.scores >= self.options.min_score
        return keep

    # -- clustering everything ----------------------------------------------------------------

    def _full(self, table: FaceTable, eligible: np.ndarray, assigned: dict, rejected: list) -> list:
        from faceclust.people.cluster import cluster_faces

        rows = np.nonzero(eligible)[0]
        face_ids = table.face_ids[rows]
        position = {int(f): i for i, f in enumerate(face_ids)}
        pinned: dict[int, list[int]] = defaultdict(list)
        current: dict[int, list[int]] = defaultdict(list)
        pinned_photos: set[tuple[int, int]] = set()
        for face, (person, source) in sorted(assigned.items()):
            if face in position:
                current[person].append(position[face])
                photo = int(table.photo_ids[position[face]])
                # A person holding two faces of one photo (merged by an older faceclust) pins
                # one of them: the same-photo rule would otherwise make the pins impossible.
                if source == "user" and (person, photo) not in pinned_photos:
                    pinned[person].append(position[face])
                    pinned_photos.add((person, photo))
        cannot = self._cannot_link(pinned, current, rejected, position)
        labels = cluster_faces(table.vectors[rows], groups=table.photo_ids[rows],
                               method=self.options.method, min_faces=self.options.min_faces,
                               cannot_link=cannot, must_link=list(pinned.values()),
                               **self.options.clusterer_options())
        people = self._match_clusters(labels, face_ids, assigned)
        forbidden = set(rejected)
        out = []
        for i, label in enumerate(labels):
            if label < 0:
                continue
            face = int(face_ids[i])
            person = people[int(label)]
            if (face, person) in forbidden:
                continue
            source = "user" if assigned.get(face, (None, ""))[1] == "user" else "cluster"
            out.append((face, person, source))
        # Faces the user placed but clustering could not use (too small now) stay where they are,
        # unless their person already has a face of that photo.
        placed = {f for f, _, _ in out}
        photo_of = dict(zip(table.face_ids.tolist(), table.photo_ids.tolist()))
        taken = {(p, photo_of.get(f)) for f, p, _ in out}
        for f, (p, s) in sorted(assigned.items()):
            photo = photo_of.get(f)  # None: a face clustering does not see (its photo is hidden)
            if s == "user" and f not in placed and (photo is None or (p, photo) not in taken):
                out.append((f, p, s))
                taken.add((p, photo))
        return out

    @staticmethod
    def _cannot_link(pinned: dict, current: dict, rejected: list, position: dict) -> np.ndarray:
        pairs = []
        # Two people the user shaped are two people: one face of each group keeps them apart.
        heads = [members[0] for members in pinned.values()]
        for i, a in enumerate(heads):
            pairs.extend((a, b) for b in heads[i + 1:])
        for face, person in rejected:
            if face in position:
                others = pinned.get(person) or current.get(person, [])
                pairs.extend((position[face], o) for o in others[:200] if o != position[face])
        return np.array(pairs, np.int64).reshape(-1, 2)

    def _match_clusters(self, labels: np.ndarray, face_ids: np.ndarray, assigned: dict) -> dict[int, int]:
        """Cluster label -> person id: each old person goes to the cluster holding most of its
        faces (user-placed faces decide first), the other clusters become new people."""
        votes: Counter = Counter()
        for label, face in zip(labels.tolist(), face_ids.tolist()):
            if label >= 0 and face in assigned:
                person, source = assigned[face]
                votes[(label, person)] += 1_000_000 if source == "user" else 1
        mapping: dict[int, int] = {}
        taken: set[int] = set()
        for (label, person), _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
            if label not in mapping and person not in taken:
                mapping[label] = person
                taken.add(person)
        fresh = sorted(set(int(x) for x in labels if x >= 0) - set(mapping))
        for label, person in zip(fresh, self._placeholders(len(fresh))):
            mapping[label] = person
        self.summary.new_people = len(fresh)
        return mapping

    def _placeholders(self, count: int) -> list[int]:
        """Ids standing for people created when the result is written (-1, -2, ...)."""
        out = list(range(-self._fresh - 1, -self._fresh - count - 1, -1))
        self._fresh += count
        return out

    # -- adding to existing people --------------------------------------------------------------

    def _incremental(self, table: FaceTable, eligible: np.ndarray, assignments: AssignmentTable,
                     rejected: list, seen: np.ndarray) -> list:
        from faceclust.people.cluster import cluster_faces

        # Only faces no clustering has seen are placed: a re-run with nothing new changes nothing.
        # Faces left unknown before may still form a new person together with new faces.
        person = assignments.people_of(table.face_ids)
        is_assigned = person >= 0
        known_rows = np.flatnonzero(is_assigned)
        new = np.flatnonzero(~is_assigned & ~seen & eligible)
        old_unknown = np.flatnonzero(~is_assigned & seen & eligible)
        out = self._recognize(table, known_rows, new, person[known_rows], set(rejected))
        self.summary.recognized = len(out)
        grown = {p for _, p, _ in out}
        taken = {f for f, _, _ in out}
        rest = np.array([i for i in new.tolist() if int(table.face_ids[i]) not in taken], np.int64)
        if len(rest):
            pool = np.concatenate([rest, near_any_of(table.vectors, rest, old_unknown, POOL_NEIGHBOURS)])
            labels = cluster_faces(table.vectors[pool], groups=table.photo_ids[pool],
                                   method=self.options.method, min_faces=self.options.min_faces,
                                   **self.options.clusterer_options())
            with_new = set(labels[: len(rest)].tolist())
            labels = np.where(np.isin(labels, list(with_new)), labels, -1)
            rest = pool
            fresh = sorted(set(int(x) for x in labels if x >= 0))
            people = dict(zip(fresh, self._placeholders(len(fresh))))
            self.summary.new_people = len(fresh)
            out += [(int(table.face_ids[i]), people[int(lab)], "cluster")
                    for i, lab in zip(rest.tolist(), labels.tolist()) if lab >= 0]
        self.summary.grown_people = len(grown)
        return out

    def _recognize(self, table: FaceTable, known: np.ndarray, free: np.ndarray, known_people: np.ndarray,
                   rejected: set) -> list:
        """New faces join a person when their nearest assigned faces agree on it within the
        threshold; the same-photo rule and rejections hold. ``known_people``: the person of
        each row of ``known``."""
        if not len(known) or not len(free):
            return []
        from faceclust.catalog.index import EXACT_LIMIT, FaceIndex

        k = min(RECOGNITION_NEIGHBOURS, len(known))
        if len(known) > PREFILTER_ABOVE:
            # The table's own vectors, made unit in place: no copy of a million rows (what the
            # clusterer is given later is unit anyway, unless it was asked not to normalise).
            vectors = unit_rows(table.vectors, in_place=self.options.method_options.get("normalize") is not False)
            found = nearest_among_people(vectors, known_people, vectors[free], k,
                                         candidates=RECOGNITION_PEOPLE, rows=known)
        else:
            # Exact search unless the new faces are very many: it has perfect recall, and its
            # cost (new x known distances, matrix products) stays below that of training an
            # inverted file over a large library, which is what a nightly run would otherwise pay.
            exact = len(free) * len(known) <= EXACT_RECOGNITION_PAIRS
            index = FaceIndex.build(np.arange(len(known)), unit_rows(table.vectors[known]), "recognition",
                                    exact_limit=len(known) if exact else EXACT_LIMIT)
            found = index.search(unit_rows(table.vectors[free]), k)
        threshold = self.options.threshold_for_recognition
        # Who is already in the photos of the new faces (only those photos: a million otherwise).
        photo_people: dict[int, set[int]] = defaultdict(set)
        shared = np.isin(table.photo_ids[known], table.photo_ids[free])
        for photo, person in zip(table.photo_ids[known[shared]].tolist(), known_people[shared].tolist()):
            photo_people[photo].add(person)
        candidates = []
        for row, i in enumerate(free.tolist()):
            near = found.face_ids[row][(found.distances[row] < threshold) & (found.face_ids[row] >= 0)]
            if not len(near):
                continue
            people = known_people[near]
            person, count = Counter(people.tolist()).most_common(1)[0]
            if count < RECOGNITION_AGREEMENT * len(near):
                continue
            candidates.append((float(found.distances[row][0]), i, int(person)))
        out = []
        for _, i, person in sorted(candidates):  # closest first: it wins its photo's slot
            face, photo = int(table.face_ids[i]), int(table.photo_ids[i])
            if (face, person) in rejected or person in photo_people[photo]:
                continue
            photo_people[photo].add(person)
            out.append((face, person, "recognized"))
        return out


def cluster_library(catalog_path, options: ClusterOptions | None = None, model_id: str | None = None,
                    progress=None) -> ClusterSummary:
    """Cluster the catalog's faces into people (see :class:`PeopleClusterer`). ``progress``
    receives ProgressEvents of stage "cluster": reading the faces, grouping them, writing."""
    import dataclasses

    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model
    from faceclust.locks import catalog_lock

    options = options or ClusterOptions()
    with Catalog(catalog_path, create=False) as catalog, catalog_lock(catalog.path, "people"):
        model = catalog_model(catalog)
        if model_id is None or model_id == model.model_id:
            model_id = model.model_id
            distances = model.distances
            if options.distance_scale == 1.0:
                options = dataclasses.replace(options, distance_scale=distances.cluster_scale)
            if options.method is None:
                options = dataclasses.replace(options, method=distances.cluster_method)
        return PeopleClusterer(catalog, model_id, options, progress).run()
