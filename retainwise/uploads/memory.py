"""Hand memory freed between chunks back to the OS (glibc's malloc, where the process runs on it).

The chunked path allocates and frees arrays of a few MB in five threads. glibc raises its mmap
threshold after the first such free, so later arrays come from per-thread arenas that keep freed
pages resident: RSS ends up near the sum of each thread's own peak, not the peak of what is live.
A fixed threshold sends arrays of a megabyte or more straight to mmap (returned on free), two
arenas bound the rest, and a trim after each chunk returns what the arenas hold free.
"""

from __future__ import annotations

import ctypes
import functools

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 2**20
ARENAS = 2


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """glibc's malloc functions, or None (musl, macOS): then nothing here does anything."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def bound_allocator() -> bool:
    """Once per process: a fixed mmap threshold and at most ARENAS arenas; True where applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_ARENA_MAX, ARENAS)
    )


def release_free_memory() -> None:
    """Return the free pages of glibc's arenas and of Arrow's pool (mimalloc) to the OS; a
    few ms, after each chunk is written."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
