"""Fit the suggestion judge (faceclust/find/judge.py) on the development sets, and measure it
the honest way: each set's answers are simulated with a judge fitted on the other sets only.

    .venv/bin/python benchmarks/fit_judge.py [--answers 50] [--write]

For each set (benchmarks/dev_catalogs.py), the catalog is clustered with the defaults and
every suggestion is listed with its evidence and whether the true answer (from the labels)
changes the people. Then, per set: the answers a simulated user needs (bench_suggest's
simulation) with the distance ranking (no judge), with a judge fitted on the other two sets,
and with the judge fitted on all three (the one ``--write`` ships; in-sample there).

"Answers to reach 0.99" is a threshold crossing: a few faces decide when a set crosses it.
``--variants N`` measures again on N - 1 versions of the catalogs with ``--drop`` (5%) of each
set's photos left out at random (seeds 1, 2, ...), judges fitted and answers simulated on each,
and ends with each set's figures side by side and their median.
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
    parser.add_argument("--variants", type=int, default=1,
                        help="measure on this many versions of the catalogs: as they are, then each with "
                             "--drop of its photos left out at random (how much a figure rests on a few faces)")
    parser.add_argument("--drop", type=float, default=0.05, help="share of photos left out in each variant")
    args = parser.parse_args()
    from faceclust.find.judge import FEATURES

    use = tuple(args.features or FEATURES)
    unknown = set(use) - set(FEATURES)
    if unknown:
        raise SystemExit(f"unknown features {sorted(unknown)}; the judge's are {', '.join(FEATURES)}")

    with tempfile.TemporaryDirectory(prefix="fit-judge-variants-") as scratch:
        found: dict[tuple, list] = {}
        for variant in range(args.variants):
            sources = {name: CACHE / f"{name}.sqlite" if variant == 0 else
                       without_some_photos(CACHE / f"{name}.sqlite", Path(scratch) / f"{name}-{variant}.sqlite",
                                           args.drop, variant) for name in args.sets}
            if args.variants > 1:
                print(f"\nVariant {variant}: " + ("the catalogs as they are" if variant == 0 else
                      f"{args.drop:.0%} of each set's photos left out at random (seed {variant})"))
            for key, reached in run_variant(args, sources, use, write=args.write and variant == 0).items():
                found.setdefault(key, []).append(reached)
        if args.variants > 1:
            print("\n| set | ranking | answers to reach 0.99, each variant | median |\n|---|---|---|---|")
            for (name, label), reached in found.items():
                beyond = args.answers + 1  # "not within" sorts after every count
                counts = sorted(beyond if r is None else r for r in reached)
                median = counts[len(counts) // 2]
                print(f"| {name} | {label} | {' / '.join('-' if r is None else str(r) for r in reached)} | "
                      f"{median if median <= args.answers else f'not within {args.answers}'} |")


def without_some_photos(source: Path, target: Path, share: float, seed: int) -> Path:
    """A copy of the catalog at ``source`` with ``share`` of its photos marked gone, drawn with
    ``seed``: the same library a little different, to see how much a measure rests on a few faces."""
    import sqlite3

    shutil.copyfile(source, target)
    db = sqlite3.connect(target)
    ids = [r[0] for r in db.execute("SELECT id FROM photos WHERE status = 'ok' ORDER BY id")]
    drop = np.random.default_rng(seed).choice(ids, int(round(share * len(ids))), replace=False)
    db.executemany("UPDATE photos SET status = 'gone' WHERE id = ?", [(int(i),) for i in drop])
    db.commit()
    db.close()
    return target


def run_variant(args, sources: dict, use: tuple, write: bool) -> dict:
    """The table for one set of catalogs; {(set, ranking): answers to reach 0.99 or None}."""
    from faceclust.find.judge import JUDGE_FILE, fit_judge

    data = {}
    for name in args.sets:
        data[name] = candidates(name, sources[name])
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
    if write:
        everything.save(JUDGE_FILE)
        print(f"wrote {JUDGE_FILE}", file=sys.stderr)
    print(f"Command: `.venv/bin/python benchmarks/fit_judge.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')})\n")
    print("| set | identities | ranking | F1 after 0 | 10 | 25 | 50 answers | answers to reach 0.99 | of which yes |")
    print("|---|---|---|---|---|---|---|---|---|")
    out = {}
    for name in args.measure or args.sets:
        others = [n for n in args.sets if n != name]
        held_out = fit_judge(model_id, [e for n in others for e in data[n][0]], [c for n in others for c in data[n][1]],
                             None, args.C, use, library_of(others))
        print(f"held out {name}: prior answers by kind " + ", ".join(
            f"{k} {f.get('prior_answers', 'fixed')}" for k, f in held_out.kinds.items()), file=sys.stderr)
        rankings = [("by distance (no judge)", False)] * (not args.skip_plain) + [
            (f"judge fitted on {' + '.join(others)}", held_out), ("judge fitted on all three (in-sample)", everything)]
        for label, judge in rankings:
            r = simulate(name, sources[name], args.answers, True, judge, not args.no_adapt,
                         group_faces=not args.no_groups, by_gain=not args.by_chance)
            c = r["curve"]
            cells = [f"{c[k]:.4f}" if k in c else "" for k in (0, 10, 25, 50)]
            reached = r["reached"] if r["reached"] is not None else f"not within {args.answers}"
            print(f"| {name} | {r['identities']} | {label} | {' | '.join(cells)} | {reached} | {r['yes']} |", flush=True)
            out[(name, "held-out judge" if judge is held_out else "in-sample judge" if judge is everything
                 else "no judge")] = r["reached"]
    return out

if __name__ == "__main__":
    main()
