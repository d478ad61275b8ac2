"""What the answers to suggestions say about this library: each answered suggestion is noted in
the catalog by kind (two people, a face of nobody, a doubtful face) with the shipped judge's
chance and whether the answer changed the people; the judge then follows those rates
(:meth:`faceclust.find.judge.Judge.adapted`), in :func:`faceclust.find.suggest.suggest_merges`
and when a kept queue is put in order again (:func:`rerank`)."""

from __future__ import annotations

import json

from faceclust.find.suggest import Suggestion, _gain, _judged

def rerank(catalog, suggestions: list, judge=None) -> list:
    """``suggestions`` (made by :func:`suggest_merges` on this catalog and kept between
    answers, as ``faceclust serve`` keeps its queue) in the order the judge gives them now that
    it follows the answers noted since (:func:`note_answer`), with their chances updated.
    ``judge``: the shipped one for the catalog's model when None. Without a judge, or for
    suggestions made without one, as they are."""
    from faceclust.faces.embed import catalog_model
    from faceclust.find.judge import load_judge

    judge = judge or load_judge(catalog_model(catalog).model_id)
    if judge is None or any(s.evidence is None or s.chance is None for s in suggestions):
        return suggestions
    judge = judge.adapted(answer_counts(catalog))
    keyed = []
    for position, s in enumerate(suggestions):
        parts = s.evidence.parts if s.evidence.kind == "faces" else (s.evidence,)
        chance = float(judge.chances(list(parts)).sum())
        _judged(s, chance)
        keyed.append((-_gain(chance, s.evidence), position, s))
    return [s for *_key, s in sorted(keyed, key=lambda k: k[:2])]


ANSWERS_SETTING = "suggestion_answers"


def answer_counts(catalog) -> dict:
    """Per kind of suggestion, what the answers given in this catalog did: ``{kind: {"asked",
    "changed", "expected"}}`` (see :func:`note_answer`)."""
    try:
        data = json.loads(catalog.setting(ANSWERS_SETTING) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def note_answer(catalog, suggestion: "Suggestion", changed: bool) -> None:
    """Remember that a suggestion of this kind was answered, the shipped judge's chance for it
    (before any following of this library's answers: :meth:`Judge.adapted` compares with that)
    and whether the answer changed the people (a merge, a face placed, a doubtful face taken
    out): later suggestions weigh each kind by how often it changed something in this library.
    Group questions and suggestions made without a judge are not counted."""
    if suggestion.judged is None or suggestion.kind not in ("merge", "face", "member"):
        return
    counts = answer_counts(catalog)
    seen = counts.setdefault(suggestion.kind, {"asked": 0, "changed": 0, "expected": 0.0})
    seen["asked"] = int(seen.get("asked", 0)) + 1
    seen["changed"] = int(seen.get("changed", 0)) + int(bool(changed))
    seen["expected"] = float(seen.get("expected", 0.0)) + float(suggestion.judged)
    catalog.set_setting(ANSWERS_SETTING, json.dumps(counts, sort_keys=True))
