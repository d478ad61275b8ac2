"""How likely a suggestion's answer changes the people: a logistic regression per kind of
suggestion (two people, a face of nobody and a person, a doubtful face of a person) on the
cluster-to-cluster evidence: the mean distance over the cross pairs of faces, the closest
pair, the share of pairs closer than the same-person distance, and both sides' sizes.

A face-pair calibration (verify's) read at the mean distance says how alike two faces are; it
does not know that a face the clustering left alone is usually someone else, or that two
big people whose faces are close on average are usually look-alikes it kept apart on purpose.
This judge is fitted on what the clustering leaves: every suggestion on labelled libraries
after the default clustering, marked by whether the true answer changes the people
(``benchmarks/fit_judge.py``, which also measures it on each set with a judge fitted on the
others). One file per model: ``faceclust/find/judge.json`` for the default descriptor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

JUDGE_FILE = Path(__file__).with_name("judge.json")
KINDS = ("merge", "face", "member")
FEATURES = ("mean", "closest", "support", "log_smaller", "log_larger")
# How many answers the judge's own expectation counts for when a library's answers move it
# (Judge.adapted), for a kind fitted without several libraries to say (prior_answers): after 10
# answers of that kind, the library's rate and the judge's weigh the same.
ANSWER_PRIOR = 10
PRIOR_RANGE = (1.0, 100.0)


def prior_answers(changed, asked) -> float:
    """How many answers a judge's expectation for one kind of suggestion is worth, from how
    much that kind's rate (answers that changed the people) differs between the libraries it
    was fitted on: a Beta prior's strength by the method of moments, m (1 - m) / v - 1, with m
    the libraries' mean rate and v their rates' variance less what their sizes alone would
    give (binomial noise). Libraries that agree give a strong prior (the judge's rate holds
    until many answers say otherwise), libraries that disagree a weak one (this library's own
    answers soon decide). ANSWER_PRIOR with fewer than two libraries; within PRIOR_RANGE."""
    pairs = [(int(c), int(a)) for c, a in zip(changed, asked) if int(a) > 0]
    if len(pairs) < 2:
        return float(ANSWER_PRIOR)
    rates = np.array([c / a for c, a in pairs])
    m = float(rates.mean())
    if m <= 0.0 or m >= 1.0:
        return PRIOR_RANGE[1]
    noise = float(np.mean([m * (1 - m) / a for _c, a in pairs]))
    between = float(rates.var(ddof=1)) - noise
    if between <= 0.0:
        return PRIOR_RANGE[1]
    return float(min(max(m * (1 - m) / between - 1.0, PRIOR_RANGE[0]), PRIOR_RANGE[1]))


def features(evidence) -> np.ndarray:
    """float64 (n, len(FEATURES)) from :class:`faceclust.find.suggest.Evidence` records."""
    return np.array([[e.mean, e.closest, e.support, math.log(e.smaller), math.log(e.larger)] for e in evidence],
                    np.float64).reshape(-1, len(FEATURES))


@dataclass(frozen=True)
class Judge:
    model_id: str
    kinds: dict  # kind -> {"centre": [...], "scale": [...], "coef": [...], "intercept": float}
    info: dict = field(default_factory=dict, compare=False)

    def chances(self, evidence) -> np.ndarray:
        """P(the true answer changes the people) for each Evidence."""
        evidence = list(evidence)
        x = features(evidence)
        out = np.full(len(evidence), 0.5)
        kinds = np.array([e.kind for e in evidence])
        for kind, fit in self.kinds.items():
            rows = kinds == kind
            if rows.any():
                z = (x[rows] - np.asarray(fit["centre"])) / np.asarray(fit["scale"])
                out[rows] = 1 / (1 + np.exp(-(z @ np.asarray(fit["coef"]) + fit["intercept"])))
        return out

    def adapted(self, answers: dict) -> "Judge":
        """The judge with each kind's rate moved towards what this library's own answers showed.

        Libraries differ in how often a kind of question changes the people (a doubtful face
        of a person was wrong 62 times in 82 on lfw_dev, 12 in 106 on celeb25_web with YuNet's
        faces), and a judge fitted on other libraries carries their rates. ``answers`` maps a
        kind to ``{"asked": n, "changed": c, "expected": sum of the judge's chances when asked}``
        (:func:`faceclust.find.answers.note_answer` keeps them in the catalog). Each kind's
        intercept moves by logit(r) - logit(p), p the mean chance the judge gave the questions
        answered, r the rate they changed the people, shrunk towards p as if the kind's
        ``prior_answers`` (:func:`prior_answers`, set when fitted on several libraries; else
        ANSWER_PRIOR) more answers had come out as the judge expected (a prior shift, Saerens
        et al. 2002): the order within a kind stays, the order between kinds follows the
        answers."""
        kinds = {}
        for kind, fit in self.kinds.items():
            seen = answers.get(kind) or {}
            asked = int(seen.get("asked", 0))
            if asked <= 0:
                kinds[kind] = fit
                continue
            expected = min(max(float(seen.get("expected", 0.0)) / asked, 1e-3), 1 - 1e-3)
            prior = float(fit.get("prior_answers", ANSWER_PRIOR))
            rate = (float(seen.get("changed", 0)) + prior * expected) / (asked + prior)
            shift = math.log(rate / (1 - rate)) - math.log(expected / (1 - expected))
            kinds[kind] = {**fit, "intercept": float(fit["intercept"]) + shift}
        return Judge(self.model_id, kinds, self.info)

    def as_dict(self) -> dict:
        return {"model_id": self.model_id, "features": list(FEATURES), "kinds": self.kinds, "info": self.info}

    def save(self, path: Path) -> None:
        from faceclust.files import atomic_write

        atomic_write(path, json.dumps(self.as_dict(), indent=2) + "\n")


def fit_judge(model_id: str, evidence, changes, info: dict | None = None, c: float = 1.0,
              use: tuple[str, ...] = FEATURES, libraries=None) -> Judge:
    """A judge from Evidence records and whether each true answer changed the people, on the
    features in ``use`` (the others get no weight). ``libraries``: which library each record
    comes from; each kind's ``prior_answers`` is then measured across them."""
    from sklearn.linear_model import LogisticRegression

    evidence = list(evidence)
    x, y = features(evidence), np.asarray(changes, bool)
    kinds = np.array([e.kind for e in evidence])
    fitted, counts = {}, {}
    for kind in KINDS:
        rows = kinds == kind
        counts[kind] = {"candidates": int(rows.sum()), "changes": int(y[rows].sum())}
        if rows.sum() < 10 or len(set(y[rows].tolist())) < 2:
            continue  # too little to fit: that kind keeps even odds
        mask = np.array([f in use for f in FEATURES])
        centre, scale = x[rows].mean(axis=0), x[rows].std(axis=0) + 1e-9
        model = LogisticRegression(C=c, max_iter=1000).fit(((x[rows] - centre) / scale)[:, mask], y[rows])
        coef = np.zeros(len(FEATURES))
        coef[mask] = model.coef_[0]
        fitted[kind] = {"centre": centre.tolist(), "scale": scale.tolist(), "coef": coef.tolist(),
                        "intercept": float(model.intercept_[0])}
        if libraries is not None:
            names = np.asarray(list(libraries))[rows]
            found = sorted(set(names.tolist()))
            fitted[kind]["prior_answers"] = prior_answers([int(y[rows][names == n].sum()) for n in found],
                                                          [int((names == n).sum()) for n in found])
    return Judge(model_id, fitted, {**(info or {}), "counts": counts})


def load_judge(model_id: str, path: Path | None = None) -> Judge | None:
    """The judge fitted for ``model_id`` (None when the file is missing, unreadable or for
    another model)."""
    try:
        data = json.loads(Path(path or JUDGE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if data.get("model_id") != model_id or data.get("features") != list(FEATURES):
        return None
    return Judge(data["model_id"], data["kinds"], data.get("info", {}))
