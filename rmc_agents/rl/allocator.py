"""Learner processes keep the memory they free, for the next update (glibc's ``mallopt``).

A learner update allocates and frees the same large temporaries every time: the unroll's per-step
activations, their gradients, the ``[chunks, T, rows, features]`` input projections (12 MB at the
default size, 37 MB at the paper's). glibc serves allocations above its mmap threshold (128 KB to
32 MB, adjusted as it goes) with fresh pages from the kernel and returns them on free, and it
trims freed memory at the top of its heap beyond 128 KB, so every update pays the page faults of
touching that memory again. In a virtual machine a page fault is costly. Measured here (2 CPUs,
one thread, a firecracker VM; ``python bench/learner_pipeline.py --batches 0 --train-seconds 0``):
see ``docs/performance.md``.

:func:`keep_freed_memory` raises both thresholds, so that freed memory stays in the process's heap
and is reused. The process's resident memory stays at its peak instead of shrinking between
updates. It changes nothing but speed; it is a no-op where the C library has no ``mallopt`` (not
glibc: macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

# glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Allocations up to this size come from the heap (and are reused) rather than fresh mappings.
MMAP_THRESHOLD = 256 << 20
#: Free memory kept at the top of the heap before any is returned to the system.
TRIM_THRESHOLD = 1 << 30

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once). Returns whether they were
    set: False where there is no glibc ``mallopt`` or it refused the values."""
    global _done
    if _done is None:
        _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
