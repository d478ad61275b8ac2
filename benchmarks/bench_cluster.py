"""Which clustering should faceclust use by default? Measured, not guessed.

In one run, on the same embeddings of the labelled development catalogs:
  * every registered faceclust clusterer at its defaults and at candidate settings around them
    (one setting varied at a time, so the table shows how stable the default is);
  * the reference clusterings other tools use, on raw dlib descriptors as those tools do:
    dlib's chinese_whispers_clustering at t=0.5 and 0.6, scikit-learn DBSCAN(eps=0.5,
    min_samples=2), average-linkage agglomerative at distance 0.6 (scikit-learn, all pairs) and
    hdbscan.HDBSCAN(min_cluster_size=3, min_samples=1);
  * FaceNet's VAL@FAR (validation rate at a false-accept rate) of the descriptors themselves;
  * 100,000 synthetic faces clustered by each faceclust method at its defaults, each in a fresh
    process: wall time and peak resident memory.

Scoring: labels are per photo (the photo's folder). A photo's label goes to one of its faces,
the one whose cluster holds most other photos of that label (ties: the largest face); other
faces are bystanders, clustered but not scored. Unassigned faces (-1) count as singletons.

    .venv/bin/python benchmarks/bench_cluster.py --catalog lfw=/tmp/lfw.sqlite \\
        --catalog celeba=/tmp/celeba.sqlite [--synthetic 100000] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faceclust.evaluate.metrics import assign_labels, score_clustering, val_at_far  # noqa: E402
from faceclust.people.cluster import (  # noqa: E402
    DEFAULT_METHOD,
    DEFAULT_MIN_FACES,
    cluster_faces,
    clusterers,
    normalize_rows,
)

sys.path.insert(0, str(ROOT / "benchmarks"))
from dev_catalogs import CACHE, SETS  # noqa: E402

DEFAULT_CATALOGS = [f"{name}={CACHE / name}.sqlite" for name in SETS]  # made by benchmarks/dev_catalogs.py


@dataclass
class LabelledFaces:
    name: str
    vectors: np.ndarray  # float32 (n, d): the catalog's model's descriptors (what faceclust clusters)
    photo: np.ndarray  # int64 (n,): the photo of each face
    label: np.ndarray  # str (n,): the photo's folder, repeated for each of its faces
    size: np.ndarray  # float (n,): face area in pixels
    photos: int  # photos in the catalog (some have no face)
    reference: np.ndarray | None = None  # raw dlib descriptors of the same faces (the references' input)
    scale: float = 1.0  # the model's cluster_scale: faceclust's thresholds below are on dlib's unit scale
    method: str = DEFAULT_METHOD  # the model's clusterer

    def __post_init__(self) -> None:
        if self.reference is None:
            self.reference = self.vectors


def load_catalog(name: str, path: Path) -> LabelledFaces:
    """Faces of a scanned catalog, read-only, with the label of their photo: the catalog's
    model's descriptors, and dlib's of the same faces for the references (a catalog made by
    benchmarks/dev_catalogs.py holds both)."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import ModelChoice, catalog_model

    with Catalog(path, create=False) as catalog:
        model = catalog_model(catalog)
    dlib_id = ModelChoice.resolve("dlib-resnet").model_id
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def read(model_id: str):
        return db.execute(
            """SELECT f.photo_id, p.path, f.left, f.top, f.right, f.bottom, e.vector
               FROM faces f JOIN photos p ON p.id = f.photo_id
               JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?
               WHERE p.status = 'ok' ORDER BY f.id""", (model_id,)).fetchall()

    rows = read(model.model_id)
    if not rows:
        raise SystemExit(f"{path}: no embeddings from its model; scan the photos first")
    dlib_rows = rows if model.model_id == dlib_id else read(dlib_id)
    if len(dlib_rows) != len(rows):
        raise SystemExit(f"{path}: not every face has a dlib descriptor; build it with benchmarks/dev_catalogs.py")
    photos = db.execute("SELECT COUNT(*) FROM photos WHERE status = 'ok'").fetchone()[0]
    db.close()

    def vectors(rows):
        return np.frombuffer(b"".join(r[6] for r in rows), "<f4").reshape(len(rows), -1).astype(np.float32)

    distances = model.distances
    return LabelledFaces(
        name=name, vectors=vectors(rows),
        photo=np.array([r[0] for r in rows], np.int64),
        label=np.array([Path(r[1]).parent.name for r in rows]),
        size=np.array([(r[4] - r[2]) * (r[5] - r[3]) for r in rows], np.float64),
        photos=photos, reference=vectors(dlib_rows), scale=distances.cluster_scale, method=distances.cluster_method)


def combined(sets: list[LabelledFaces]) -> LabelledFaces:
    """Several catalogs as one library: photos kept apart, labels prefixed by their set."""
    offsets = np.cumsum([0] + [int(d.photo.max()) + 1 for d in sets[:-1]])
    if len({d.scale for d in sets}) != 1 or len({d.method for d in sets}) != 1:
        raise SystemExit("--combined needs catalogs of one model")
    return LabelledFaces(
        "all", np.vstack([d.vectors for d in sets]), np.concatenate([d.photo + o for d, o in zip(sets, offsets)]),
        np.concatenate([np.char.add(f"{d.name}/", d.label.astype(str)) for d in sets]),
        np.concatenate([d.size for d in sets]), sum(d.photos for d in sets),
        reference=np.vstack([d.reference for d in sets]), scale=sets[0].scale, method=sets[0].method)


def score(data: LabelledFaces, labels: np.ndarray) -> dict:
    scored = assign_labels(data.photo, data.label, labels, data.size)
    return score_clustering(data.label[scored], np.asarray(labels)[scored])


# -- the candidates -----------------------------------------------------------------------------


@dataclass
class Candidate:
    method: str  # what the table shows
    settings: str
    run: Callable[[LabelledFaces], np.ndarray]
    kind: str = "faceclust"  # or "reference"


def faceclust(method: str, note: str = "", use_groups: bool = True, **options) -> Candidate:
    shown = ", ".join(f"{k}={getattr(v, '__name__', v)}" for k, v in options.items()) or "defaults"
    if not use_groups:
        shown += ", no same-photo constraint"
    if note:
        shown += f" ({note})"

    def run(data: LabelledFaces) -> np.ndarray:
        from faceclust.people import ClusterOptions

        opts = {k: (v(data) if callable(v) else v) for k, v in options.items()}
        # Thresholds are given on dlib's unit scale, like the defaults: both scale for the model.
        opts = {k: v * data.scale if k.endswith("threshold") and isinstance(v, float) else v for k, v in opts.items()}
        off = {k: None for k, v in opts.items() if v is None}  # a step turned off stays off
        opts = {**ClusterOptions(method=method, method_options=opts, distance_scale=data.scale).clusterer_options(), **off}
        return clusterers.create(method, **opts).fit(data.vectors, data.photo if use_groups else None).labels_

    return Candidate(method, shown, run)


def default_pipeline(min_faces: int) -> Candidate:
    def run(data: LabelledFaces) -> np.ndarray:
        from faceclust.people import ClusterOptions

        options = ClusterOptions(method=data.method, distance_scale=data.scale).clusterer_options()
        return cluster_faces(data.vectors, data.photo, method=data.method, min_faces=min_faces, **options)

    return Candidate("cluster_faces (the model's method)", f"min_faces={min_faces}", run)


def identities(data: LabelledFaces) -> int:
    return len(np.unique(data.label))


def candidates() -> list[Candidate]:
    ada, agg = "adaptive", "agglomerative"
    out = [faceclust(ada, note="THE DEFAULT for the fused descriptor")]
    out += [faceclust(ada, energy_threshold=e) for e in (0.06, 0.08)]
    out += [faceclust(ada, merge_threshold=m) for m in (0.40, 0.42)]
    out += [faceclust(ada, margin_threshold=m) for m in (0.05, 0.1)]
    out += [faceclust(ada, min_votes=v) for v in (0.5, 0.7)]
    out += [faceclust(ada, threshold=t) for t in (0.34, 0.36)]
    out += [faceclust(ada, attach_threshold=a) for a in (0.39, 0.41)]
    out += [faceclust(ada, energy_threshold=None, note="no energy merges")]
    out += [faceclust(ada, margin_threshold=None, note="no single-face step")]
    out += [faceclust(agg, note="the default for dlib's descriptors")]
    out += [faceclust(agg, threshold=t) for t in (0.33, 0.34, 0.36, 0.37)]
    out += [faceclust(agg, attach_threshold=a) for a in (0.38, 0.42)]
    out += [faceclust(agg, attach_ratio=r) for r in (0.9, 1.0)]
    out += [faceclust(agg, core_size=c) for c in (3, 10)]
    out += [faceclust(agg, threshold=t, attach_threshold=None) for t in (0.35, 0.38, 0.40, 0.42)]
    out += [faceclust(agg, linkage="complete", threshold=t, attach_threshold=None) for t in (0.42, 0.48)]
    out += [faceclust(agg, linkage="single", threshold=0.3, attach_threshold=None)]
    out += [faceclust(agg, normalize=False, threshold=0.5, attach_threshold=0.57)]
    out += [faceclust(agg, use_groups=False)]
    out += [faceclust(agg, refuse_conflicting_merges=True)]
    out += [faceclust("chinese-whispers", note="normalised 0.35 ~ dlib's raw 0.5")]
    out += [faceclust("chinese-whispers", threshold=t) for t in (0.30, 0.33, 0.38, 0.42)]
    out += [faceclust("chinese-whispers", normalize=False, threshold=0.5)]
    out += [faceclust("hdbscan")]
    out += [faceclust("hdbscan", min_cluster_size=m, min_samples=s) for m, s in ((2, 1), (3, 2), (5, 1))]
    out += [faceclust("hdbscan", cluster_selection_method="leaf")]
    out += [faceclust("hdbscan", normalize=False)]
    out += [faceclust("kmeans")]
    out += [faceclust("kmeans", n_clusters=identities, note="oracle: k = number of identities")]
    out += [default_pipeline(m) for m in (1, DEFAULT_MIN_FACES, 3)]
    return out


def references() -> list[Candidate]:
    def dlib_cw(t: float) -> Callable[[LabelledFaces], np.ndarray]:
        def run(data: LabelledFaces) -> np.ndarray:
            import dlib

            vectors = [dlib.vector(v.astype(float).tolist()) for v in data.reference]
            return np.array(dlib.chinese_whispers_clustering(vectors, t), np.int64)
        return run

    def dbscan(data: LabelledFaces) -> np.ndarray:
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=0.5, min_samples=2).fit(data.reference).labels_

    def average(data: LabelledFaces) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering

        return AgglomerativeClustering(n_clusters=None, distance_threshold=0.6, linkage="average").fit(
            data.reference).labels_

    def hdbscan_ref(data: LabelledFaces) -> np.ndarray:
        import hdbscan

        return hdbscan.HDBSCAN(min_cluster_size=3, min_samples=1).fit(data.reference).labels_

    return [
        Candidate("dlib chinese_whispers_clustering", "t=0.5", dlib_cw(0.5), "reference"),
        Candidate("dlib chinese_whispers_clustering", "t=0.6", dlib_cw(0.6), "reference"),
        Candidate("sklearn DBSCAN", "eps=0.5, min_samples=2", dbscan, "reference"),
        Candidate("sklearn AgglomerativeClustering", "average linkage, distance 0.6", average, "reference"),
        Candidate("hdbscan.HDBSCAN", "min_cluster_size=3, min_samples=1", hdbscan_ref, "reference"),
    ]


# -- synthetic faces at scale ---------------------------------------------------------------------


def synthetic_faces(n: int, n_identities: int, dim: int = 128, seed: int = 0,
                    scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian identities on the unit sphere with the spreads of real normalised dlib descriptors:
    same-person distances ~0.31 (median; per-face noise varies, so some faces are outliers),
    different-person ~0.6 (median) with 1% of pairs below ~0.43 (identities come in "families"
    whose centres are closer: lookalikes), identity sizes heavy-tailed (a few people in many
    photos, many in one or two). ``scale`` multiplies those distances (a model's
    ``cluster_scale``: 1.6 gives the fused descriptor's)."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=dim)
    mean /= np.linalg.norm(mean)
    n_families = n_identities // 5 + 1
    family = rng.integers(0, n_families, n_identities)
    family_centre = rng.normal(size=(n_families, dim)) / np.sqrt(dim)
    own = rng.normal(size=(n_identities, dim)) / np.sqrt(dim)
    centres = mean + scale * 0.57 / np.sqrt(2) * (np.sqrt(1 - 0.45 ** 2) * family_centre[family] + 0.45 * own)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.pareto(1.5, n_identities) + 1
    identity = rng.choice(n_identities, size=n, p=weights / weights.sum())
    spread = scale * 0.31 / np.sqrt(2) * rng.lognormal(0.0, 0.3, n)[:, None]
    faces = centres[identity] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    return faces.astype(np.float32), identity


def synthetic_worker(method: str, data: Path) -> None:
    """Run in a fresh process: cluster the saved synthetic faces with ``method`` at its defaults."""
    import faiss  # noqa: F401  (loaded before the baseline, like every library the methods use)
    import hdbscan  # noqa: F401
    import sklearn.cluster  # noqa: F401

    x, identity = np.load(data / "faces.npy"), np.load(data / "identity.npy")
    before = _memory_mb("VmRSS")
    _reset_peak_memory()
    start = time.perf_counter()
    labels = clusterers.create(method).fit(x).labels_
    seconds = time.perf_counter() - start
    peak = _memory_mb("VmHWM")
    s = score_clustering(identity, labels)
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "before_mb": before, **s}))


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_memory() -> None:
    # ru_maxrss would carry the parent's peak across exec; VmHWM can be reset (Linux >= 4.0).
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def run_synthetic(n: int, timeout: float, methods: list[str] | None = None) -> list[dict]:
    import tempfile

    rows = []
    data = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    x, identity = synthetic_faces(n, max(1, n // 10))
    np.save(data / "faces.npy", x)
    np.save(data / "identity.npy", identity)
    for method in methods or clusterers.names():
        cmd = [sys.executable, str(Path(__file__).resolve()), "--synthetic-worker", method, str(data)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
            rows.append({"method": method, **json.loads(out.stdout.strip().splitlines()[-1])})
        except subprocess.TimeoutExpired:
            rows.append({"method": method, "error": f"over {timeout:.0f} s"})
        except subprocess.CalledProcessError as exc:
            rows.append({"method": method, "error": exc.stderr.strip().splitlines()[-1]})
        print(f"  synthetic {method}: done", file=sys.stderr, flush=True)
    for f in data.iterdir():
        f.unlink()
    data.rmdir()
    return rows


# -- tables -------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def result_row(c: Candidate, s: dict, seconds: float) -> list:
    return [c.method if c.kind == "faceclust" else f"*{c.method}*", c.settings,
            f"{s['bcubed_f1']:.4f}", f"{s['bcubed_precision']:.4f}", f"{s['bcubed_recall']:.4f}",
            f"{s['pairwise_precision']:.4f}", f"{s['nmi']:.4f}",
            f"{s['people']} / {s['identities']}", s["unassigned"], f"{seconds:.1f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", action="append", metavar="NAME=PATH",
                        help=f"a labelled catalog (repeat); default: {' '.join(DEFAULT_CATALOGS)}")
    parser.add_argument("--synthetic", type=int, default=100_000, help="synthetic faces for the scale test")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--synthetic-only", action="store_true", help="only the scale test")
    parser.add_argument("--combined", action="store_true", help="also every catalog together, as one library")
    parser.add_argument("--methods", nargs="+", default=None, help="methods of the scale test (default: all)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per method, scale test")
    parser.add_argument("--synthetic-worker", nargs=2, metavar=("METHOD", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.synthetic_worker:
        synthetic_worker(args.synthetic_worker[0], Path(args.synthetic_worker[1]))
        return

    command = "$ " + shlex.join([".venv/bin/python", "benchmarks/bench_cluster.py", *(argv or sys.argv[1:])])
    print(f"# Clustering benchmark\n\n```\n{command}\n```\n")
    sets = [] if args.synthetic_only else [load_catalog(*spec.split("=", 1)) for spec in (args.catalog or DEFAULT_CATALOGS)]
    if sets and args.combined:
        sets.append(combined(sets))
    if sets:
        catalog_tables(sets)
    if not args.skip_synthetic:
        synthetic_table(args)


def catalog_tables(sets: list[LabelledFaces]) -> None:
    print(table(["set", "photos", "photos with faces", "faces", "identities", "identities with one photo"],
                [[d.name, d.photos, len(np.unique(d.photo)), len(d.vectors), identities(d),
                  sum(1 for v in Counter(dict(zip(d.photo, d.label)).values()).values() if v == 1)]
                 for d in sets]))

    print("\n## The descriptors: VAL@FAR over all pairs of labelled faces\n")
    val_rows = []
    for d in sets:
        scored = assign_labels(d.photo, d.label, np.full(len(d.vectors), -1), d.size)
        for name, x in (("dlib, raw", d.reference), ("dlib, L2-normalised", normalize_rows(d.reference)),
                        ("the catalog's model (L2-normalised)", normalize_rows(d.vectors))):
            v = val_at_far(x[scored], d.label[scored])
            val_rows.append([d.name, name, f"{v[1e-3][0]:.4f} (d < {v[1e-3][1]:.3f})",
                             f"{v[1e-2][0]:.4f} (d < {v[1e-2][1]:.3f})"])
    print(table(["set", "descriptors", "VAL @ FAR=1e-3", "VAL @ FAR=1e-2"], val_rows))

    results: dict[str, list[tuple[Candidate, dict]]] = {}
    header = ["method", "settings", "BCubed F1", "BCubed P", "BCubed R", "pairwise P", "NMI",
              "people / identities", "unassigned", "s"]
    for d in sets:
        rows, results[d.name] = [], []
        for c in references() + candidates():
            start = time.perf_counter()
            labels = c.run(d)
            seconds = time.perf_counter() - start
            s = score(d, labels)
            results[d.name].append((c, s))
            rows.append(result_row(c, s, seconds))
            print(f"  {d.name}: {c.method} {c.settings}: {s['bcubed_f1']:.4f}", file=sys.stderr, flush=True)
        print(f"\n## {d.name}: every method (references in italics)\n")
        print(table(header, rows))

    print("\n## The default against the best reference\n")
    summary = []
    for d in sets:
        refs = [(c, s) for c, s in results[d.name] if c.kind == "reference"]
        best_c, best = max(refs, key=lambda cs: cs[1]["bcubed_f1"])
        default = results[d.name][len(refs)][1]
        summary.append([d.name, f"{default['bcubed_f1']:.4f}", f"{default['pairwise_precision']:.4f}",
                        f"{best['bcubed_f1']:.4f} ({best_c.method} {best_c.settings})",
                        "yes" if default["bcubed_f1"] >= best["bcubed_f1"] else "NO",
                        "yes" if default["pairwise_precision"] >= 0.98 else "NO"])
    print(table(["set", "default BCubed F1", "default pairwise P",
                 "best reference BCubed F1", "F1 ≥ best reference", "pairwise P ≥ 0.98"], summary))



def synthetic_table(args) -> None:
    n = args.synthetic
    print(f"\n## {n:,} synthetic faces ({max(1, n // 10):,} identities), each method at its defaults\n")
    print(f"Each method runs in a fresh process that loads the same saved faces ({n * 128 * 4 / 1e6:.0f} MB); RSS before = "
          "after imports and loading; peak RSS = the process's high-water mark while clustering (reset just "
          "before). Quality is against the generating identities.\n")
    rows = []
    for r in run_synthetic(n, args.timeout, args.methods):
        if "error" in r:
            rows.append([r["method"], r["error"], "", "", "", "", ""])
            continue
        rows.append([r["method"], f"{r['seconds']:.1f}", f"{r['peak_mb']:.0f}", f"{r['before_mb']:.0f}",
                     f"{r['bcubed_f1']:.4f}", f"{r['pairwise_precision']:.4f}",
                     f"{r['people']} / {r['identities']}"])
    print(table(["method", "wall s", "peak RSS MB", "RSS before MB", "BCubed F1", "pairwise P",
                 "clusters / identities"], rows))


if __name__ == "__main__":
    main()
