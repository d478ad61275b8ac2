"""How many answers does a user need to correct the people? Merge suggestions, answered
truthfully from the labels, on the development sets.

    .venv/bin/python benchmarks/bench_suggest.py [--answers 50] [--sets lfw_dev celeba_train celeb25_web]

Each set's catalog (benchmarks/dev_catalogs.py) is copied, clustered with the defaults, then a
simulated user takes the top suggestion again and again: "yes" (faceclust merge, or move for a
face of nobody) when the majority labels agree (a lone face: its photo's label), else "no"
(faceclust apart, or reject --person), through the library functions the CLI calls. A
doubtful face of a person is answered yes (the face stays, pinned: move) when its label is the
person's majority label, else no (reject). BCubed F1 (bench_cluster's scorer) after 0, 10, 25 and 50 answers, and the
answers needed to reach 0.99 (if reached within ``--answers``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_cluster import load_catalog, score  # noqa: E402
from dev_catalogs import CACHE, SETS  # noqa: E402


def people_labels(catalog_path: Path) -> np.ndarray:
    """The person of every face, in load_catalog's order (-1: nobody)."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model

    with Catalog(catalog_path, create=False) as catalog:
        records = catalog.face_records(catalog_model(catalog).model_id)
    return records["person"][~np.isnan(records["vector"]).any(axis=1)]


def face_ids(catalog_path: Path) -> np.ndarray:
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model

    with Catalog(catalog_path, create=False) as catalog:
        records = catalog.face_records(catalog_model(catalog).model_id)
    return records["face_id"][~np.isnan(records["vector"]).any(axis=1)]


def simulate(name: str, source: Path, answers: int, members: bool = True, judge=None, adapt: bool = True,
             **options) -> dict:
    """``judge``: None for the shipped one (if it fits the model), False for none, or a Judge.
    ``adapt``: the answers are noted in the catalog as `faceclust serve` notes them, so the
    judge follows this library's rates (False: as before that existed)."""
    from faceclust.find.suggest import suggest_library
    from faceclust.people import (
        cluster_library,
        keep_apart,
        merge_people,
        move_face,
        reject_face,
        sort_faces,
    )

    work = Path(tempfile.mkdtemp(prefix="bench-suggest-"))
    catalog = work / "c.sqlite"
    shutil.copyfile(source, catalog)
    cluster_library(catalog)
    data = load_catalog(name, catalog)
    curve, reached, yes, start = {}, None, 0, time.perf_counter()
    for n in range(answers + 1):
        labels = people_labels(catalog)
        f1 = score(data, labels)["bcubed_f1"]
        if n in (0, 10, 25, 50) or n == answers:
            curve[n] = f1
        if reached is None and f1 >= 0.99:
            reached = n
        if n == answers:
            break
        top = suggest_library(catalog, limit=1, check_members=members, judge=judge, **options)
        if not top:
            curve.setdefault(n, f1)
            break
        s = top[0]
        majority = Counter(data.label[labels == s.a]).most_common(1)[0][0]
        if s.kind == "faces":  # several faces of nobody: the user ticks those that are s.a
            ids = face_ids(catalog)
            ticked = [f for f in s.faces_b if data.label[np.flatnonzero(ids == f)[0]] == majority]
            sort_faces(catalog, str(s.a), ticked, [f for f in s.faces_b if f not in ticked])
            yes += bool(ticked)
            continue
        if s.b is None:  # a face of nobody, or a doubtful face of s.a: its photo's label
            other = data.label[np.flatnonzero(face_ids(catalog) == s.face)[0]]
        else:
            other = Counter(data.label[labels == s.b]).most_common(1)[0][0]
        if majority == other:
            (move_face(catalog, s.face, str(s.a)) if s.b is None else merge_people(catalog, str(s.a), [str(s.b)], force=True))
            yes += 1
        elif s.b is None:
            reject_face(catalog, s.face, str(s.a))
        else:
            keep_apart(catalog, str(s.a), str(s.b))
        if adapt:  # as `faceclust serve` does with an answer
            from faceclust.catalog import Catalog
            from faceclust.find.answers import note_answer

            with Catalog(catalog) as cat:
                note_answer(cat, s, changed=(majority != other) if s.kind == "member" else (majority == other))
    shutil.rmtree(work)
    return {"set": name, "curve": curve, "reached": reached, "yes": yes, "identities": len(np.unique(data.label)),
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--no-members", action="store_true", help="no doubtful-face suggestions (the first version)")
    args = parser.parse_args()
    print(f"Command: `.venv/bin/python benchmarks/bench_suggest.py --answers {args.answers}` ({time.strftime('%Y-%m-%d')})\n")
    print("| set | identities | F1 after 0 | 10 | 25 | 50 answers | answers to reach 0.99 | of which yes | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        r = simulate(name, CACHE / f"{name}.sqlite", args.answers, not args.no_members)
        c = r["curve"]
        cells = [f"{c[k]:.4f}" if k in c else "" for k in (0, 10, 25, 50)]
        print(f"| {name} | {r['identities']} | {' | '.join(cells)} | "
              f"{r['reached'] if r['reached'] is not None else f'not within {args.answers}'} | {r['yes']} | "
              f"{r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
