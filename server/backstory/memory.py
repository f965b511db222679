"""Giving freed heap back to the system.

Analyses allocate and free a lot (page HTML, parse trees, token arrays) from several threads;
glibc keeps most of what is freed, so a server's resident memory climbs over its first few
hundred pages and stays there. ``malloc_trim`` returns the free pages; it walks the heap, so
callers run it when idle and not more often than every few seconds; a call
that comes too soon after the last trim (:func:`release_soon`) leaves one trim pending for when
the interval is over, so a server that goes quiet always ends trimmed.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

_lock = threading.Lock()
_last = 0.0
_libc = None
_timer: threading.Timer | None = None


def release_free_memory(min_interval: float = 0.0) -> bool:
    """``malloc_trim(0)`` (glibc only; elsewhere nothing), at most once per ``min_interval``
    seconds. True when it ran."""
    global _last, _libc
    now = time.monotonic()
    with _lock:
        if now - _last < min_interval:
            return False
        _last = now
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def release_soon(min_interval: float, when: Callable[[], bool] | None = None) -> None:
    """Trim now if the last trim is ``min_interval`` seconds old; else once it is (one pending
    trim at most, on a timer thread), skipped then if ``when()`` is false (e.g. no longer idle)."""
    global _timer
    with _lock:
        wait = _last + min_interval - time.monotonic()
        if wait > 0:
            if _timer is None:
                _timer = threading.Timer(wait, _pending, (when,))
                _timer.daemon = True
                _timer.start()
            return
    release_free_memory(min_interval)


def _forget_pending_trim() -> None:
    global _timer, _lock
    _timer = None  # a forked child has no timer thread: a pending trim would never run in it
    _lock = threading.Lock()  # nor the thread that may have held the lock at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pending_trim)


def _pending(when: Callable[[], bool] | None) -> None:
    global _timer
    with _lock:
        _timer = None
    if when is None or when():
        release_free_memory()
