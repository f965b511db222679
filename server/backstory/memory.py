"""Giving freed heap back to the system.

Analyses allocate and free a lot (page HTML, parse trees, token arrays) from several threads;
glibc keeps most of what is freed, so a server's resident memory climbs by ~100 MB over its
first few hundred pages and stays there. ``malloc_trim`` returns the free pages; it costs a few
milliseconds, so callers run it when idle and not more often than every few seconds.
"""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_last = 0.0
_libc = None


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
