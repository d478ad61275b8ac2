"""How few answers could correct the people at best? A greedy oracle on the development sets.

    .venv/bin/python benchmarks/oracle_answers.py [--answers 60] [--sets lfw_dev celeba_train celeb25_web]

Each set's catalog (benchmarks/dev_catalogs.py) is clustered with the defaults, as
bench_suggest.py and fit_judge.py do. Then, knowing the labels, the oracle takes again and again
the one answer that raises BCubed F1 (bench_cluster's scorer) the most, among the answers the
suggestion queue's kinds of question can give: two people of one label merged (a "yes" to
"are these the same person?"), every face of nobody of a person's label put into that person at
once (the most a group question, "are these faces X?", can do; at most suggest.GROUP_MAX faces;
a single face is a group of one), and a face taken out of a person whose label it does not
share (a "no" to a doubtful face). No ranking of suggestions can do better answer by answer,
so where this oracle needs more answers than a goal allows, the goal is out of reach for any
ranking of these questions: only a better clustering (or better descriptors) can reach it.
(Greedy is not guaranteed optimal over several answers, but the answers here barely interact:
each touches one person.)
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
from bench_suggest import people_labels  # noqa: E402
from dev_catalogs import CACHE, SETS  # noqa: E402


def answers(data, labels: np.ndarray, group_max: int):
    """Every answer the oracle may give now: (what, the people after it)."""
    people = np.unique(labels[labels >= 0])
    majority = {int(p): Counter(data.label[labels == p].tolist()).most_common(1)[0][0] for p in people}
    by_label: dict[str, list[int]] = {}
    for p, m in majority.items():
        by_label.setdefault(m, []).append(p)
    size = Counter(labels[labels >= 0].tolist())
    photos_of = {p: set(data.photo[labels == p].tolist()) for p in majority}
    nobody = np.flatnonzero(labels < 0)
    for m, ps in by_label.items():
        ps = sorted(ps, key=lambda p: -size[p])
        for p in ps[1:]:  # two people of one label: the smaller into the bigger
            if photos_of[p].isdisjoint(photos_of[ps[0]]):
                out = labels.copy()
                out[labels == p] = ps[0]
                yield ("merge", size[ps[0]], size[p]), out
        for p in ps:
            mine, seen = [], set(photos_of[p])  # one face of a photo, as a group question holds
            for i in nobody:
                if data.label[i] == m and int(data.photo[i]) not in seen:
                    mine.append(int(i))
                    seen.add(int(data.photo[i]))
            if mine:
                out = labels.copy()
                out[mine[:group_max]] = p
                yield ("faces", size[p], len(mine[:group_max])), out
    for p, m in majority.items():  # a doubtful face out (the first stray of each person)
        strays = np.flatnonzero((labels == p) & (data.label != m))
        if len(strays):
            out = labels.copy()
            out[strays[0]] = -1
            yield ("member", size[p], 1), out


def oracle(name: str, source: Path, limit: int, goal: float, group_max: int) -> dict:
    from faceclust.people import cluster_library

    work = Path(tempfile.mkdtemp(prefix="oracle-"))
    catalog = work / "c.sqlite"
    shutil.copyfile(source, catalog)
    cluster_library(catalog)
    data = load_catalog(name, catalog)
    labels = people_labels(catalog).astype(np.int64)
    shutil.rmtree(work)
    f1 = score(data, labels)["bcubed_f1"]
    curve, steps, reached = {0: f1}, [], 0 if f1 >= goal else None
    for n in range(1, limit + 1):
        if reached is not None:
            break
        best = max(((score(data, after)["bcubed_f1"], what, after) for what, after in answers(data, labels, group_max)),
                   key=lambda t: t[0], default=None)
        if best is None or best[0] <= f1:
            break
        f1, what, labels = best
        curve[n] = f1
        steps.append(what)
        if f1 >= goal:
            reached = n
    return {"set": name, "identities": len(np.unique(data.label)), "curve": curve, "reached": reached,
            "steps": steps}


def main() -> None:
    from faceclust.find.suggest import GROUP_MAX

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=60)
    parser.add_argument("--goal", type=float, default=0.99)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    args = parser.parse_args()
    print(f"Command: `.venv/bin/python benchmarks/oracle_answers.py --answers {args.answers}` "
          f"({time.strftime('%Y-%m-%d')})\n")
    print("| set | identities | F1 after 0 | 10 | 14 | 25 | 50 answers | answers to reach 0.99 | the first answers |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        r = oracle(name, CACHE / f"{name}.sqlite", args.answers, args.goal, GROUP_MAX)
        last = max(r["curve"])
        cells = [f"{r['curve'][min(k, last)]:.4f}" for k in (0, 10, 14, 25, 50)]
        first = ", ".join(f"{k} {a}+{b}" if k == "merge" else f"{k} {b} into {a}" if k == "faces" else f"{k} of {a}"
                          for k, a, b in r["steps"][:6])
        reached = r["reached"] if r["reached"] is not None else f"not within {args.answers}"
        print(f"| {name} | {r['identities']} | {' | '.join(cells)} | {reached} | {first} |", flush=True)


if __name__ == "__main__":
    main()
