"""Merge suggestions: pairs of people who may be one person, most likely first.

After a clustering, the fastest way to correct people is to answer "are these the same
person?" for the pairs most likely to be. Candidates are each person's nearest people (by the
mean of their unit descriptors), and each face of nobody with the people nearest it. A pair is
judged by the mean distance over all its cross pairs of faces (average linkage), turned into a
probability by the model's verify calibration: the chance that a typical face of one and a
typical face of the other are one person. Measured against ranking by the closest faces
(benchmarks/bench_suggest.py): look-alikes have a few very close faces and a far bulk, halves
of one person the reverse; answers needed to reach BCubed 0.99 fell from 48 to 3 on lfw_dev. Pairs that share a photo cannot be one person and are never
suggested; nor are pairs the user said are two people (:func:`keep_apart`).

A "yes" is a merge (``faceclust merge``), a "no" :func:`keep_apart`; both are history entries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

CLOSEST = 3  # the closest faces shown with a suggestion
NEIGHBOURS = 5  # candidate people per person
MAX_FACES = 300  # faces of one person compared (a fixed sample of a bigger person)
GROUP_MIN = 0.05  # a face of nobody joins a group question when at least this likely that person
GROUP_MAX = 24  # faces in one group question
MEMBER_DOUBT = 0.9  # a person's face is a candidate when P(same) from its mean distance is under this


@dataclass
class Suggestion:
    a: int  # the person with more faces (a yes merges b into a, or moves ``face`` into a)
    b: int | None  # None: the suggestion is a lone face (no person yet) for person a
    probability: float | None  # None when no calibration fits the model
    distance: float  # mean distance over the cross pairs of faces
    support: int  # cross pairs closer than the model's same-person distance
    faces_a: list[int]  # the closest faces of each, closest first
    faces_b: list[int]
    name_a: str | None = None
    name_b: str | None = None
    face: int | None = None  # the face in question, when b is None
    # "merge" (two people), "face" (a face of nobody), "faces" (several faces of nobody, in
    # faces_b: a yes with the ones that are a), "member" (a face of a that may not be a)
    kind: str = "merge"
    evidence: "Evidence | None" = field(default=None, repr=False, compare=False)  # what it was judged on
    # The judge's chance that the true answer changes the people (None without a judge), after
    # it followed this library's answers; ``judged``: the shipped judge's own, which is what
    # faceclust.find.answers.note_answer records (the library's answers are compared with what the judge expected).
    chance: float | None = None
    judged: float | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("evidence")
        out.pop("judged")
        return out


def suggest_merges(catalog, limit: int | None = 50, neighbours: int = NEIGHBOURS,
                   check_members: bool = True, judge=None, group_faces: bool = True,
                   by_gain: bool = True) -> list[Suggestion]:
    """The catalog's suggestions (at most ``limit``): pairs of people that may be one, faces of
    nobody that may be someone, and (with ``check_members`` and a calibration fitted to the
    model) faces that may not be their person.

    With a judge fitted to the model (:mod:`faceclust.find.judge`; ``judge=False``: none),
    faces of nobody that are most likely the same person come as one question
    (``group_faces``) and the answers expected to put the most faces right come first
    (``by_gain``). Else by the verify calibration's chance at the mean distance, else by mean
    distance."""
    from faceclust.faces.embed import catalog_model
    from faceclust.find.calibration import load_calibration

    model = catalog_model(catalog)
    records = catalog.face_records(model.model_id)
    keep = (records["person"] >= 0) & ~np.isnan(records["vector"]).any(axis=1)
    people = {p["id"]: p for p in catalog.people() if not p["hidden"]}
    keep &= np.isin(records["person"], list(people))
    person, vectors = records["person"][keep], records["vector"][keep].astype(np.float64)
    face_ids, photos = records["face_id"][keep], records["photo_id"][keep]
    ids, inverse = np.unique(person, return_inverse=True)
    if len(ids) < 2:
        return []
    calibration = load_calibration(None, model.model_id)
    fitted = calibration if calibration.model_id == model.model_id and calibration.features == "distance" else None
    same_person = model.distances.same_person
    apart = catalog.apart_pairs()
    groups = _groups(inverse, len(ids))
    rng = np.random.default_rng(0)
    members = [m if len(m) <= MAX_FACES else np.sort(rng.choice(m, MAX_FACES, replace=False)) for m in groups]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    centres = np.stack([unit[m].mean(axis=0) for m in members])
    photo_sets = [set(photos[g].tolist()) for g in groups]  # every photo, not the sample's
    partners: dict[int, list[int]] = {}
    for i, j in _candidate_pairs(centres, neighbours):
        a, b = int(ids[i]), int(ids[j])
        if tuple(sorted((a, b))) in apart or not photo_sets[i].isdisjoint(photo_sets[j]):
            continue
        partners.setdefault(i, []).append(j)
    # Judge every candidate with one distance matrix per person (against all its candidates'
    # faces at once); only the suggestions returned get their closest faces and probability.
    ranked = []  # (distance, -support, order, what, evidence)
    for i, js in partners.items():
        block = _distances(vectors[members[i]], vectors[np.concatenate([members[j] for j in js])])
        starts = np.cumsum([0] + [len(members[j]) for j in js[:-1]])
        sums = np.add.reduceat(block.sum(axis=0), starts)
        close = np.add.reduceat((block < same_person).sum(axis=0), starts)
        nearest = np.minimum.reduceat(block.min(axis=0), starts)
        for j, total, support, low in zip(js, sums.tolist(), close.tolist(), nearest.tolist()):
            pairs = len(members[i]) * len(members[j])
            distance = round(total / pairs, 4)
            sizes = sorted((len(groups[i]), len(groups[j])))
            ranked.append((distance, -int(support), len(ranked), ("pair", i, j),
                           Evidence("merge", distance, low, support / pairs, *sizes)))
    ranked += _lone_faces(records, ids, groups, members, centres, vectors, photo_sets, catalog, neighbours,
                          same_person, len(ranked))
    if fitted is not None and check_members:
        ranked += _doubtful_members(catalog, groups, members, vectors, face_ids, same_person, fitted, len(ranked))
    from faceclust.find.judge import load_judge

    judge = load_judge(model.model_id) if judge is None else (judge or None)  # False: none
    shipped = judge
    if judge is not None:
        from faceclust.find.answers import answer_counts

        judge = judge.adapted(answer_counts(catalog))
    chance = _chances(ranked, fitted, judge)
    if chance is not None:  # the answer most likely to change the people first
        pairs = list(zip(chance, ranked))
        # Grouping faces and weighing answers by the faces they put right need chances that
        # know what the clustering left (a judge): a face-pair calibration overrates big look-alikes.
        judged = judge is not None
        if group_faces and judged:
            pairs = _grouped(pairs, records["photo_id"])
        pairs.sort(key=lambda cr: (-_gain(cr[0], cr[1][4]) if by_gain and judged else -cr[0], cr[1][:3]))
    else:
        pairs = sorted(((None, r) for r in ranked), key=lambda cr: cr[1][:3])
    pairs = pairs[:limit] if limit else pairs
    out = []
    for c, (distance, negative, _order, what, evidence) in pairs:
        s = _suggestion(what, distance, -negative, ids, groups, members, vectors, face_ids, people, records, fitted)
        s.evidence = evidence
        if judge is not None:
            _judged(s, c)
            if evidence.kind in ("merge", "face", "member"):
                s.judged = float(shipped.chances([evidence])[0])
        out.append(s)
    return out


def _judged(s: "Suggestion", chance: float) -> None:
    """A suggestion's chance and the judge's view of "the same person" (for a group: on average)."""
    kind = s.evidence.kind
    same = 1 - chance if kind == "member" else chance / s.evidence.smaller if kind == "faces" else chance
    s.probability = round(same, 4)
    s.chance = round(float(chance), 4)


def _gain(chance: float, evidence: "Evidence") -> float:
    """Faces an answer is expected to put right: a merge moves the smaller person's faces, a
    group of faces of nobody each of its faces (``chance`` is their sum), others one face."""
    return chance * evidence.smaller if evidence.kind == "merge" else chance


def _grouped(pairs: list, photo_of: np.ndarray) -> list:
    """Faces of nobody asked about together: each face goes to the group of the person it most
    likely is (if at least GROUP_MIN likely), and a group of two or more becomes one question
    ("are these faces X?") whose chance is the sum of theirs; its other candidates are dropped.
    A group holds one face of a photo (one person appears once in a photo: ticking two would be
    refused); a less likely face of the same photo is asked about on its own."""
    best: dict[int, tuple] = {}
    for c, r in pairs:
        if r[3][0] == "lone" and c >= GROUP_MIN and (r[3][1] not in best or c > best[r[3][1]][0]):
            best[r[3][1]] = (c, r)
    groups: dict[int, list] = {}
    for c, r in best.values():
        groups.setdefault(r[3][2], []).append((c, r))
    out = [(c, r) for c, r in pairs if r[3][0] != "lone"]
    for k, found in groups.items():
        found.sort(key=lambda cr: (-cr[0], cr[1][:3]))
        kept, photos = [], set()
        for c, r in found:
            photo = int(photo_of[r[3][1]])
            (out if photo in photos else kept).append((c, r))
            photos.add(photo)
        found = kept[:GROUP_MAX]
        if len(found) == 1:
            out.append(found[0])
            continue
        rows = [r[3][1] for _c, r in found]
        first = found[0][1]
        evidence = Evidence("faces", round(float(np.mean([r[4].mean for _c, r in found])), 4),
                            min(r[4].closest for _c, r in found), float(np.mean([r[4].support for _c, r in found])),
                            len(found), first[4].larger, tuple(r[4] for _c, r in found))
        out.append((float(sum(c for c, _r in found)),
                    (evidence.mean, first[1], first[2], ("faces", rows, k), evidence)))
    return out


@dataclass(frozen=True)
class Evidence:
    """What a suggestion is judged on (the features of :mod:`faceclust.find.judge`)."""

    kind: str  # merge, face, member; "faces" for a group of faces of nobody (then smaller = the group's size)
    mean: float  # mean distance over the cross pairs of faces
    closest: float  # the closest cross pair
    support: float  # the share of cross pairs closer than the model's same-person distance
    smaller: int  # faces of the smaller side (1 for a single face)
    larger: int
    parts: tuple = field(default=(), compare=False)  # a group's faces' own Evidence


def _chances(ranked, calibration, judge) -> list[float] | None:
    """The chance that each candidate's answer changes the people: from the judge fitted to the
    model (:mod:`faceclust.find.judge`) if there is one, else from the verify calibration at the
    mean distance (a yes for a pair or a face of nobody, a no for a face of a person); None
    without either (then: by distance)."""
    if not ranked:
        return []
    if judge is not None:
        return judge.chances([r[4] for r in ranked]).tolist()
    if calibration is None:
        return None
    same = calibration.probabilities_at([r[0] for r in ranked])
    member = np.array([r[4].kind == "member" for r in ranked])
    return np.where(member, 1 - same, same).tolist()


def _doubtful_members(catalog, groups, members, vectors, face_ids, same_person, calibration,
                      first: int) -> list[tuple]:
    """Faces of a person (of 3 faces or more, not placed there by the user) that may not be
    that person: their mean distance to the person's other faces has a calibrated probability
    under MEMBER_DOUBT. Ranked candidates numbered from ``first``."""
    pinned = {face for face, (_person, source) in catalog.assignments().items() if source == "user"}
    limit = calibration.distance_at(MEMBER_DOUBT)
    out = []
    for k, (rows, sample) in enumerate(zip(groups, members)):
        if len(rows) < 3:
            continue
        d = _distances(vectors[rows], vectors[sample])
        in_sample = rows[:, None] == sample[None, :]
        d_other = np.where(in_sample, np.inf, d)
        others = len(sample) - in_sample.any(axis=1)
        mean = np.where(in_sample, 0, d).sum(axis=1) / others
        for r in np.flatnonzero(mean > limit).tolist():
            if int(face_ids[rows[r]]) in pinned:
                continue
            support = int((d_other[r] < same_person).sum())
            distance = round(float(mean[r]), 4)
            out.append((distance, -support, first + len(out), ("member", int(rows[r]), k),
                        Evidence("member", distance, float(d_other[r].min()), support / others[r], 1, len(rows) - 1)))
    return out


def _suggestion(what, distance, support, ids, groups, members, vectors, face_ids, people, records,
                fitted) -> Suggestion:
    probability = _probability(fitted, distance)
    if what[0] == "pair":
        _kind, i, j = what
        d = _distances(vectors[members[i]], vectors[members[j]])
        rows, cols = np.unravel_index(np.argsort(d, axis=None)[:CLOSEST], d.shape)
        fa, fb = face_ids[members[i]][rows], face_ids[members[j]][cols]
        if len(groups[i]) < len(groups[j]):  # a is the person with more faces (all, not the sample)
            i, j, fa, fb = j, i, fb, fa
        return Suggestion(int(ids[i]), int(ids[j]), probability, distance, support, list(dict.fromkeys(fa.tolist())),
                          list(dict.fromkeys(fb.tolist())), people[int(ids[i])]["name"], people[int(ids[j])]["name"])
    kind, row, k = what
    pid = int(ids[k])
    if kind == "faces":  # several faces of nobody that may be this person
        faces = [int(records["face_id"][r]) for r in row]
        group = records["vector"][row].astype(np.float64)
        d = _distances(group.mean(axis=0, keepdims=True), vectors[members[k]])[0]
        closest = members[k][np.argsort(d)[:CLOSEST]]
        return Suggestion(pid, None, None, distance, support, face_ids[closest].tolist(), faces,
                          people[pid]["name"], None, None, "faces")
    if kind == "member":  # row indexes the people's faces; shown with the person's most typical faces
        face = int(face_ids[row])
        others = members[k][members[k] != row]
        centre = vectors[others].mean(axis=0, keepdims=True)
        typical = others[np.argsort(_distances(centre, vectors[others])[0])[:CLOSEST]]
        return Suggestion(pid, None, probability, distance, support, face_ids[typical].tolist(), [face],
                          people[pid]["name"], None, face, "member")
    face = int(records["face_id"][row])
    d = _distances(records["vector"][row:row + 1].astype(np.float64), vectors[members[k]])[0]
    closest = np.argsort(d)[:CLOSEST]
    return Suggestion(pid, None, probability, distance, support, face_ids[members[k]][closest].tolist(), [face],
                      people[pid]["name"], None, face, "face")


def _groups(inverse: np.ndarray, count: int) -> list[np.ndarray]:
    """Row indices of each group 0..count-1, ascending (one sort, not a scan per group)."""
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=count))[:-1]
    return np.split(order, bounds)


def _lone_faces(records, ids, groups, members, centres, vectors, photo_sets, catalog, neighbours, same_person,
                first: int) -> list[tuple]:
    """Faces of nobody, each with the people nearest to it (not one it was rejected from, nor
    one already in its photo), as ranked candidates numbered from ``first``."""
    from faceclust.catalog.index import nearest_rows

    lone = np.flatnonzero((records["person"] < 0) & ~np.isnan(records["vector"]).any(axis=1))
    if not len(lone):
        return []
    rejected = set(catalog.rejections())
    x = records["vector"][lone].astype(np.float64)
    x_unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    order = nearest_rows(x_unit, centres, min(neighbours, len(centres)))
    lone_faces, lone_photos = records["face_id"][lone].tolist(), records["photo_id"][lone].tolist()
    wanted: dict[int, list[int]] = {}  # person index -> the lone rows that ask about it
    for row, (face, photo) in enumerate(zip(lone_faces, lone_photos)):
        for k in order[row].tolist():
            if (face, int(ids[k])) not in rejected and photo not in photo_sets[k]:
                wanted.setdefault(k, []).append(row)
    found = {}
    for k, rows in wanted.items():  # one distance matrix per person
        d = _distances(x[rows], vectors[members[k]])
        for row, mean, support, low in zip(rows, d.mean(axis=1).tolist(), (d < same_person).sum(axis=1).tolist(),
                                           d.min(axis=1).tolist()):
            distance = round(mean, 4)
            found[(row, k)] = (distance, -int(support),
                               Evidence("face", distance, low, support / d.shape[1], 1, len(groups[k])))
    # Numbered in the order of a face-by-face walk (faces in catalog order, nearest people first).
    out = []
    for row in range(len(x)):
        for k in order[row].tolist():
            if (row, k) in found:
                distance, negative, evidence = found[(row, k)]
                out.append((distance, negative, first + len(out), ("lone", int(lone[row]), k), evidence))
    return out


def _probability(calibration, distance: float) -> float | None:
    p = calibration.probability_at(distance) if calibration is not None else None
    return None if p is None else round(p, 4)


def _candidate_pairs(centres: np.ndarray, neighbours: int) -> list[tuple[int, int]]:
    """Each person with its nearest people by centre (pairs once, smaller index first)."""
    from faceclust.catalog.index import knn_graph

    _, nearest = knn_graph(centres.astype(np.float32), min(neighbours + 1, len(centres) - 1))
    pairs = {(min(i, int(j)), max(i, int(j))) for i, row in enumerate(nearest) for j in row if 0 <= j != i}
    return sorted(pairs)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d, 0))


def suggest_library(catalog_path, limit: int | None = 50, **options) -> list[Suggestion]:
    """:func:`suggest_merges` on the catalog at ``catalog_path`` (same options)."""
    from faceclust.catalog import Catalog

    with Catalog(catalog_path, create=False) as catalog:
        return suggest_merges(catalog, limit, **options)
