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


def test_a_trim_asked_for_too_soon_runs_once_the_interval_is_over(monkeypatch) -> None:
    import time

    from backstory import memory

    pending = memory._timer
    if pending is not None:  # left by code an earlier test ran
        pending.cancel()
        pending.join()
        memory._timer = None
    runs: list[float] = []
    monkeypatch.setattr(memory, "_last", time.monotonic())  # a trim just ran
    monkeypatch.setattr(memory, "_libc", type("Libc", (), {"malloc_trim": staticmethod(lambda _: runs.append(time.monotonic()))})())
    asked = time.monotonic()
    memory.release_soon(0.3)
    memory.release_soon(0.3)  # one pending trim at most
    assert runs == []
    pending = memory._timer
    assert pending is not None
    pending.join(10)  # waits for the timer itself, not for a guess of how long it takes
    assert len(runs) == 1 and runs[0] - asked >= 0.25
    # Skipped when the condition no longer holds at that moment (the server is busy again).
    monkeypatch.setattr(memory, "_last", time.monotonic())
    memory.release_soon(0.2, when=lambda: False)
    pending = memory._timer
    assert pending is not None
    pending.join(10)
    assert len(runs) == 1
    memory.release_soon(0.0)  # due: runs at once, in this thread
    assert len(runs) == 2


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork")
def test_a_forked_child_can_schedule_its_own_trims(monkeypatch) -> None:
    import os
    import time

    from backstory import memory

    monkeypatch.setattr(memory, "_last", time.monotonic())  # a trim just ran
    memory.release_soon(60.0)  # so this one waits, on a timer thread a forked child will not have
    pending = memory._timer
    assert pending is not None
    try:
        pid = os.fork()
        if pid == 0:
            ok = memory._timer is None
            memory.release_soon(60.0)
            ok = ok and memory._timer is not None
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        pending.cancel()
        memory._timer = None
