"""How many CPU threads faceclust computes with: ``--threads N``, else ``$FACECLUST_THREADS``,
else the cores this process may use (``os.sched_getaffinity``: a container's or ``taskset``'s
limit, not the machine's core count). Torch, FAISS, the OpenMP/BLAS pools of numpy, hdbscan
and scikit-learn, and the scan's decode pool all follow it.

The bottom layer: imports nothing of faceclust but errors.
"""

from __future__ import annotations

import os

from faceclust.errors import UsageProblem

ENV = "FACECLUST_THREADS"
_POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_chosen: int | None = None


def available() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads() -> int:
    """The thread count to compute with (see the module's docstring)."""
    if _chosen is not None:
        return _chosen
    value = os.environ.get(ENV, "").strip()
    if not value:
        return available()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise UsageProblem(f"{ENV}={value!r} is not a number of threads; give a whole number of at least 1")
    return count


def set_threads(count: int | None) -> int:
    """Use ``count`` threads from now on (None: the environment's or the default). Call it
    before the heavy libraries load, so that their thread pools start at that size too;
    torch and FAISS are also told directly if already loaded. Returns the count in effect."""
    global _chosen
    if count is not None and count < 1:
        raise UsageProblem(f"--threads must be at least 1 (got {count})")
    _chosen = count
    n = threads()
    for name in _POOLS:
        if count is not None or name not in os.environ:
            os.environ[name] = str(n)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)
    return n


def apply_to_faiss() -> None:
    """Tell FAISS (just imported) the thread count."""
    import faiss

    faiss.omp_set_num_threads(threads())
