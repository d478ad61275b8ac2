"""Verify, search and dedupe, measured on the labelled development sets.

Sections (all by default):
  verify    VAL@FAR 1e-3 / 1e-2 and best accuracy on lfw_dev (every same-person pair; every
            different-person pair for VAL@FAR, a 1M sample for accuracy); the calibration's
            feature sets compared by identity-disjoint 5-fold cross-validation on lfw_dev; the
            shipped calibration (fitted on lfw_dev) measured on celeba_train: reliability table,
            Brier score, ECE, against a calibration fitted on celeba itself (cross-validated).
  search    celeba_train catalog with 3 photos per person taken out; each taken-out photo is
            searched from its file (detect + embed + FAISS): recall@10 / precision@10 of the
            same person's faces, with the 0.6 threshold and without.
  latency   query latency on synthetic descriptors at 10k faces (exact index) and 100k (IVF),
            index only and through the catalog; IVF recall@10 against exact search.
  dedupe    copies of real photos (byte copy, JPEG 90/70/50, resized to 75% and 50%, cropped by
            3% on each side; mirror images must not count) scanned into a copy of the celeba
            catalog: distances of copies to their originals, precision and recall of duplicate
            photos and near-identical faces over a sweep of the face threshold, with and without
            the thumbnail check; the pairs counted false and the groups found among celeba's own
            photos are listed, to be checked by eye; time on the catalog.

Catalogs are read from copies made in a temporary folder (or --workdir, kept); derived photos
are written only there.

    .venv/bin/python benchmarks/bench_find.py [--sections verify,search,latency,dedupe]
        [--lfw-catalog /tmp/lfw.sqlite] [--celeba-catalog /tmp/celeba.sqlite]
        [--shared-data ../shared/data] [--originals 45] [--workdir DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faceclust.catalog import Catalog  # noqa: E402
from faceclust.find.calibration import (  # noqa: E402
    DEFAULT_FEATURES,
    FEATURE_SETS,
    best_accuracy,
    brier_score,
    expected_calibration_error,
    fit_calibration,
    labelled_faces,
    labelled_pairs,
    load_calibration,
    reliability_table,
)


def table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def copy_catalog(source: Path, workdir: Path, name: str) -> Path:
    target = workdir / name
    shutil.copyfile(source, target)
    for suffix in ("-wal",):
        if Path(str(source) + suffix).exists() and Path(str(source) + suffix).stat().st_size:
            shutil.copyfile(str(source) + suffix, str(target) + suffix)
    return target


def model_id() -> str:
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    return embedders.create(DEFAULT_EMBEDDER).identity()


def lap(times: list, start: float) -> float:
    now = time.perf_counter()
    times.append(now - start)
    return now


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- verify -----------------------------------------------------------------------------------


def pair_set(catalog_path: Path, labelled_dir: Path, max_negatives: int, seed: int = 0):
    with Catalog(catalog_path) as cat:
        faces = labelled_faces(cat, labelled_dir, model_id())
    i, j, same = labelled_pairs(faces.labels, max_negatives, seed)
    return faces, i, j, same


def even_odds_weights(same: np.ndarray) -> np.ndarray:
    return np.where(same, 0.5 / same.sum(), 0.5 / (~same).sum())


def weighted_brier(p, same) -> float:
    return float(np.sum(even_odds_weights(same) * (p - same) ** 2))


def weighted_log_loss(p, same) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.sum(even_odds_weights(same) * np.where(same, np.log(p), np.log(1 - p))))


def cross_validated(faces, i, j, same, features: str, folds: int = 5, seed: int = 0):
    """Identity-disjoint folds: a pair is tested in fold f when both its people are in f and
    trained on when neither is. Returns predicted probabilities and the mask of tested pairs."""
    names = np.unique(faces.labels)
    fold_of = dict(zip(names, np.random.default_rng(seed).integers(0, folds, len(names))))
    fi = np.array([fold_of[x] for x in faces.labels[i]])
    fj = np.array([fold_of[x] for x in faces.labels[j]])
    p = np.full(len(i), np.nan)
    for f in range(folds):
        train = (fi != f) & (fj != f)
        test = (fi == f) & (fj == f)
        cal = fit_calibration(faces.vectors[i[train]], faces.vectors[j[train]], same[train], features)
        p[test] = cal.probability(faces.vectors[i[test]], faces.vectors[j[test]])
    tested = ~np.isnan(p)
    return p, tested


def balanced_sample(same: np.ndarray, seed: int = 0) -> np.ndarray:
    """As many pairs of each kind (all of the rarer kind), drawn at random."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(same), np.flatnonzero(~same)
    k = min(len(pos), len(neg))
    return np.sort(np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, k, replace=False)]))


def section_verify(args, workdir: Path) -> str:
    from faceclust.evaluate.metrics import val_at_far

    out = []
    lfw_cat = copy_catalog(args.lfw_catalog, workdir, "lfw.sqlite")
    celeba_cat = copy_catalog(args.celeba_catalog, workdir, "celeba_verify.sqlite")
    lfw_dir, celeba_dir = args.shared_data / "lfw_dev", args.shared_data / "celeba_train"
    rows = []
    for name, cat, folder in (("lfw_dev", lfw_cat, lfw_dir), ("celeba_train", celeba_cat, celeba_dir)):
        log(f"verify: pairs of {name}")
        faces, i, j, same = pair_set(cat, folder, 1_000_000)
        d = np.linalg.norm(faces.vectors[i] - faces.vectors[j], axis=1)
        vals = val_at_far(faces.vectors, faces.labels, (1e-3, 1e-2), max_faces=10_000)
        acc, t = best_accuracy(d[same], d[~same])
        at_06 = (np.mean(d[same] < 0.6) + np.mean(d[~same] >= 0.6)) / 2
        n_diff_all = len(faces) * (len(faces) - 1) // 2 - int(same.sum())
        rows.append([name, len(faces), len(np.unique(faces.labels)), int(same.sum()), n_diff_all,
                     f"{vals[1e-3][0]:.4f} (t={vals[1e-3][1]:.3f})", f"{vals[1e-2][0]:.4f} (t={vals[1e-2][1]:.3f})",
                     f"{acc:.4f} (t={t:.3f})", f"{at_06:.4f}"])
    out.append("### Verification (one face per photo: see faceclust.find.calibration.labelled_faces)\n")
    out.append(table(["set", "faces", "people", "same-person pairs", "different-person pairs (VAL@FAR: all)",
                      "VAL@FAR=1e-3", "VAL@FAR=1e-2", "best accuracy (1M different pairs sampled, even odds)",
                      "accuracy at 0.6"], rows))

    log("verify: calibration feature sets, cross-validated on lfw_dev")
    faces, i, j, same = pair_set(lfw_cat, lfw_dir, 200_000)
    cv_rows, scores = [], {}
    for features in FEATURE_SETS:
        p, tested = cross_validated(faces, i, j, same, features)
        b, ll = weighted_brier(p[tested], same[tested]), weighted_log_loss(p[tested], same[tested])
        scores[features] = ll
        cv_rows.append([features, int(tested.sum()), f"{b:.5f}", f"{ll:.5f}",
                        expected_calibration_error(p[tested][balanced_sample(same[tested])],
                                                   same[tested][balanced_sample(same[tested])])])
    best = min(scores, key=scores.get)
    # The plainest feature set unless another is clearly better (1% lower log loss).
    chosen = next(f for f in FEATURE_SETS if scores[f] <= scores[best] * 1.01)
    out.append("\n### Calibration: feature sets, identity-disjoint 5-fold CV on lfw_dev (even odds)\n")
    out.append(table(["features", "pairs tested", "Brier", "log loss", "ECE (balanced pairs)"], cv_rows))
    out.append(f"\nLowest CV log loss: {best}; the plainest set within 1% of it: **{chosen}** "
               f"(what `faceclust calibrate` uses by default: {DEFAULT_FEATURES}).")

    shipped = load_calibration()
    out.append(f"\nShipped calibration: features `{shipped.features}`, intercept {shipped.intercept:.3f}, "
               f"coef {[round(c, 3) for c in shipped.coef][:4]}, model `{shipped.model_id}`, fitted on "
               f"{shipped.info.get('fitted_on')} ({shipped.info.get('same_pairs')} same / "
               f"{shipped.info.get('different_pairs')} different pairs).")
    if shipped.features == "distance":
        mid = -shipped.intercept / shipped.coef[0]
        out.append(f" P(same) = 0.5 at distance {mid:.3f}; at dlib's 0.6: "
                   f"{1 / (1 + np.exp(-(shipped.intercept + shipped.coef[0] * 0.6))):.3f}.")

    log("verify: calibration measured on celeba_train")
    cfaces, ci, cj, csame = pair_set(celeba_cat, celeba_dir, 1_000_000)
    keep = balanced_sample(csame, seed=1)
    ci, cj, csame = ci[keep], cj[keep], csame[keep]
    p = shipped.probability(cfaces.vectors[ci], cfaces.vectors[cj])
    in_domain, tested = cross_validated(cfaces, ci, cj, csame, shipped.features)
    # Within-fold pairs are mostly same-person ones: rebalance them before scoring.
    sub = np.flatnonzero(tested)
    bal = sub[balanced_sample(csame[sub], seed=2)]
    d = np.linalg.norm(cfaces.vectors[ci] - cfaces.vectors[cj], axis=1)
    hard = (d < 0.6).astype(float)
    out.append(f"\n### Calibration on celeba_train (not used to fit it): {int(csame.sum())} same-person pairs "
               f"and as many different-person pairs\n")
    out.append(table(["probability", "pairs", "Brier", "log loss", "ECE"], [
        ["shipped (fitted on lfw_dev)", len(p), brier_score(p, csame), weighted_log_loss(p, csame),
         expected_calibration_error(p, csame)],
        ["fitted on celeba itself (identity 5-fold CV, balanced test pairs; a reference)", len(bal),
         brier_score(in_domain[bal], csame[bal]), weighted_log_loss(in_domain[bal], csame[bal]),
         expected_calibration_error(in_domain[bal], csame[bal])],
        ["hard 0/1 decision at 0.6 (no calibration)", len(p), brier_score(hard, csame), float("nan"), float("nan")],
    ]))
    out.append("\nReliability of the shipped calibration on celeba_train:\n")
    out.append(table(["P(same) bin", "pairs", "mean predicted", "observed same"],
                     [[f"{r['low']:.1f}-{r['high']:.1f}", r["pairs"], r["predicted"], r["observed"]]
                      for r in reliability_table(p, csame)]))
    return "\n".join(out)


# -- search -----------------------------------------------------------------------------------


def section_search(args, workdir: Path) -> str:
    from faceclust.faces.finder import FaceFinder
    from faceclust.find.search import search_catalog

    cat_path = copy_catalog(args.celeba_catalog, workdir, "celeba_search.sqlite")
    folder = args.shared_data / "celeba_train"
    mid = model_id()
    rng = np.random.default_rng(0)
    with Catalog(cat_path) as cat:
        faces = labelled_faces(cat, folder, mid)
        by_label = defaultdict(list)
        for k, label in enumerate(faces.labels):
            by_label[label].append(k)
        queries = []
        for label, rows in sorted(by_label.items()):
            if len(rows) > args.queries_per_person + 1:
                queries += list(rng.choice(rows, args.queries_per_person, replace=False))
        query_paths = {faces.paths[k] for k in queries}
        box_of = {int(r[0]): r[2:6] for r in cat.iter_faces(None)}
        states = cat.photo_states()
        cat.mark_gone([states[p].id for p in query_paths])
        label_face = {int(f): lab for f, lab, p in zip(faces.face_ids, faces.labels, faces.paths) if p not in query_paths}
        relevant = defaultdict(int)
        for lab in label_face.values():
            relevant[lab] += 1
        finder = FaceFinder.create()
        results = {0.6: [], 10.0: []}
        stage_times = defaultdict(list)
        log(f"search: {len(queries)} queries against {len(label_face)} labelled catalog faces")
        for k in queries:
            path, label = faces.paths[k], faces.labels[k]
            # One search without a threshold; the thresholded list is its prefix below 0.6.
            res = search_catalog(cat, Path(path), top=10, threshold=10.0, finder=finder)
            for stage, s in res.seconds.items():
                stage_times[stage].append(s)
            # The query's labelled face: the one detected where the catalog had it.
            want = np.array(box_of[int(faces.face_ids[k])])
            main = int(np.argmin([np.abs(np.array(f.box) - want).sum() for f in res.faces]))
            for threshold in results:
                matches = [m for m in res.faces[main].matches if m.distance < threshold]
                hits = sum(1 for m in matches if label_face.get(m.face_id) == label)
                results[threshold].append((hits, len(matches), relevant[label]))
    rows = []
    for threshold, got in results.items():
        hits = np.array([g[0] for g in got], float)
        returned = np.array([g[1] for g in got], float)
        rel = np.array([g[2] for g in got], float)
        precision = np.mean(np.where(returned > 0, hits / np.maximum(returned, 1), 1.0))
        rows.append(["0.6 (default)" if threshold == 0.6 else "none (plain 10-NN)", len(got),
                     float(np.mean(hits / np.minimum(10, rel))), float(np.mean(hits / rel)),
                     float(precision), float(np.mean(hits / 10)), float(np.mean(returned)),
                     float(np.mean(returned == 0))])
    out = [f"### Search: {len(queries)} photos of celeba_train ({args.queries_per_person} per person) taken out "
           f"of the catalog and searched from their files\n",
           "recall@10 = same-person faces among the results / min(10, same-person faces catalogued); "
           "precision@10 = same-person share of the results returned (at most 10). The catalog "
           "keeps about 18 photos per person, so recall@10 over all of them cannot exceed ~0.55.\n",
           table(["threshold", "queries", "recall@10", "recall@10 / all catalogued", "precision@10 of returned",
                  "precision@10 (/10)", "results per query", "queries with no result"], rows),
           "\nTime per query (median, s): " + ", ".join(f"{s} {np.median(v):.4f}" for s, v in stage_times.items())
           + f" (faces = decode + detect + embed; open = index load + face rows; load average "
           f"{os.getloadavg()[0]:.1f} at the end)."]
    return "\n".join(out)


# -- latency ----------------------------------------------------------------------------------


def synthetic_vectors(n: int, reference: np.ndarray, per_person: int = 10, seed: int = 0) -> np.ndarray:
    """Descriptors shaped like real ones: identity centres from a Gaussian fitted to real
    descriptors, faces scattered around them at the real within-person spread."""
    rng = np.random.default_rng(seed)
    mean, cov = reference.mean(0), np.cov(reference, rowvar=False)
    centres = rng.multivariate_normal(mean, cov, size=n // per_person + 1)
    faces = np.repeat(centres, per_person, axis=0)[:n]
    return (faces + rng.normal(scale=0.45 / np.sqrt(2 * reference.shape[1]), size=faces.shape)).astype(np.float32)


def section_latency(args, workdir: Path) -> str:
    from faceclust.catalog.index import FaceIndex, open_index
    from faceclust.find.search import FaceRows, match_vectors
    from faceclust.records import FaceArrays, PhotoResult

    with Catalog(copy_catalog(args.celeba_catalog, workdir, "celeba_latency.sqlite")) as cat:
        reference = cat.embeddings(model_id())[1]
    rows = []
    for n in (10_000, 100_000):
        log(f"latency: {n} synthetic faces")
        vectors = synthetic_vectors(n, reference, seed=n)
        ids = np.arange(1, n + 1, dtype=np.int64)
        t = time.perf_counter()
        index = FaceIndex.build(ids, vectors, "synthetic")
        build = time.perf_counter() - t
        queries = vectors[np.random.default_rng(1).choice(n, 200, replace=False)] + \
            np.random.default_rng(2).normal(scale=0.02, size=(200, vectors.shape[1])).astype(np.float32)
        single = []
        for q in queries:
            t = time.perf_counter()
            index.search(q[None], 10)
            single.append(time.perf_counter() - t)
        # faiss parallelises one query's probes with OpenMP; on a busy 2-core machine the
        # threads' spin-waits can cost more than the search. The same queries on one thread:
        import faiss  # only to set its thread count for this diagnosis

        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        single_1 = []
        for q in queries:
            t = time.perf_counter()
            index.search(q[None], 10)
            single_1.append(time.perf_counter() - t)
        faiss.omp_set_num_threads(threads)
        t = time.perf_counter()
        found = index.search(queries, 10)
        batch = (time.perf_counter() - t) / len(queries)
        exact = FaceIndex.build(ids, vectors, "exact", exact_limit=10**9).search(queries, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.face_ids, exact.face_ids)])

        # The same faces in a catalog: what a search pays besides the index.
        cat_path = workdir / f"synthetic_{n}.sqlite"
        with Catalog(cat_path) as cat:
            results = []
            for start in range(0, n, 4):
                chunk = vectors[start:start + 4]
                k = len(chunk)
                boxes = np.tile(np.array([[10, 10, 90, 90]], np.float32), (k, 1)) + \
                    np.arange(k, dtype=np.float32)[:, None] * 100
                results.append(PhotoResult("faces", f"/synthetic/{start:07d}.jpg", 1, 1, f"h{start}", 800, 600,
                                           FaceArrays(boxes, np.ones(k, np.float32),
                                                      np.zeros((k, 5, 2), np.float32), chunk)))
            for start in range(0, len(results), 2000):
                cat.write_results(results[start:start + 2000], "synthetic:1", "det", None)
            t = time.perf_counter()
            open_index(cat, "synthetic:1")
            first_open = time.perf_counter() - t
            opened, rowed, looked_up = [], [], []
            for q in queries[:20]:
                t = time.perf_counter()
                idx = open_index(cat, "synthetic:1")
                t = lap(opened, t)
                face_rows = FaceRows(cat)
                t = lap(rowed, t)
                match_vectors(idx, face_rows, q[None], 10, 0.6)
                lap(looked_up, t)
            if n == 100_000:
                from faceclust.find.dedupe import find_duplicates

                t = time.perf_counter()
                report = find_duplicates(cat, "synthetic:1")
                dedupe_100k = (time.perf_counter() - t, len(report.face_groups), len(report.photo_groups))
        rows.append([n, index.kind, build, 1000 * np.median(single), 1000 * np.percentile(single, 95),
                     1000 * np.median(single_1), 1000 * np.percentile(single_1, 95), 1000 * batch, float(recall),
                     first_open, 1000 * np.median(opened), 1000 * np.median(rowed), 1000 * np.median(looked_up)])
    out = [f"### Search latency on synthetic descriptors (2 cores; load average {os.getloadavg()[0]:.1f} "
           "at the end: other jobs were running)\n",
           table(["faces", "index", "build s", "query ms (median)", "query ms (p95)", "1 thread: median",
                  "1 thread: p95", "ms/query in a batch of 200", "recall@10 vs exact",
                  "catalog: first open (build + save) s", "catalog: open_index ms", "catalog: face rows ms",
                  "catalog: match ms"], rows),
           f"\nDedupe on the 100k synthetic catalog (no duplicates planted): {dedupe_100k[0]:.1f} s, "
           f"{dedupe_100k[1]} near-identical face groups, {dedupe_100k[2]} duplicate photo groups."]
    return "\n".join(out)


# -- dedupe -----------------------------------------------------------------------------------

TRANSFORMS = ("copy", "q90", "q70", "q50", "resize75", "resize50", "crop3", "flip")


def make_copies(originals: list[Path], folder: Path, write: bool = True) -> dict[str, tuple[str, str]]:
    """Derived photos of each original under ``folder``: path -> (original path, transform).
    With ``write`` False, only the mapping (the copies were made by an earlier run)."""
    from PIL import Image, ImageOps

    truth = {}
    folder.mkdir(parents=True, exist_ok=True)
    for k, source in enumerate(originals):
        stem = f"{k:03d}_{source.stem}"
        if not write:
            truth.update({str(folder / f"{stem}_{name}.jpg"): (str(source), name) for name in TRANSFORMS})
            continue
        with Image.open(source) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            w, h = im.size
            made = {
                "copy": None,
                "q90": (im, 90), "q70": (im, 70), "q50": (im, 50),
                "resize75": (im.resize((round(w * 0.75), round(h * 0.75)), Image.Resampling.LANCZOS), 92),
                "resize50": (im.resize((round(w * 0.5), round(h * 0.5)), Image.Resampling.LANCZOS), 92),
                "crop3": (im.crop((round(w * 0.03), round(h * 0.03), w - round(w * 0.03), h - round(h * 0.03))), 92),
                "flip": (ImageOps.mirror(im), 92),
            }
            for name, spec in made.items():
                target = folder / f"{stem}_{name}.jpg"
                if spec is None:
                    shutil.copyfile(source, target)
                else:
                    spec[0].save(target, quality=spec[1])
                truth[str(target)] = (str(source), name)
    return truth


def pick_originals(catalog_path: Path, shared: Path, count: int) -> list[Path]:
    """Photos with at least one face: half from celeba_train (in the catalog), half from lfw_dev
    (centred faces: the hard case for mirror images)."""
    rng = np.random.default_rng(7)
    with Catalog(catalog_path) as cat:
        with_faces = sorted({r[1] for r in cat.iter_faces(None)})
    by_person = defaultdict(list)
    for p in with_faces:
        by_person[Path(p).parent.name].append(p)
    people = sorted(by_person)
    celeba = [Path(by_person[name][int(rng.integers(len(by_person[name])))])
              for name in rng.choice(people, count - count // 3, replace=False)]
    lfw_people = sorted(p for p in (shared / "lfw_dev").iterdir() if p.is_dir())
    lfw = [sorted(lfw_people[int(k)].glob("*.jpg"))[0] for k in rng.choice(len(lfw_people), count // 3, replace=False)]
    return celeba + lfw


def section_dedupe(args, workdir: Path) -> str:
    from faceclust.find.dedupe import (
        DEFAULT_MIN_SIMILARITY,
        DedupeOptions,
        DuplicateFinder,
        find_duplicates,
    )
    from faceclust.scan.scanner import scan_library

    mid = model_id()
    plain_path = copy_catalog(args.celeba_catalog, workdir, "celeba_dedupe_time.sqlite")
    with Catalog(plain_path) as cat:
        t = time.perf_counter()
        plain = find_duplicates(cat, mid)
        plain_seconds = time.perf_counter() - t
    originals = pick_originals(plain_path, args.shared_data, args.originals)
    lfw_originals = [p for p in originals if "lfw_dev" in str(p)]
    copies_dir = workdir / "copies"
    cat_path = workdir / "celeba_dedupe.sqlite"
    if args.reuse and cat_path.exists() and copies_dir.is_dir():
        truth = make_copies(originals, copies_dir, write=False)
        scan_seconds = float("nan")
    else:
        cat_path = copy_catalog(args.celeba_catalog, workdir, "celeba_dedupe.sqlite")
        truth = make_copies(originals, copies_dir)
        log(f"dedupe: scanning {len(truth)} derived photos and {len(lfw_originals)} lfw originals")
        t = time.perf_counter()
        scan_library(cat_path, [copies_dir, *lfw_originals])
        scan_seconds = time.perf_counter() - t

    family = {str(o): str(o) for o in originals}  # photo -> its original
    kind = {str(o): "original" for o in originals}
    for path, (source, name) in truth.items():
        family[path], kind[path] = source, name

    with Catalog(cat_path) as cat:
        finder = DuplicateFinder()
        finder.run(cat, mid)
        vectors, photos, face_ids = finder.vectors, finder.photos, finder.face_ids
        with_faces = {p for p, info in photos.items() if info.faces}
        families = defaultdict(list)
        for path, source in family.items():
            if source in with_faces:  # only originals with a face take part
                families[source].append(path)

        # Each copy's faces and the nearest face of its original.
        distance_rows, face_links = [], []  # face_links: (copy face id, original face id, kind)
        for name in TRANSFORMS:
            ds, lost = [], 0
            for source, members in families.items():
                for path in members:
                    if kind[path] != name:
                        continue
                    if path not in with_faces:
                        lost += 1
                        continue
                    rows_o, rows_c = photos[source].faces, photos[path].faces
                    dm = np.linalg.norm(vectors[rows_o][:, None] - vectors[rows_c][None], axis=2)
                    ds.extend(dm.min(axis=0))
                    face_links += [(int(face_ids[rows_c[c]]), int(face_ids[rows_o[int(np.argmin(dm[:, c]))]]), name)
                                   for c in range(len(rows_c))]
            ds = np.array(ds) if ds else np.full(1, np.nan)
            distance_rows.append([name, len(ds), float(np.median(ds)), float(np.percentile(ds, 95)),
                                  float(ds.max()), lost])
        # For contrast: each celeba photo's labelled face to the nearest other photo of its person.
        labels = labelled_faces(cat, args.shared_data / "celeba_train", mid)
        experiment = set(family)
        nearest = []
        for lab in np.unique(labels.labels):
            rows = [k for k in np.flatnonzero(labels.labels == lab) if labels.paths[k] not in experiment
                    or kind.get(labels.paths[k]) == "original"]
            v = labels.vectors[rows]
            dm = np.linalg.norm(v[:, None] - v[None], axis=2)
            np.fill_diagonal(dm, np.inf)
            nearest.extend(dm.min(axis=1))
        nearest = np.array(nearest)

        true_pairs, flips = set(), []
        for source, members in families.items():
            good = sorted(m for m in members if kind[m] != "flip")
            true_pairs.update((good[x], good[y]) for x in range(len(good)) for y in range(x + 1, len(good)))
            flips += [(min(m, source), max(m, source)) for m in members if kind[m] == "flip" and m in with_faces]

        sweep_rows, chosen_extra, chosen_false = [], [], []
        for similarity, face_distance in [(m, f) for m in args.similarities for f in args.sweep]:
            t = time.perf_counter()
            report = find_duplicates(cat, mid, DedupeOptions(face_distance=face_distance, min_similarity=similarity))
            seconds = time.perf_counter() - t
            predicted, extra_groups = set(), []
            for g in report.photo_groups:
                members = sorted(g.photos)
                if not any(m in experiment for m in members):
                    extra_groups.append(members)
                predicted.update((members[x], members[y]) for x in range(len(members))
                                 for y in range(x + 1, len(members)))
            in_experiment = {pq for pq in predicted if pq[0] in experiment or pq[1] in experiment}
            tp = len(in_experiment & true_pairs)
            by_kind = {k: [0, 0] for k in TRANSFORMS if k != "flip"}
            for source, members in families.items():
                for m in members:
                    if kind[m] in by_kind:
                        by_kind[kind[m]][1] += 1
                        by_kind[kind[m]][0] += (min(m, source), max(m, source)) in predicted
            group_of = {f["face_id"]: k for k, g in enumerate(report.face_groups) for f in g.faces}
            linked = [group_of.get(c, -1) == group_of.get(o, -2) for c, o, k in face_links if k != "flip"]
            flip_faces = [group_of.get(c, -1) == group_of.get(o, -2) for c, o, k in face_links if k == "flip"]
            sweep_rows.append([similarity, face_distance, len(true_pairs), tp / len(in_experiment) if in_experiment else 1.0,
                               tp / len(true_pairs), f"{sum(f in predicted for f in flips)}/{len(flips)}",
                               report.mirrored, len(extra_groups), float(np.mean(linked)),
                               f"{sum(flip_faces)}/{len(flip_faces)}", seconds]
                              + [f"{v[0]}/{v[1]}" for v in by_kind.values()])
            if face_distance == args.chosen and similarity == DEFAULT_MIN_SIMILARITY:
                chosen_extra = extra_groups
                chosen_false = sorted(in_experiment - true_pairs)

    out = [f"### Dedupe: {len(originals)} originals ({len(originals) - len(lfw_originals)} celeba_train, "
           f"{len(lfw_originals)} lfw_dev) and {len(truth)} derived copies, scanned into a copy of the "
           f"celeba_train catalog ({scan_seconds:.0f} s)\n",
           f"{len(families)} originals have a face. Distance from each copy's faces to the nearest face of its "
           "original:\n",
           table(["copy", "faces", "median", "95th pct", "max", "copies with no face found"], distance_rows),
           f"\nFor contrast, distinct photos of one person (celeba_train, each photo's labelled face to the nearest "
           f"face of another photo of the same person): 1st pct {np.percentile(nearest, 1):.3f}, 5th pct "
           f"{np.percentile(nearest, 5):.3f}, median {np.median(nearest):.3f}; {np.mean(nearest < 0.1):.1%} "
           f"below 0.1, {np.mean(nearest < 0.2):.1%} below 0.2, {np.mean(nearest < 0.3):.1%} below 0.3.\n",
           "Duplicate photos over a sweep of the face threshold, with and without the thumbnail check. Precision over the predicted pairs that involve an "
           "experiment photo (a mirror image grouped with its original, or any other photo, is a false pair); "
           "recall over all pairs of an original and its non-mirrored copies (a copy whose face was not found "
           "counts as missed):\n",
           table(["min thumbnail similarity", "face distance", "true pairs", "precision", "recall", "mirror images grouped",
                  "mirrored pairs rejected", "other groups in celeba_train", "copy faces grouped with original",
                  "mirrored faces grouped", "dedupe s"] + [f"recall {k}" for k in TRANSFORMS if k != "flip"],
                 sweep_rows),
           f"\nDedupe on the plain celeba_train catalog ({plain.photos} photos, {plain.faces} faces): "
           f"{plain_seconds:.2f} s, {len(plain.photo_groups)} duplicate photo groups, "
           f"{len(plain.face_groups)} near-identical face groups."]
    if chosen_false:
        out.append(f"\nPairs counted false at {args.chosen} (to check by eye):")
        out += [f"- {kind.get(a, 'catalog')} {Path(a).parent.name}/{Path(a).name} ~ {kind.get(b, 'catalog')} "
                f"{Path(b).parent.name}/{Path(b).name}" for a, b in chosen_false[:15]]
    if chosen_extra:
        out.append(f"\nGroups among the original celeba_train photos at {args.chosen} (to check by eye):")
        out += [f"- {', '.join(Path(p).parent.name + '/' + Path(p).name for p in g)}" for g in chosen_extra[:15]]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="verify,search,latency,dedupe")
    parser.add_argument("--lfw-catalog", type=Path, default=Path("/tmp/lfw.sqlite"))
    parser.add_argument("--celeba-catalog", type=Path, default=Path("/tmp/celeba.sqlite"))
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--queries-per-person", type=int, default=3)
    parser.add_argument("--originals", type=int, default=45)
    parser.add_argument("--sweep", type=lambda s: [float(x) for x in s.split(",")], default=[0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
    parser.add_argument("--similarities", type=lambda s: [float(x) for x in s.split(",")], default=[-1.0, 0.7],
                        help="Minimum thumbnail correlations to sweep (-1: no pixel check but the mirror one).")
    parser.add_argument("--chosen", type=float, default=0.25, help="The face distance whose false pairs are listed.")
    parser.add_argument("--reuse", action="store_true", help="With --workdir: reuse the copies and the catalog "
                        "a previous dedupe run scanned there.")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the working files here (default: a "
                        "temporary folder, removed at the end).")
    args = parser.parse_args()
    args.shared_data = args.shared_data.resolve()
    command = "python benchmarks/bench_find.py " + " ".join(sys.argv[1:])
    sections = {"verify": section_verify, "search": section_search, "latency": section_latency,
                "dedupe": section_dedupe}
    with tempfile.TemporaryDirectory(prefix="bench_find_") as tmp:
        if args.workdir:  # keep the catalogs and copies for a look afterwards
            args.workdir.mkdir(parents=True, exist_ok=True)
            tmp = str(args.workdir)
        parts = [f"## Verify, search, dedupe\n\nCommand: `{command.strip()}` ({time.strftime('%Y-%m-%d')})"]
        print(parts[0] + "\n", flush=True)
        for name in args.sections.split(","):
            started = time.perf_counter()
            parts.append(sections[name](args, Path(tmp)))
            log(f"{name} done in {time.perf_counter() - started:.0f} s")
            print(parts[-1] + "\n", flush=True)


if __name__ == "__main__":
    main()
