"""People over time: clustering a library at once vs. in two scans (half the photos, then the rest).

For each labelled catalog (scanned from a folder-per-identity tree) and each recognition
threshold, in one run:
  * full: `cluster` once on every face;
  * incremental: `cluster` on a random half of the photos, then the other half "arrives" and
    `cluster` runs again (new faces join the person their nearest faces agree on, the rest are
    clustered among themselves);
and `evaluate` scores both (BCubed F1, pairwise precision, people vs identities).

    .venv/bin/python benchmarks/bench_people.py --catalog lfw=/tmp/lfw.sqlite=../shared/data/lfw_dev \
        --catalog celeba=/tmp/celeba.sqlite=../shared/data/celeba_train
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from faceclust.catalog import Catalog
from faceclust.evaluate import evaluate_catalog
from faceclust.people import ClusterOptions, PeopleClusterer


class HalfCatalog(Catalog):
    """A catalog whose faces of some photos are not there yet."""

    hidden_photos: set[int] = set()

    def face_table(self, model_id):
        table = super().face_table(model_id)
        keep = ~np.isin(table.photo_ids, list(self.hidden_photos))
        for name in ("face_ids", "photo_ids", "widths", "scores", "vectors"):
            setattr(table, name, getattr(table, name)[keep])
        return table


def model_of(path: Path) -> str:
    with Catalog(path) as cat:
        return max(cat.counts()["embeddings_by_model"].items(), key=lambda kv: kv[1])[0]


def run(source: Path, labelled: Path, threshold: float, incremental: bool, workdir: Path) -> dict:
    path = workdir / f"{source.stem}-{threshold}-{incremental}.sqlite"
    shutil.copy(source, path)
    model = model_of(path)
    options = ClusterOptions(recognition_threshold=threshold)
    with HalfCatalog(path) as cat:
        if incremental:
            photos = sorted({s.id for s in cat.photo_states().values() if s.status == "ok"})
            rng = np.random.default_rng(0)
            HalfCatalog.hidden_photos = set(rng.choice(photos, len(photos) // 2, replace=False).tolist())
            PeopleClusterer(cat, model, options).run()
        HalfCatalog.hidden_photos = set()
        summary = PeopleClusterer(cat, model, options).run()
        scores = evaluate_catalog(cat, labelled, model)
    return {"bcubed_f1": scores["bcubed_f1"], "pairwise_precision": scores["pairwise_precision"],
            "people": scores["people"], "identities": scores["identities"], "recognized": summary.recognized}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", action="append", required=True, help="NAME=CATALOG=LABELLED_DIR")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.35, 0.38, 0.40, 0.42])
    args = parser.parse_args()
    print(f"Command: `python benchmarks/bench_people.py {' '.join(sys.argv[1:])}`\n")
    print("| set | mode | recognition threshold | BCubed F1 | pairwise P | people / identities | recognised |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.catalog:
            name, catalog, labelled = spec.split("=")
            full = run(Path(catalog), Path(labelled), args.thresholds[0], False, Path(tmp))
            print(f"| {name} | full | – | {full['bcubed_f1']:.4f} | {full['pairwise_precision']:.4f} | "
                  f"{full['people']} / {full['identities']} | – |", flush=True)
            for t in args.thresholds:
                r = run(Path(catalog), Path(labelled), t, True, Path(tmp))
                print(f"| {name} | half, then half | {t} | {r['bcubed_f1']:.4f} | {r['pairwise_precision']:.4f} | "
                      f"{r['people']} / {r['identities']} | {r['recognized']} |", flush=True)


if __name__ == "__main__":
    main()
