"""The allocator settings of the chunked path take effect on this (glibc) machine."""

from __future__ import annotations

import platform

import pytest

from retainwise.uploads import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_glibc_takes_the_fixed_mmap_threshold_and_the_arena_cap():
    memory.bound_allocator.cache_clear()
    assert memory.bound_allocator() is True
    memory.release_free_memory()  # malloc_trim and Arrow's release_unused, without error
