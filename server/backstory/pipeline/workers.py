"""The analysis threads and the slots that bound them, shared by readers and the backlog.

A reader's extraction runs on threads of its own, outside the slots: the facts of a page (its
clean text, title, date) are ready after it, even while every slot is busy with the language stages.
And extractions first: a reader's language stages start once no extraction is waiting or running
(for at most :data:`EXTRACTION_FIRST` s), as their Python work shares the one interpreter lock:
under load the queue forms before the language stages, not before the facts.

Readers first: :attr:`Workers.active` counts the client analyses running or queued, and the
backlog starts a story only while it is zero. When it falls to zero the heap's freed pages go
back to the system (rate-limited, see :mod:`backstory.memory`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, ParamSpec, TypeVar

from ..memory import release_soon
from ..threads import name_os_thread

TRIM_INTERVAL = 5.0  # seconds between heap trims when the server falls idle
EXTRACTION_THREADS = 2  # extraction is short CPU work: as many threads as the cores it was measured on
EXTRACTION_FIRST = 2.0  # seconds a reader's language stages wait at most for the extractions under way

P = ParamSpec("P")
T = TypeVar("T")


def retrieve(future: asyncio.Future) -> None:
    """Mark a finished future's error as seen: one whose waiters have all gone is not an error
    to log at exit."""
    if not future.cancelled():
        future.exception()


class Workers:
    """``count`` threads for the CPU stages and as many slots: an analysis holds one from start to end."""

    def __init__(self, count: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="analyze", initializer=name_os_thread)
        self._extraction = ThreadPoolExecutor(max_workers=EXTRACTION_THREADS, thread_name_prefix="extract",
                                              initializer=name_os_thread)
        self._slots = asyncio.Semaphore(count)
        self.extracting = 0  # readers' extractions waiting or running
        self._no_extraction = asyncio.Event()
        self._no_extraction.set()
        self.active = 0  # analyses for a client, running or queued

    def idle(self) -> bool:
        return not self.active

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread (the caller holds a slot, or needs none)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def extract(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on an extraction thread: never queued behind the language stages."""
        loop = asyncio.get_running_loop()
        self.extracting += 1
        self._no_extraction.clear()
        try:
            return await loop.run_in_executor(self._extraction, lambda: fn(*args, **kwargs))
        finally:
            self.extracting -= 1
            if not self.extracting:
                self._no_extraction.set()

    async def extractions_first(self) -> None:
        """Return once no reader's extraction waits or runs, or after :data:`EXTRACTION_FIRST` s."""
        if self.extracting:
            try:
                await asyncio.wait_for(self._no_extraction.wait(), EXTRACTION_FIRST)
            except asyncio.TimeoutError:
                pass

    async def run_in_slot(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`run` once a slot is free, holding it meanwhile (the backlog's way in)."""
        async with self._slots:
            return await self.run(fn, *args, **kwargs)

    def reader_in(self) -> None:
        """Count a reader's analysis in (the backlog waits while any is counted); :meth:`reader_left`
        or :meth:`reader_done` counts it out."""
        self.active += 1

    async def reader_slot(self, counted: bool = False) -> None:
        """Take a slot for a reader's analysis, counting it in first unless it is ``counted``
        already; :meth:`reader_done` gives both back (and only the count when this is cancelled)."""
        if not counted:
            self.reader_in()
        try:
            await self._slots.acquire()
        except BaseException:
            self.reader_left()
            raise

    def reader_done(self, work: asyncio.Future) -> None:
        """Give back the slot and the count of a reader's analysis (a done callback of ``work``)."""
        self._slots.release()
        retrieve(work)
        self.reader_left()

    def reader_left(self) -> None:
        self.active -= 1
        if not self.active:  # idle: hand the request's freed heap back (rate-limited)
            try:
                self._pool.submit(release_soon, TRIM_INTERVAL, self.idle)
            except RuntimeError:  # shutting down
                pass

    async def readers_gone(self, poll: float) -> None:
        """Return once no reader's analysis is running or queued (checked every ``poll`` seconds)."""
        while self.active:
            await asyncio.sleep(poll)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._extraction.shutdown(wait=False, cancel_futures=True)
