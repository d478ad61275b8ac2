"""Process memory policy for the command-line tool.

glibc hands large allocations (the detector's tiled pyramid and conv activations: megabytes per
photo) straight to the kernel and unmaps them when freed, so every photo pays again for
zero-filled pages: on a 1024x768 photo that was a third of the detector's time. Raising the
thresholds makes freed memory stay in the heap for the next photo. The process keeps its peak
memory instead of returning it, which suits a command that runs and exits; a library caller's
process is left alone (only ``faceclust``'s entry point calls this).

Those thresholds are the main heap's: threads other than the main one get heaps of their own
(glibc's arenas), which give every large block back when it is freed. The scan detects in
worker threads, so all threads share the main heap (one arena): with an arena per thread a
12-megapixel scan spent 5-10 s of system time re-zeroing pages (benchmarks/bench_phone.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory instead of returning it; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # A 1600 px photo's tiled pyramid is ~80 MB; glibc 2.36 takes 512 MiB, older ones may
    # refuse more than 32 MiB (HEAP_MAX_SIZE / 2), which still covers the smaller buffers.
    mmap_ok = bool(mallopt(_M_MMAP_THRESHOLD, 512 << 20) or mallopt(_M_MMAP_THRESHOLD, 32 << 20))
    # Before any thread starts: arenas already made would keep serving their threads.
    one_heap = bool(mallopt(_M_ARENA_MAX, 1))
    return mmap_ok and one_heap and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
