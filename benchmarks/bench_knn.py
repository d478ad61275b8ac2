"""Which index for the k-NN graph the clusterers build (issue 14, step 5)? Recall and time by size.

    .venv/bin/python benchmarks/bench_knn.py --faces 1000000

On synthetic faces (``bench_cluster.synthetic_faces``, 128-D, dlib's scale), the graph every
clusterer starts from: each face's 30 nearest others. Recall@10: of each sampled face's 10
nearest others (exact search), the share the index returns among its first 10. Times are for
the whole graph (every face a query); a search over ``--queries`` faces, scaled up, when the
whole would take too long. Compared: ``knn_graph`` itself (the whole graph, timed: an inverted
file of 4·sqrt(n) lists, big lists cut, searched list by list by matrix products), FAISS's own
inverted file with the same lists at several probe counts (knn_graph before 2026-12-07), and
HNSW at several search depths. ``--skip graph ivf hnsw`` leaves some out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

K = 31  # knn_graph asks for 30 others and itself


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000, help="faces whose exact neighbours are the truth")
    parser.add_argument("--queries", type=int, default=50_000, help="faces searched to time a method")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 0], help="0: knn_graph's own choice")
    parser.add_argument("--ef", type=int, nargs="+", default=[48, 96])
    parser.add_argument("--skip", nargs="*", default=[], choices=["graph", "ivf", "hnsw"],
                        help="leave out knn_graph itself, FAISS's inverted file or HNSW")
    args = parser.parse_args()

    import faiss

    from bench_cluster import synthetic_faces

    x, _ = synthetic_faces(args.faces, max(1, args.faces // 10))
    n, dim = x.shape
    rng = np.random.default_rng(0)
    sample = rng.choice(n, min(n, args.sample), replace=False)
    queries = rng.choice(n, min(n, args.queries), replace=False)
    scale = n / len(queries)
    flat = faiss.IndexFlatL2(dim)
    flat.add(x)
    started = time.perf_counter()
    _, exact = flat.search(x[sample], K + 1)
    flat_seconds = (time.perf_counter() - started) * n / len(sample)
    del flat
    truth = [[j for j in row if j != s][:10] for s, row in zip(sample, exact)]

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(t) & set([j for j in row if j != s][:10])) / 10
                              for s, t, row in zip(sample, truth, found)]))

    rows = [["exact (flat)", "-", f"{flat_seconds:.0f} (from {len(sample):,} queries)", "1.0000"]]
    if "graph" not in args.skip:
        from faceclust.catalog.index import knn_graph

        started = time.perf_counter()
        _, graph = knn_graph(x, K - 1)  # the whole graph, timed as a whole
        seconds = time.perf_counter() - started
        nlist = int(4 * np.sqrt(n))
        rows.append([f"**knn_graph: {nlist} lists (big ones cut), {max(16, nlist // 64)} probed, "
                     "searched by matrix products**", "(in search)", f"{seconds:.0f}",
                     f"{recall(np.c_[sample, graph[sample]]):.4f}"])
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
        del graph
    if "ivf" in args.skip:
        args.nprobe = []
    nlist = int(4 * np.sqrt(n))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
    started = time.perf_counter()
    ivf.train(x[rng.choice(n, min(n, nlist * 40), replace=False)])
    ivf.add(x)
    build = time.perf_counter() - started
    for nprobe in args.nprobe:
        ivf.nprobe = nprobe or max(16, nlist // 64)
        found = ivf.search(x[sample], K + 1)[1]
        started = time.perf_counter()
        ivf.search(x[queries], K + 1)
        seconds = (time.perf_counter() - started) * scale
        label = f"FAISS IVF{nlist}, nprobe {ivf.nprobe}" + (" (knn_graph's before)" if not nprobe else "")
        rows.append([label, f"{build:.0f}", f"{seconds:.0f}", f"{recall(found):.4f}"])
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    del ivf
    if "hnsw" in args.skip:
        args.ef = []
    hnsw = faiss.IndexHNSWFlat(dim, 16)
    hnsw.hnsw.efConstruction = 40
    started = time.perf_counter()
    if args.ef:
        hnsw.add(x)
    build = time.perf_counter() - started
    for ef in args.ef:
        hnsw.hnsw.efSearch = ef
        found = hnsw.search(x[sample], K + 1)[1]
        started = time.perf_counter()
        hnsw.search(x[queries], K + 1)
        seconds = (time.perf_counter() - started) * scale
        rows.append([f"HNSW M 16, efConstruction 40, efSearch {ef}", f"{build:.0f}", f"{seconds:.0f}",
                     f"{recall(found):.4f}"])
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    print(f"\n{n:,} synthetic faces ({dim}-D), the k-NN graph of {K - 1} neighbours; times in s on this machine\n")
    print("| index | build s | search s, every face a query | recall@10 |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
