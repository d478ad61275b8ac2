"""New photos in a large library (issue 14, step 5): a catalog of N faces whose people already
exist, then ``--new`` new faces (new photos), and the incremental ``faceclust cluster`` that
places them, timed as a whole process with its peak RSS (os.wait4).

    .venv/bin/python benchmarks/bench_incremental.py --faces 1000000 --new 10000 --work /tmp/inc
    .venv/bin/python benchmarks/bench_incremental.py ... --code /tmp/old-checkout   # another version

The library: synthetic faces of the default (fused, 256-D) descriptor from
``bench_cluster.synthetic_faces`` at the fused model's scale: identities with heavy-tailed
sizes, look-alike families, per-face spread; every identity of two or more faces is a person
(as a full clustering would leave them), and a tenth of all faces are strangers seen once
(unknown faces clustering has seen). The new faces are drawn from the same identities (most
join a person, some make new ones) and a tenth are new strangers. The catalog is made once
through the catalog's own writers and kept in --work (about 1.6 KB a face); each round copies
the file, adds the new faces and clusters the copy. ``--code DIR`` runs the faceclust of
another checkout on the same catalog (a before/after in one session).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

VENV_BIN = Path(sys.executable).parent
BATCH = 5000


def _write_faces(cat, model_id: str, vectors: np.ndarray, first_photo: int) -> None:
    from faceclust.records import FaceArrays, PhotoResult

    batch = []
    for i, v in enumerate(vectors):
        n = first_photo + i
        arrays = FaceArrays(boxes=np.array([[100, 100, 220, 220]], np.float32), scores=np.array([1.0], np.float32),
                            landmarks=np.zeros((1, 5, 2), np.float32), embeddings=v[None])
        batch.append(PhotoResult("faces", f"/bench/{n // 1000:04d}/IMG_{n:07d}.jpg", 1000 + n, n, f"h{n}",
                                 4032, 3024, arrays))
        if len(batch) == BATCH:
            cat.write_results(batch, model_id, "bench", None)
            batch = []
    if batch:
        cat.write_results(batch, model_id, "bench", None)


def _strangers(rng, count: int, dim: int) -> np.ndarray:
    noise = rng.normal(size=(count, dim)).astype(np.float32)
    return noise / np.linalg.norm(noise, axis=1, keepdims=True)


def build(path: Path, faces: int, new: int, seed: int = 0) -> dict:
    """The library of ``faces`` faces with its people in ``path``; ``new`` more faces saved
    beside it (``.new.npy``) for the rounds to add."""
    from bench_cluster import synthetic_faces

    from faceclust.catalog import Catalog
    from faceclust.faces.embed import ModelChoice, record_model

    model = ModelChoice.resolve()
    scale = model.distances.cluster_scale
    x, identity = synthetic_faces(faces + new, max(1, (faces + new) // 10), dim=256, seed=seed, scale=scale)
    # The new faces: the last ``new`` rows (the same identities, so most join a person), with
    # a tenth of them replaced by faces of nobody seen before; a tenth of the library's own
    # faces are such strangers too (bystanders: unknown faces every run must live with).
    rng = np.random.default_rng(seed + 1)
    old_x, old_id = x[:faces], identity[:faces].copy()
    strangers = rng.random(faces) < 0.1
    old_x[strangers] = _strangers(rng, int(strangers.sum()), x.shape[1])
    old_id[strangers] = -1 - np.arange(int(strangers.sum()))
    started = time.perf_counter()
    with Catalog(path) as cat:
        _write_faces(cat, model.model_id, old_x, 0)
        record_model(cat, model)
        face_ids = np.array([r[0] for r in cat.db.execute("SELECT id FROM faces ORDER BY id")])
        people, counts = np.unique(old_id[old_id >= 0], return_counts=True)
        placeholder = {int(p): -(k + 1) for k, p in enumerate(people[counts >= 2])}
        rows = [(int(f), placeholder[int(i)], "cluster") for f, i in zip(face_ids, old_id) if int(i) in placeholder]
        cat.write_clustering(rows, len(placeholder), replace=True, clustered=face_ids.tolist())
    built = time.perf_counter() - started
    new_x = x[faces:].copy()
    strangers = rng.random(new) < 0.1
    new_x[strangers] = _strangers(rng, int(strangers.sum()), x.shape[1])
    np.save(path.with_suffix(".new.npy"), new_x)
    return {"build_seconds": built, "people": len(placeholder), "assigned": len(rows)}


def add_new(path: Path, new_x: np.ndarray, faces: int) -> None:
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import ModelChoice

    with Catalog(path) as cat:
        _write_faces(cat, ModelChoice.resolve().model_id, new_x, faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-incremental"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--code", type=Path, help="a checkout whose faceclust to run (default: this one)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base = args.work / f"library-{args.faces}.sqlite"
    if not base.exists():
        print(f"building a catalog of {args.faces:,} faces in {base} ...", file=sys.stderr, flush=True)
        partial = args.work / "partial.sqlite"
        info = build(partial, args.faces, args.new)
        os.replace(partial.with_suffix(".new.npy"), base.with_suffix(".new.npy"))
        os.replace(partial, base)
        print(f"built in {info['build_seconds']:.0f} s: {info['people']:,} people, {info['assigned']:,} faces assigned",
              file=sys.stderr, flush=True)
    env = dict(os.environ, FACECLUST_CACHE=str(args.work / "cache"))
    command = [str(VENV_BIN / "faceclust")]
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
        command = [sys.executable, "-m", "faceclust"]
    results = []
    for r in range(args.rounds):
        work = args.work / "round.sqlite"
        for leftover in args.work.glob("round.sqlite*"):
            leftover.unlink()
        shutil.copyfile(base, work)
        add_new(work, np.load(base.with_suffix(".new.npy")), args.faces)
        seconds, out, _ = _wait_timed([*command, "cluster", "--catalog", str(work), "--json"], env)
        results.append((seconds, out))
        print(f"round {r + 1}: {seconds[0]:.1f} s, peak RSS {seconds[1]:.0f} MB", file=sys.stderr, flush=True)
    print(f"\n{args.faces:,} faces with people, {args.new:,} new faces, incremental `faceclust cluster` "
          f"(a whole process, start-up included), {args.rounds} rounds, code: {args.code or ROOT}\n")
    print("| round | wall s | peak RSS MB | summary |")
    print("|---|---|---|---|")
    for r, ((seconds, peak), out) in enumerate(results, 1):
        print(f"| {r} | {seconds:.1f} | {peak:.0f} | {out.strip()} |")


def _wait_timed(args: list[str], env: dict) -> tuple[tuple[float, float], str, str]:
    """Run a process; (wall seconds, its own peak RSS in MB), stdout, stderr."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        # Not started in this checkout: ``python -m`` puts the current folder first on the path.
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env, cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed: {stderr.strip()[-800:]}")
    return (seconds, usage.ru_maxrss / 1024), stdout, stderr


if __name__ == "__main__":
    main()
