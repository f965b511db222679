"""Heap trimming: rate-limited, and it really returns freed memory."""

from __future__ import annotations

import sys

import pytest

from backstory.memory import release_free_memory


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_returns_freed_heap_and_is_rate_limited(monkeypatch) -> None:
    from backstory import memory

    monkeypatch.setattr(memory, "_last", 0.0)
    keep = []
    blocks = [bytearray(100_000) for _ in range(1500)]  # ~150 MB in blocks below the mmap threshold
    for i in range(0, len(blocks), 50):
        keep.append(blocks[i])  # a few survivors pin the top of the heap: only a trim frees the rest
    before = _rss_mb()
    del blocks
    assert release_free_memory(60.0) is True
    after = _rss_mb()
    assert before - after > 50, (before, after)
    assert release_free_memory(60.0) is False  # ran less than 60 s ago
    assert len(keep) == 30
