"""The probability that two faces are the same person: a logistic regression on pair features,
fitted on labelled photos (faceclust calibrate), shipped fitted for the pretrained model;
and the pair statistics it is judged by."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from faceclust.errors import FaceclustError

DEFAULT_THRESHOLD = 0.6  # dlib's same-person distance for its ResNet descriptors
CALIBRATION_FILE = "calibration.json"  # for the default model
# Shipped calibrations of other models, found by the model id they name.
SHIPPED_CALIBRATIONS = (CALIBRATION_FILE, "calibration-dlib-resnet.json")


FEATURE_SETS = ("distance", "distance+squared", "distance+absdiff")


DEFAULT_FEATURES = "distance"


DEFAULT_MAX_NEGATIVES = 200_000


class CalibrationError(FaceclustError):
    """The calibration file is missing, damaged, or was fitted for another model."""


def pair_features(a: np.ndarray, b: np.ndarray, features: str = DEFAULT_FEATURES) -> np.ndarray:
    """Features of the pairs (a[i], b[i]): float64 (n, k).

    ``distance``: the Euclidean distance; ``distance+squared``: it and its square;
    ``distance+absdiff``: it and the per-dimension ``|a - b|``.
    """
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, got {features!r}")
    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    diff = a - b
    d = np.sqrt(np.sum(diff * diff, axis=1, keepdims=True))
    if features == "distance":
        return d
    if features == "distance+squared":
        return np.hstack([d, d * d])
    return np.hstack([d, np.abs(diff)])


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic regression: P(same) = sigmoid(intercept + coef · features(a, b))."""

    model_id: str
    features: str
    intercept: float
    coef: tuple[float, ...]
    threshold: float = DEFAULT_THRESHOLD
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.features not in FEATURE_SETS:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, got {self.features!r}")

    def logit(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x = pair_features(a, b, self.features)
        if x.shape[1] != len(self.coef):
            raise CalibrationError(f"the calibration has {len(self.coef)} weights but the pairs give "
                                   f"{x.shape[1]} features; was it fitted for descriptors of another size?")
        return self.intercept + x @ np.asarray(self.coef, np.float64)

    def probability(self, a: np.ndarray, b: np.ndarray, prior: float = 0.5) -> np.ndarray:
        """P(same person) for each pair (a[i], b[i]), at prior odds ``prior`` (default even)."""
        if not 0 < prior < 1:
            raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
        z = self.logit(a, b) + math.log(prior / (1 - prior))
        return 1.0 / (1.0 + np.exp(-z))

    def probability_at(self, distance: float, prior: float = 0.5) -> float | None:
        """P(same person) at a distance, for a calibration on the distance alone (else None)."""
        if self.features != "distance":
            return None
        return float(self.probability(np.zeros((1, 1)), np.array([[float(distance)]]), prior)[0])

    def probabilities_at(self, distances, prior: float = 0.5) -> np.ndarray | None:
        """P(same person) at each of ``distances``, for a calibration on the distance alone
        (else None)."""
        if self.features != "distance":
            return None
        z = self.intercept + self.coef[0] * np.asarray(distances, np.float64) + math.log(prior / (1 - prior))
        return 1.0 / (1.0 + np.exp(-z))

    def distance_at(self, probability: float, prior: float = 0.5) -> float | None:
        """The distance at which P(same person) is ``probability`` (distance calibrations with a
        falling probability only, else None)."""
        if self.features != "distance" or not self.coef[0] < 0 or not 0 < probability < 1:
            return None
        z = math.log(probability / (1 - probability)) - math.log(prior / (1 - prior))
        return (z - self.intercept) / self.coef[0]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["coef"] = list(self.coef)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        try:
            return cls(model_id=str(data["model_id"]), features=str(data["features"]),
                       intercept=float(data["intercept"]), coef=tuple(float(c) for c in data["coef"]),
                       threshold=float(data.get("threshold", DEFAULT_THRESHOLD)), info=dict(data.get("info", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"not a faceclust calibration ({exc}); fit one with 'faceclust calibrate'") from exc

    def save(self, path: Path) -> None:
        from faceclust.files import atomic_write

        atomic_write(Path(path), json.dumps(self.as_dict(), indent=2) + "\n")


def load_calibration(path: Path | str | None = None, model_id: str | None = None) -> Calibration:
    """The calibration in ``path``, or the one shipped with faceclust for ``model_id`` (the
    default model's when none is shipped for it, which then gives no probability)."""
    if path is not None:
        return _read_calibration(Path(path), str(path))
    shipped = [_read_calibration(None, name) for name in SHIPPED_CALIBRATIONS]
    return next((c for c in shipped if c.model_id == model_id), shipped[0])


def _read_calibration(path: Path | None, name: str) -> Calibration:
    try:
        if path is None:
            from importlib.resources import files

            text = files("faceclust.find").joinpath(name).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        where = path or f"faceclust/find/{name}"
        raise CalibrationError(f"cannot read the calibration {where}: {exc}; "
                               "fit one with 'faceclust calibrate LABELLED_DIR -o FILE'") from exc
    return Calibration.from_dict(data)


def fit_calibration(a: np.ndarray, b: np.ndarray, same: np.ndarray, features: str = DEFAULT_FEATURES,
                    model_id: str = "", info: dict | None = None) -> Calibration:
    """Fit P(same) on labelled pairs. Both classes weigh the same (even prior odds)."""
    from sklearn.linear_model import LogisticRegression

    same = np.asarray(same, bool)
    if same.all() or not same.any():
        raise FaceclustError("calibration needs both same-person and different-person pairs; "
                             "give a folder with at least one person photographed twice and two people")
    x = pair_features(a, b, features)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(x, same)
    return Calibration(model_id, features, float(model.intercept_[0]), tuple(float(c) for c in model.coef_[0]),
                       info=dict(info or {}))


def labelled_pairs(labels: Sequence, max_negatives: int = DEFAULT_MAX_NEGATIVES,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every same-label pair and up to ``max_negatives`` different-label pairs (all of them
    when there are no more; else a seeded uniform sample without repeats): (i, j, same), i < j."""
    truth = np.unique(np.asarray(labels), return_inverse=True)[1]
    n = len(truth)
    order = np.argsort(truth, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(truth[order]) != 0])
    ends = np.r_[starts[1:], n]
    pos_i, pos_j = [], []
    for s, e in zip(starts, ends):
        if e - s > 1:
            ii, jj = np.triu_indices(e - s, 1)
            members = np.sort(order[s:e])
            pos_i.append(members[ii])
            pos_j.append(members[jj])
    pi = np.concatenate(pos_i) if pos_i else np.zeros(0, np.int64)
    pj = np.concatenate(pos_j) if pos_j else np.zeros(0, np.int64)
    sizes = np.bincount(truth) if n else np.zeros(0, np.int64)
    total_negatives = n * (n - 1) // 2 - int(np.sum(sizes * (sizes - 1) // 2))
    if total_negatives <= max_negatives:
        ni, nj = np.triu_indices(n, 1)
        keep = truth[ni] != truth[nj]
        ni, nj = ni[keep], nj[keep]
    else:
        rng = np.random.default_rng(seed)
        found = np.zeros(0, np.int64)
        while len(found) < max_negatives:
            i = rng.integers(0, n, 2 * max_negatives)
            j = rng.integers(0, n, 2 * max_negatives)
            i, j = np.minimum(i, j), np.maximum(i, j)
            keys = (i * n + j)[truth[i] != truth[j]]
            # np.unique sorts: keep first-drawn order so the sample does not favour small indices.
            found = np.concatenate([found, keys])
            _, first = np.unique(found, return_index=True)
            found = found[np.sort(first)]
        found = found[:max_negatives]
        ni, nj = found // n, found % n
    i = np.concatenate([pi, ni]).astype(np.int64)
    j = np.concatenate([pj, nj]).astype(np.int64)
    same = np.r_[np.ones(len(pi), bool), np.zeros(len(ni), bool)]
    return i, j, same


def best_accuracy(same_distances: np.ndarray, different_distances: np.ndarray) -> tuple[float, float]:
    """(best balanced accuracy, its threshold): the mean of the same-person acceptance rate and
    the different-person rejection rate, best over thresholds "accept when distance < t".
    Equal to the plain accuracy on a set with as many pairs of each kind."""
    same = np.sort(np.asarray(same_distances, np.float64))
    diff = np.sort(np.asarray(different_distances, np.float64))
    if not len(same) or not len(diff):
        raise ValueError("best_accuracy needs pairs of both kinds")
    candidates = np.unique(np.concatenate([same, diff, [np.inf]]))
    accepted_same = np.searchsorted(same, candidates, side="left") / len(same)
    rejected_diff = 1 - np.searchsorted(diff, candidates, side="left") / len(diff)
    scores = (accepted_same + rejected_diff) / 2
    best = int(np.argmax(scores))
    return float(scores[best]), float(candidates[best])


def brier_score(probability: np.ndarray, same: np.ndarray) -> float:
    p = np.asarray(probability, np.float64)
    return float(np.mean((p - np.asarray(same, np.float64)) ** 2))


def reliability_table(probability: np.ndarray, same: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins of predicted probability: count, mean predicted, observed share same."""
    p = np.asarray(probability, np.float64)
    y = np.asarray(same, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows = []
    for k in range(bins):
        inside = which == k
        count = int(inside.sum())
        rows.append({"low": float(edges[k]), "high": float(edges[k + 1]), "pairs": count,
                     "predicted": float(p[inside].mean()) if count else float("nan"),
                     "observed": float(y[inside].mean()) if count else float("nan")})
    return rows


def expected_calibration_error(probability: np.ndarray, same: np.ndarray, bins: int = 10) -> float:
    """Pair-weighted mean |predicted - observed| over the reliability table's bins."""
    rows = reliability_table(probability, same, bins)
    total = sum(r["pairs"] for r in rows)
    return float(sum(r["pairs"] * abs(r["predicted"] - r["observed"]) for r in rows if r["pairs"]) / total)


@dataclass
class LabelledFaces:
    """One face per labelled photo (see :func:`labelled_faces`), aligned by row."""

    face_ids: np.ndarray  # int64 (n,)
    labels: np.ndarray  # str (n,): the identity folder
    paths: list[str]
    vectors: np.ndarray  # float32 (n, d)

    def __len__(self) -> int:
        return len(self.face_ids)


def labelled_faces(catalog, labelled_dir: Path, model_id: str) -> LabelledFaces:
    """One face for every catalogued photo inside an identity folder of ``labelled_dir``.

    Labels name a photo's main person; other faces are bystanders. A photo with one face gives
    it. Of several faces, the one nearest (median distance) to the other photos of its folder
    stands for the label, those photos being represented by their largest faces; with no other
    photo in the folder, the largest face does. Only photos with several faces are chosen by
    similarity, so easy pairs are barely favoured (on lfw_dev, the largest face alone is a
    bystander in 36 of 2,852 photos, which then count as same-person pairs of strangers).
    """
    import os

    from faceclust.evaluate import photo_label

    roots = {os.path.abspath(labelled_dir), os.path.realpath(labelled_dir)}
    photos: dict[str, list[tuple[float, int, np.ndarray]]] = {}
    label_of: dict[str, str] = {}
    for face_id, path, left, top, right, bottom, _score, vector, _person in catalog.iter_faces(model_id):
        if vector is None:
            continue
        label = next((lab for r in roots if (lab := photo_label(path, r)) is not None), None)
        if label is None:
            continue
        label_of[path] = label
        photos.setdefault(path, []).append(((right - left) * (bottom - top), face_id, np.frombuffer(vector, "<f4")))
    if not photos:
        raise FaceclustError(f"no catalogued face lies in an identity folder under {labelled_dir}; "
                             f"scan it first (faceclust scan {labelled_dir} --catalog FILE)")
    paths = sorted(photos)
    largest = {p: max(photos[p], key=lambda f: f[0]) for p in paths}
    by_label: dict[str, list[str]] = {}
    for p in paths:
        by_label.setdefault(label_of[p], []).append(p)
    chosen = []
    for p in paths:
        faces = photos[p]
        others = [largest[q][2] for q in by_label[label_of[p]] if q != p]
        if len(faces) == 1 or not others:
            chosen.append(largest[p])
            continue
        reference = np.stack(others).astype(np.float64)
        spread = [np.median(np.linalg.norm(reference - f[2], axis=1)) for f in faces]
        chosen.append(faces[int(np.argmin(spread))])
    vectors = np.stack([f[2] for f in chosen]).astype(np.float32)
    return LabelledFaces(np.array([f[1] for f in chosen], np.int64), np.array([label_of[p] for p in paths]),
                         paths, vectors)


def calibrate_library(catalog_path, labelled_dir: Path, out: Path, features: str | None = None,
                      max_negatives: int | None = None, model_id: str | None = None) -> dict:
    """Fit the calibration on the faces of ``labelled_dir`` (scanned into the catalog) and
    write it to ``out``. Returns a summary: pairs used, Brier score on those pairs."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model

    features = features or DEFAULT_FEATURES
    max_negatives = DEFAULT_MAX_NEGATIVES if max_negatives is None else max_negatives
    if max_negatives < 1:
        raise ValueError("max_negatives must be at least 1")
    from faceclust.catalog import protected_outputs

    with Catalog(catalog_path, create=False) as catalog:
        protected_outputs(catalog, out)
        model = catalog_model(catalog)
        # The threshold recorded beside the fit: the model's same-person distance (verify's default).
        same_person = model.distances.same_person if model_id in (None, model.model_id) else DEFAULT_THRESHOLD
        model_id = model_id or model.model_id
        faces = labelled_faces(catalog, Path(labelled_dir), model_id)
    i, j, same = labelled_pairs(faces.labels, max_negatives)
    info = {"fitted_on": Path(labelled_dir).resolve().name, "identities": int(len(np.unique(faces.labels))),
            "faces": len(faces), "same_pairs": int(same.sum()), "different_pairs": int((~same).sum()),
            "prior": 0.5, "fitted_at": time.strftime("%Y-%m-%d"),
            "command": f"faceclust calibrate {Path(labelled_dir).resolve().name} --features {features} "
                       f"--max-negatives {max_negatives}"}
    calibration = fit_calibration(faces.vectors[i], faces.vectors[j], same, features, model_id, info)
    calibration = dataclasses.replace(calibration, threshold=same_person)
    probability = calibration.probability(faces.vectors[i], faces.vectors[j])
    weights = np.where(same, 0.5 / max(same.sum(), 1), 0.5 / max((~same).sum(), 1))
    # Brier score at even odds: both kinds of pair weigh half, as in the fit.
    brier = float(np.sum(weights * (probability - same) ** 2))
    calibration.info["fit_brier_even_odds"] = round(brier, 5)
    calibration.save(Path(out))
    return {"out": str(out), "model_id": model_id, "features": features, "intercept": calibration.intercept,
            "coef": list(calibration.coef)[:4], **{k: v for k, v in info.items() if k != "command"},
            "fit_brier_even_odds": brier}
