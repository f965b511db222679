"""Imports sent over HTTP (``POST /api/v1/imports``): each runs in the server that received it, as
a background task, through the same :func:`backstory.imports.read` and :func:`store` as
``backstory import`` (stored first, analysed later by the backlog or the workers).

Its progress is kept in the archive (the ``imports`` table), so any server of the archive can
report it. The row is written at most every :data:`SAVE_EVERY` seconds while entries come, and at
least every :data:`HEARTBEAT` seconds while none do: a running import whose row has not been
written for :data:`STALE_AFTER` seconds was on a server that stopped, and reads as interrupted
(sending the file again resumes it: what was stored is skipped).

The export waits in an unnamed temporary file (the system removes it with the process) and is read
in a thread, one entry at a time, so that parsing and inflating never hold the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, BinaryIO, Callable

import msgspec

from .. import errors
from ..archive.storage import AfterCommit, ImportRow, Storage, Writer
from ..config import Settings
from ..polite import PoliteFetcher
from ..schemas import ImportFailure, ImportStatus
from ..story import StoryRecord
from . import THE_FILE, Item, read
from .store import Tally, store

log = logging.getLogger(__name__)

SAVE_EVERY = 0.5  # seconds between progress writes while entries come
HEARTBEAT = 5.0  # seconds between writes while none do (a slow entry): the import is alive
STALE_AFTER = 30.0  # seconds without a write after which a running import reads as interrupted
AT_ONCE = 3  # imports a server receives and runs at once (each spools a file of up to 200 MB to disk)
FAILURES_KEPT = 100  # failures an import's report lists (it counts them all)
FEEDS_KEPT = 100
KEPT_FOR = timedelta(days=30)  # an import's report is forgotten this long after it started
INTERRUPTED = ("interrupted: the server running this import stopped; send the file again "
               "(what was stored is skipped)")

_failures = msgspec.json.Decoder(list[ImportFailure])
_feeds = msgspec.json.Decoder(list[str])
_json = msgspec.json.Encoder()


def _now() -> str:
    """Now, ISO 8601 in UTC to the millisecond: imports started in the same second keep their order."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _age(at: str) -> float:
    """Seconds since a stored moment."""
    return (datetime.now(timezone.utc) - datetime.fromisoformat(at)).total_seconds()


class ImportLog:
    """The imports of one archive: their rows, read as the API reports them."""

    def __init__(self, storage: Storage, stale_after: float = STALE_AFTER) -> None:
        self.storage = storage
        self.stale_after = stale_after

    async def save(self, row: ImportRow) -> None:
        await self.storage.write(lambda w: (w.put_import(row), None))

    async def get(self, import_id: str, owner: str | None) -> ImportStatus | None:
        """The import's report; None when there is none, or it is not ``owner``'s (None: anyone's)."""
        row = await self.storage.read(lambda r: r.import_row(import_id))
        if row is None or (owner is not None and row.added_by != owner):
            return None
        return self.status(row)

    async def recent(self, owner: str | None, limit: int) -> list[ImportStatus]:
        rows = await self.storage.read(lambda r: r.import_rows(owner, limit))
        return [self.status(row) for row in rows]

    def status(self, row: ImportRow) -> ImportStatus:
        status, error = row.status, row.error
        if status == "running" and _age(row.updated) > self.stale_after:
            status, error = "interrupted", INTERRUPTED
        return ImportStatus(
            import_id=row.import_id, status=status, format=row.format, size=row.size, read_bytes=row.read_bytes,
            imported=row.imported, skipped=row.skipped, failed=row.failed, failures=_failures.decode(row.failures),
            feeds_found=row.feeds_found, feeds=_feeds.decode(row.feeds), error=error, started=row.started,
            updated=row.updated, finished=row.finished,
        )


class _Reader:
    """An export's items, each read in a thread; the file is closed only between two reads."""

    def __init__(self, fh: BinaryIO, format: str) -> None:
        self.fh = fh
        self.items = read(fh, format)
        self.lock = threading.Lock()
        self.position = 0

    def _next(self) -> Item | StoryRecord | None:
        with self.lock:
            item = next(self.items, None)
            if not self.fh.closed:  # a zip's members are read by seeking: the furthest point, never back
                self.position = max(self.position, self.fh.tell())
            return item

    async def __aiter__(self) -> AsyncIterator[Item | StoryRecord]:
        while (item := await asyncio.to_thread(self._next)) is not None:
            yield item

    def close(self) -> None:
        with self.lock:
            self.items.close()
            self.fh.close()


class _Progress:
    """What an import has done so far, as its row."""

    def __init__(self, row: ImportRow, reader: _Reader) -> None:
        self.row, self.reader = row, reader
        self.tally = Tally()
        self.changed = False

    def step(self, tally: Tally) -> None:
        self.tally, self.changed = tally, True

    def current(self, **changes: Any) -> ImportRow:
        tally = self.tally
        self.row = self.row._replace(
            read_bytes=self.reader.position, imported=tally.imported, skipped=tally.skipped, failed=tally.failed,
            failures=_json.encode([ImportFailure(where=f.where, reason=f.reason, url=f.url)
                                   for f in tally.failures[:FAILURES_KEPT]]).decode(),
            feeds_found=len(tally.feeds), feeds=_json.encode([f.url for f in tally.feeds[:FEEDS_KEPT]]).decode(),
            updated=_now(), **changes,
        )
        self.changed = False
        return self.row


class Importer:
    """Runs the imports this server received; ``pipeline()`` gives the server's pipeline once it
    is ready (see :meth:`backstory.api.deps.Services.pipeline_ready`)."""

    def __init__(self, storage: Storage, archive: Any, pipeline: Callable[[], Awaitable[Any]], window: int,
                 settings: Settings) -> None:
        self.log = ImportLog(storage)
        self.settings = settings  # the polite fetcher's, for the entries that carry only a URL
        self.archive = archive
        self.pipeline = pipeline
        self.window = window
        self.tasks: set[asyncio.Task[None]] = set()
        self.receiving = 0  # files being received, not begun yet

    @contextlib.asynccontextmanager
    async def receiving_one(self) -> AsyncIterator[None]:
        """A place for one more file, for as long as it is being received; Busy (429) when
        :data:`AT_ONCE` are being received or imported already."""
        if self.receiving + len(self.tasks) >= AT_ONCE:
            raise errors.Busy(f"this server is receiving or running {AT_ONCE} imports already; "
                              "send the file again when one of them is done")
        self.receiving += 1
        try:
            yield
        finally:
            self.receiving -= 1

    async def begin(self, fh: BinaryIO, format: str, size: int, added_by: str | None,
                    visibility: str = "team") -> ImportStatus:
        """Start importing ``fh`` (which the import now owns and closes) and return its first report;
        its stories are stored as ``visibility`` says (``added_by``'s private ones, or team stories)."""
        now = _now()
        row = ImportRow(import_id=secrets.token_hex(8), format=format, status="running", added_by=added_by, size=size,
                        read_bytes=0, imported=0, skipped=0, failed=0, failures="[]", feeds_found=0, feeds="[]",
                        error=None, started=now, updated=now, finished=None)
        old = (datetime.now(timezone.utc) - KEPT_FOR).isoformat(timespec="milliseconds").replace("+00:00", "Z")

        def job(w: Writer) -> tuple[None, AfterCommit]:
            w.prune_imports(old)
            w.put_import(row)
            return None, None

        try:
            await self.log.storage.write(job)
        except BaseException:
            fh.close()
            raise
        task = asyncio.create_task(self._run(row, _Reader(fh, format), visibility), name=f"import {row.import_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return self.log.status(row)

    async def _run(self, row: ImportRow, reader: _Reader, visibility: str) -> None:
        progress = _Progress(row, reader)
        reporter = asyncio.create_task(self._report(progress))
        final: dict[str, Any] = {"status": "failed", "error": "the import stopped unexpectedly"}
        try:
            async with PoliteFetcher(self.settings) as fetcher:  # as `backstory import` does
                tally = await store(reader, self.archive, self.pipeline, window=self.window, step=progress.step,
                                    added_by=row.added_by, fetcher=fetcher, visibility=visibility)
            progress.step(tally)
            broken = next((f for f in tally.failures if f.where == THE_FILE), None)
            final = {"status": "failed", "error": broken.reason} if broken else {"status": "done", "error": None}
        except asyncio.CancelledError:  # the server is stopping
            final = {"status": "interrupted", "error": INTERRUPTED}
            raise
        except Exception as exc:  # noqa: BLE001 - reported in the import's status, never lost in a log only
            log.exception("import %s failed", row.import_id)
            final = {"status": "failed", "error": str(exc) or type(exc).__name__}
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            await asyncio.to_thread(reader.close)
            try:
                await self.log.save(progress.current(finished=_now(), **final))
            except Exception:  # noqa: BLE001 - the row reads as interrupted once it is stale
                log.exception("could not record the end of import %s", row.import_id)
            log.info("import %s (%s): %s, %d imported, %d skipped, %d failed", row.import_id, row.format,
                     final["status"], progress.row.imported, progress.row.skipped, progress.row.failed)

    async def _report(self, progress: _Progress) -> None:
        saved = time.monotonic()
        while True:
            await asyncio.sleep(SAVE_EVERY)
            if progress.changed or time.monotonic() - saved >= HEARTBEAT:
                try:
                    await self.log.save(progress.current())
                    saved = time.monotonic()
                except Exception:  # noqa: BLE001 - a busy archive: the next write tries again
                    log.warning("could not record the progress of import %s", progress.row.import_id, exc_info=True)

    async def stop(self) -> None:
        """Stop the running imports (the server is stopping): each is recorded as interrupted."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
