"""How many CPU threads faceclust computes with: ``--threads N``, else ``$FACECLUST_THREADS``,
else the cores this process may use (``os.sched_getaffinity``: a container's or ``taskset``'s
limit, not the machine's core count). Torch, FAISS, the OpenMP/BLAS pools of numpy, hdbscan
and scikit-learn, and the scan's decode pool all follow it.

The bottom layer: imports nothing of faceclust but errors.
"""

from __future__ import annotations

import os
import sys
import threading

from faceclust.errors import UsageProblem

ENV = "FACECLUST_THREADS"
_POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_chosen: int | None = None
_this_thread = threading.local()


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
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)
    return n


def apply_to_faiss() -> None:
    """Tell FAISS (just imported) the thread count."""
    import faiss

    faiss.omp_set_num_threads(threads())


def compute_alone_on_this_thread() -> None:
    """Torch and onnxruntime compute on the calling thread alone from now on: for workers that
    run side by side, one a core, rather than each op spread over every core. On 2 cores two
    workers run YuNet at 1.7x one thread's rate and dlib's ResNet at 1.8x, a second thread per
    op at 1.5x (SFace about even: benchmarks/bench_threads.py).
    Torch's thread count is the calling thread's own (OpenMP's), so each worker calls this;
    torch is not imported for it (a model that imports it later is told at the next call).
    Onnxruntime's sessions ask :func:`compute_threads`."""
    _this_thread.alone = True
    if "torch" not in sys.modules or getattr(_this_thread, "torch_alone", False):
        return
    import torch  # waits for an import another thread has under way (sys.modules holds it half-made)

    torch.set_num_threads(1)
    _this_thread.torch_alone = True


def compute_threads() -> int:
    """Threads a computation started on the calling thread may use: 1 where it computes alone
    (:func:`compute_alone_on_this_thread`, :class:`side_by_side`), else :func:`threads`."""
    return 1 if getattr(_this_thread, "alone", False) else threads()


class side_by_side:
    """``with side_by_side():`` the calling thread computes alone (see
    :func:`compute_alone_on_this_thread`) until the block ends, then on ``threads()`` again."""

    def __enter__(self) -> "side_by_side":
        self._alone = getattr(_this_thread, "alone", False)
        _this_thread.alone = True
        self._torch = None  # not imported: nothing computes with it
        if "torch" in sys.modules:
            import torch  # complete, even if another thread is importing it

            self._torch = torch
            self._before = self._torch.get_num_threads()
            self._torch.set_num_threads(1)
        return self

    def __exit__(self, *exc) -> None:
        _this_thread.alone = self._alone
        if self._torch is not None:
            self._torch.set_num_threads(self._before)


GIL_TURN = 0.0005  # seconds; Python's default is 0.005


class short_gil_turns:
    """``with short_gil_turns():`` threads take turns at the GIL every ``GIL_TURN`` seconds
    instead of Python's 5 ms, then as before. A scan's workers compute in C (Pillow's decoders,
    onnxruntime, torch) and come back for the GIL many times a photo (Pillow reads and copies
    in 64 KB pieces); while another thread runs Python (the main thread importing torch) each
    return could wait a whole turn. 80 photos of 12 MP: 4-5% faster end to end, with less CPU
    (benchmarks/bench_versions.py, docs/benchmarks.md). Process-wide while any such block
    lasts (blocks on several threads: the interval comes back when the last one ends)."""

    _lock = threading.Lock()
    _open = 0
    _before = 0.0

    def __enter__(self) -> "short_gil_turns":
        cls = type(self)
        with cls._lock:
            if cls._open == 0:
                cls._before = sys.getswitchinterval()
                sys.setswitchinterval(min(cls._before, GIL_TURN))
            cls._open += 1
        return self

    def __exit__(self, *exc) -> None:
        cls = type(self)
        with cls._lock:
            cls._open -= 1
            if cls._open == 0:
                sys.setswitchinterval(cls._before)
