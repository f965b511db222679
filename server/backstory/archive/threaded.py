"""Storage on blocking DB-API connections, shared by the SQL backends: one writer thread, pooled readers.

Every write is queued to a single writer thread that owns the only read-write connection; queued
writes are committed together (one transaction, a savepoint each, so one bad write fails alone)
under the archive's write lock. Reads run in a small thread pool, each thread with its own
connection. The event loop only awaits futures. The writer records the feed positions of its
own changes, so that this process's follower skips them (see ``archive/feed.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from typing import Any, Callable, TypeVar

from ..threads import name_os_thread
from .feed import Change, ChangesPruned
from .sql import SqlRows
from .storage import AfterCommit

log = logging.getLogger(__name__)
T = TypeVar("T")

_BATCH = 128
# The change feed keeps this many latest changes; a follower further behind reloads its index.
CHANGES_KEPT = 10_000
_FEED_PAGE = 1_000  # changes handed to a follower per call
_PRUNED_THROUGH = "SELECT coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'changes_pruned_through'), 0)"


class Writer(threading.Thread):
    """The one thread that writes. Jobs are ``fn(rows) -> (result, after_commit | None)``."""

    def __init__(self, storage: "ThreadedStorage") -> None:
        super().__init__(name="backstory-archive-writer", daemon=True)
        self.storage = storage
        self.jobs: queue.Queue = queue.Queue()
        self.conn: Any = None
        self.ready = concurrent.futures.Future()
        # Feed positions of this writer's own changes, as (after, through) ranges: its index has
        # them already, so its follower skips them. Only ranges still in the feed are kept.
        self.own: list[tuple[int, int]] = []
        self.own_lock = threading.Lock()
        self._pruned_through = 0

    def submit(self, fn: Callable) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((fn, fut))
        return fut

    def run(self) -> None:
        name_os_thread()
        try:
            self.conn = self.storage.connect(readonly=False)
            self.storage.migrate(self.conn)
        except BaseException as exc:  # noqa: BLE001 - reported to the opener
            self.ready.set_exception(exc)
            return
        self.ready.set_result(None)
        conn = self.conn
        while True:
            first = self.jobs.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < _BATCH:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(conn, batch)
            if stop:
                break
        self.storage.closing(conn)
        conn.close()

    def _mark_own(self, head: int, through: int) -> list[tuple[int, int]]:
        """Record (head, through] as this writer's; returns the ranges before, to restore."""
        with self.own_lock:
            before = self.own
            own = [r for r in before if r[1] > through - CHANGES_KEPT]
            if own and own[-1][1] == head:  # consecutive batches: one range
                head = own.pop()[0]
            self.own = [*own, (head, through)]
        return before

    def is_own(self, seq: int) -> bool:
        with self.own_lock:
            return any(after < seq <= through for after, through in self.own)

    def _prune_feed(self, rows: SqlRows, through: int) -> None:
        """Cut the feed to its latest CHANGES_KEPT changes, once it holds twice as many (one
        delete per CHANGES_KEPT changes, not one per batch)."""
        if through - self._pruned_through < 2 * CHANGES_KEPT:
            return
        cut = max(through - CHANGES_KEPT, rows.execute(_PRUNED_THROUGH).fetchone()[0])
        rows.execute("DELETE FROM changes WHERE seq <= ?", (cut,))
        rows.execute(
            "INSERT INTO meta (key, value) VALUES ('changes_pruned_through', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(cut),)
        )
        self._pruned_through = cut

    def _run_batch(self, conn: Any, batch: list) -> None:
        done = []
        own_before = None
        rows = self.storage.rows(conn)
        try:
            self.storage.begin(conn)  # takes the archive's write lock, across processes
            head = rows.feed_head()
            for fn, fut in batch:
                if not fut.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    result = fn(rows)
                    conn.execute("RELEASE job")
                    done.append((fut, result, None))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    done.append((fut, None, exc))
            # The write lock is held since begin: every change after head is this batch's.
            through = rows.feed_head()
            if through > head:
                self._prune_feed(rows, through)
                own_before = self._mark_own(head, through)  # before the commit: a follower may read at once
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the commit failed: every job fails
            if self.storage.in_transaction(conn):
                conn.execute("ROLLBACK")
            if own_before is not None:  # rolled back: those positions will be another writer's
                with self.own_lock:
                    self.own = own_before
            for fut, _r, _e in done:
                fut.set_exception(exc)
            for _fn, fut in batch[len(done):]:
                if not fut.done():
                    fut.set_exception(exc)
            return
        results = []
        for fut, result, exc in done:
            if exc is not None:
                results.append((fut, None, exc))
                continue
            value, after = result
            try:
                if after is not None:
                    after()
            except BaseException as after_exc:  # noqa: BLE001
                log.exception("archive index update failed")
                results.append((fut, None, after_exc))
                continue
            results.append((fut, value, None))
        for fut, value, exc in results:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)


class ThreadedStorage:
    """A :class:`backstory.archive.storage.Storage` on blocking DB-API connections: one writer
    thread (see :class:`Writer`) and a pool of reader threads with a connection each. A backend
    subclasses it with how to connect, migrate, begin a write and read rows."""

    def __init__(self, readers: int = 4) -> None:
        self._readers = readers
        self._writer: Writer | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False

    # ---- what a backend supplies ------------------------------------------------------------
    def prepare(self) -> None:
        """Anything to do before the first connection (create a directory...)."""

    def connect(self, readonly: bool) -> Any:
        raise NotImplementedError

    def rows(self, conn: Any) -> SqlRows:
        raise NotImplementedError

    def migrate(self, conn: Any) -> None:
        raise NotImplementedError

    def begin(self, conn: Any) -> None:
        """Begin a write transaction holding the archive's write lock (one writer at a time, in
        every process: a story's duplicate check and its write see no one else's meanwhile)."""
        raise NotImplementedError

    def in_transaction(self, conn: Any) -> bool:
        raise NotImplementedError

    def closing(self, conn: Any) -> None:
        """Housekeeping on the writer's connection before it closes."""

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise RuntimeError("archive is closed")
            self.prepare()
            writer = Writer(self)
            writer.start()
            await asyncio.wrap_future(writer.ready)
            self._writer = writer
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._readers, thread_name_prefix="backstory-archive-read", initializer=name_os_thread
            )
            self._started = True

    def _reader(self) -> SqlRows:
        rows = getattr(self._local, "rows", None)
        if rows is None:
            conn = self.connect(readonly=True)
            rows = self._local.rows = self.rows(conn)
            with self._conns_lock:
                self._conns.append(conn)
        return rows

    async def read(self, fn: Callable[[SqlRows], T]) -> T:
        if not self._started:
            await self.start()
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self._reader()))

    async def write(self, fn: Callable[[SqlRows], tuple[T, AfterCommit]]) -> T:
        if not self._started:
            await self.start()
        return await asyncio.wrap_future(self._writer.submit(fn))

    async def changes_since(self, seq: int) -> tuple[int, list[Change]]:
        def job(rows: SqlRows) -> tuple[int, list[Change]]:
            found = rows.execute(
                "SELECT seq, story_id, kind FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, _FEED_PAGE)
            ).fetchall()
            # Read after the rows: a cut that removed some of them had committed before they were read.
            if seq < rows._one(_PRUNED_THROUGH)[0]:
                raise ChangesPruned(f"the change feed no longer holds the changes after {seq}")
            if not found:
                return seq, []
            return found[-1][0], [Change(r[1], r[2]) for r in found if not self._writer.is_own(r[0])]

        return await self.read(job)

    async def wait_for_changes(self, timeout: float) -> None:
        """Without notifications the feed is polled: every ``timeout`` seconds."""
        await asyncio.sleep(timeout)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        writer = self._writer
        writer.jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, writer.join)
        self._pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
