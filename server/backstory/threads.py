"""The server's threads carry their names to the operating system.

Python 3.11 leaves every thread's OS name as the program's ("python"), so ``top -H``, ``ps -L``
and ``/proc/PID/task/*/comm`` cannot tell the analysis workers from the archive's threads or the
event loop. :func:`name_os_thread` copies the Python name (Linux: 15 characters at most; the
``backstory-`` prefix is dropped); pools call it as their initializer. It never fails: where the
name cannot be set, the thread keeps the old one.
"""

from __future__ import annotations

import threading


def name_os_thread() -> None:
    """Give the calling thread's OS name its Python name (``analyze_0``, ``archive-writer``...)."""
    name = threading.current_thread().name.removeprefix("backstory-")[:15]
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w", encoding="utf-8") as comm:
            comm.write(name)
    except OSError:  # not Linux, or /proc read-only: the name is only a label
        pass
