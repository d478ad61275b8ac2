"""Fine-tuning by triplet mining, measured: held-out people before/after, LFW before/after.

Trains on ../shared/data/celeba_train split by identity (``--val-identities`` held out, the rest
trained on), once per mining mode, with faceclust's defaults otherwise. For each run it reports
the held-out VAL at FAR=1e-3/1e-2, the best-threshold accuracy and the BCubed F1 of clustering
the held-out faces, before and after; the training throughput (faces/s, forward + backward)
and the wall time, including detection when the cache is cold. Then it embeds lfw_dev (one face
per photo, chosen as for training) with the pretrained and each fine-tuned model and reports its
verification figures.

    python benchmarks/bench_train.py --cache-dir /tmp/bench-train-cache [--json out.json]

A fresh ``--cache-dir`` makes the first run cold (it scans celeba_train); the later runs reuse it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def lfw_figures(models: dict[str, Path | None], cache_dir: Path) -> dict[str, dict]:
    """Verification on lfw_dev (all pairs of one face per photo) for each model."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import ModelChoice
    from faceclust.models.resnet import load_resnet
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library
    from faceclust.train.data import faces_from_folders, load_chips
    from faceclust.train.trainer import Trainer
    from faceclust.train.validate import validate

    lfw = SHARED / "lfw_dev"
    catalog = cache_dir / "lfw_dev.sqlite"
    scan_library(catalog, [lfw], ScanOptions(model="default"))
    with Catalog(catalog) as cat:
        faces = faces_from_folders(cat, lfw, ModelChoice.resolve().model_id)
    chips, ok = load_chips(faces, cache_dir / "lfw_dev.chips.npz")
    faces, chips = faces.take(np.flatnonzero(ok)), chips[ok]
    out = {}
    for name, checkpoint in models.items():
        row = validate(Trainer(load_resnet(checkpoint=checkpoint)).embed(chips), faces.labels)
        out[name] = {k: row[k] for k in ("val_at_far_0.001", "val_at_far_0.01", "accuracy", "threshold", "faces")}
    return out


def main() -> None:
    from faceclust.train.run import train_model
    from faceclust.train.trainer import TrainOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--val-identities", type=int, default=40)
    parser.add_argument("--mining", nargs="+", default=["semihard", "hard"])
    parser.add_argument("--options", default="{}", help="JSON of TrainOptions overrides for every run")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (SHARED / "celeba_train").is_dir():
        sys.exit(f"no celeba_train under {SHARED}")
    runs, models = {}, {"pretrained": None}
    for mining in args.mining:
        out = args.out_dir / f"bench-train-{mining}.pt"
        start = time.perf_counter()
        summary = train_model(out, data=SHARED / "celeba_train", cache_dir=args.cache_dir,
                              options=TrainOptions(val_identities=args.val_identities, mining=mining,
                                                   **json.loads(args.options)))
        summary["wall_seconds"] = round(time.perf_counter() - start, 1)
        runs[mining] = summary
        models[mining] = out
        print(f"{mining}: best epoch {summary['best_epoch']}, wall {summary['wall_seconds']} s, "
              f"{summary['train_faces_per_second']} faces/s", flush=True)
    lfw = lfw_figures(models, args.cache_dir)
    keys = ("val_at_far_0.001", "val_at_far_0.01", "accuracy", "cluster_bcubed_f1", "cluster_pairwise_precision")
    print("\n| run | held-out | VAL@1e-3 | VAL@1e-2 | accuracy | clustering BCubed F1 | pairwise P |")
    print("|---|---|---|---|---|---|---|")
    for mining, s in runs.items():
        for when in ("before", "after"):
            row = s[when]
            print(f"| {mining} | {when} (epoch {row['epoch']}) | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    print("\n| run | best epoch | epochs run | train faces/s | wall s | distance scale |")
    print("|---|---|---|---|---|---|")
    for mining, s in runs.items():
        print(f"| {mining} | {s['best_epoch']} | {len(s['history']) - 1} | {s['train_faces_per_second']} | "
              f"{s['wall_seconds']} | {s['distance_scale']:.3f} |")
    print("\n| lfw_dev | VAL@1e-3 | VAL@1e-2 | accuracy |")
    print("|---|---|---|---|")
    for name, row in lfw.items():
        print(f"| {name} | {row['val_at_far_0.001']:.4f} | {row['val_at_far_0.01']:.4f} | {row['accuracy']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "lfw": lfw}, indent=1, default=str))


if __name__ == "__main__":
    main()
