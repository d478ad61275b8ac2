"""Fit the suggestion judge (faceclust/find/judge.py) on the development sets, and measure it
the honest way: each set's answers are simulated with a judge fitted on the other sets only.

    .venv/bin/python benchmarks/fit_judge.py [--answers 50] [--write]

For each set (benchmarks/dev_catalogs.py), the catalog is clustered with the defaults and
every suggestion is listed with its evidence and whether the true answer (from the labels)
changes the people. Then, per set: the answers a simulated user needs (bench_suggest's
simulation) with the distance ranking (no judge), with a judge fitted on the other two sets,
and with the judge fitted on all three (the one ``--write`` ships; in-sample there).
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

from bench_cluster import load_catalog  # noqa: E402
from bench_suggest import face_ids, people_labels, simulate  # noqa: E402
from dev_catalogs import CACHE, SETS  # noqa: E402


def candidates(name: str, source: Path) -> tuple[list, list, str]:
    """(evidence, whether the true answer changes the people, model id) of every suggestion
    after the default clustering."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model
    from faceclust.find.suggest import suggest_library
    from faceclust.people import cluster_library

    work = Path(tempfile.mkdtemp(prefix="fit-judge-"))
    catalog = work / "c.sqlite"
    shutil.copyfile(source, catalog)
    cluster_library(catalog)
    with Catalog(catalog) as cat:
        model_id = catalog_model(cat).model_id
    data = load_catalog(name, catalog)
    labels, ids = people_labels(catalog), face_ids(catalog)
    majority = {p: Counter(data.label[labels == p]).most_common(1)[0][0] for p in np.unique(labels[labels >= 0])}
    label_of = dict(zip(ids.tolist(), data.label.tolist()))
    evidence, changes = [], []
    for s in suggest_library(catalog, limit=None, judge=False, group_faces=False):
        if s.kind == "merge":
            change = majority[s.a] == majority[s.b]
        elif s.kind == "face":
            change = label_of[s.face] == majority[s.a]
        else:
            change = label_of[s.face] != majority[s.a]
        evidence.append(s.evidence)
        changes.append(bool(change))
    shutil.rmtree(work)
    return evidence, changes, model_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--write", action="store_true", help="write faceclust/find/judge.json (fitted on all sets)")
    parser.add_argument("--features", nargs="+", default=None, help="a subset of the judge's features")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--skip-plain", action="store_true", help="leave out the ranking without a judge")
    parser.add_argument("--measure", nargs="+", default=None,
                        help="simulate answers on these sets only (the judges are still fitted on --sets)")
    parser.add_argument("--no-groups", action="store_true", help="faces of nobody asked about one by one")
    parser.add_argument("--by-chance", action="store_true", help="rank by chance, not by faces put right")
    parser.add_argument("--no-adapt", action="store_true",
                        help="the judge does not follow the library's own answers (as before 2026-12-07)")
    parser.add_argument("--fixed-prior", action="store_true",
                        help="every kind's expectation counts for ANSWER_PRIOR answers (as before the "
                             "evening of 2026-12-07), not for what the libraries' rates say")
    args = parser.parse_args()
    from faceclust.find.judge import FEATURES, JUDGE_FILE, fit_judge

    use = tuple(args.features or FEATURES)
    unknown = set(use) - set(FEATURES)
    if unknown:
        raise SystemExit(f"unknown features {sorted(unknown)}; the judge's are {', '.join(FEATURES)}")

    data = {}
    for name in args.sets:
        data[name] = candidates(name, CACHE / f"{name}.sqlite")
        counts = Counter((e.kind, c) for e, c in zip(data[name][0], data[name][1]))
        print(f"{name}: {len(data[name][0])} suggestions; changes by kind: "
              + ", ".join(f"{k} {counts[(k, True)]}/{counts[(k, True)] + counts[(k, False)]}"
                          for k in ("merge", "face", "member")), file=sys.stderr)
    model_id = data[args.sets[0]][2]
    def library_of(names):  # which library each candidate comes from: each kind's prior_answers
        return None if args.fixed_prior else [n for n in names for _ in data[n][0]]

    everything = fit_judge(model_id, [e for n in args.sets for e in data[n][0]],
                           [c for n in args.sets for c in data[n][1]],
                           {"fitted_on": list(args.sets), "fitted_at": time.strftime("%Y-%m-%d"),
                            "features_used": list(use), "C": args.C,
                            "command": " ".join(["benchmarks/fit_judge.py", *sys.argv[1:]])}, args.C, use,
                           library_of(args.sets))
    if args.write:
        everything.save(JUDGE_FILE)
        print(f"wrote {JUDGE_FILE}", file=sys.stderr)
    print(f"Command: `.venv/bin/python benchmarks/fit_judge.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')})\n")
    print("| set | identities | ranking | F1 after 0 | 10 | 25 | 50 answers | answers to reach 0.99 | of which yes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.measure or args.sets:
        others = [n for n in args.sets if n != name]
        held_out = fit_judge(model_id, [e for n in others for e in data[n][0]], [c for n in others for c in data[n][1]],
                             None, args.C, use, library_of(others))
        print(f"held out {name}: prior answers by kind " + ", ".join(
            f"{k} {f.get('prior_answers', 'fixed')}" for k, f in held_out.kinds.items()), file=sys.stderr)
        rankings = [("by distance (no judge)", False)] * (not args.skip_plain) + [
            (f"judge fitted on {' + '.join(others)}", held_out), ("judge fitted on all three (in-sample)", everything)]
        for label, judge in rankings:
            r = simulate(name, CACHE / f"{name}.sqlite", args.answers, True, judge, not args.no_adapt,
                         group_faces=not args.no_groups, by_gain=not args.by_chance)
            c = r["curve"]
            cells = [f"{c[k]:.4f}" if k in c else "" for k in (0, 10, 25, 50)]
            reached = r["reached"] if r["reached"] is not None else f"not within {args.answers}"
            print(f"| {name} | {r['identities']} | {label} | {' | '.join(cells)} | {reached} | {r['yes']} |", flush=True)


if __name__ == "__main__":
    main()
