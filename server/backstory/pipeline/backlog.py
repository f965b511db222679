"""The backlog: the stories a bulk import stored as pending, analyzed in the background while no
reader waits, and completed in place."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from ..archive.base import Archive
from ..story import OPERATOR
from ..story import StoryRecord
from .analyzer import Analyzer
from .cache import ResponseCache
from .workers import Workers

if TYPE_CHECKING:
    from ..jobs import JobQueue

log = logging.getLogger(__name__)


class Backlog:
    """Completes pending stories (entities, keyphrases, embedding) with the pipeline's analyzer,
    in its worker slots, yielding to readers. With a job queue (a PostgreSQL archive) each
    pending story is a job any worker may take; without one (SQLite) the server finds them in
    the archive."""

    def __init__(self, analyzer: Analyzer, archive: Archive, cache: ResponseCache, workers: Workers,
                 jobs: JobQueue | None = None) -> None:
        self.analyzer = analyzer
        self.archive = archive
        self.cache = cache
        self.workers = workers
        self.jobs = jobs
        self._wake = asyncio.Event()

    async def stored(self, story_id: str) -> None:
        """A story was stored as pending: queue its job, or look for it now, not at the next poll."""
        if self.jobs is not None:
            await self.jobs.defer_analysis(story_id)
        else:
            self._wake.set()

    async def complete(self, story_id: str) -> bool:
        """Analyze the story if it is still pending, once no reader waits; False when it is gone
        or complete already (a job run twice, or a story deleted meanwhile)."""
        record = await self.archive.get(story_id, OPERATOR)  # the server's own work: private stories too
        if record is None or record.analysed:
            return False
        await self.workers.readers_gone(0.1)
        return await self.analyze_stored(record) is not None

    async def analyze_stored(self, record: StoryRecord) -> StoryRecord | None:
        """Compute what a pending story lacks (entities, keyphrases, embedding) and store it in
        place; returns the completed record, or None when the story was deleted meanwhile."""
        analysis = await self.workers.run_in_slot(self.analyzer.analyze, record.title, record.text)
        done = msgspec.structs.replace(
            record, keyphrases=analysis.keyphrases, entities=analysis.entities, embedding=analysis.embedding,
            analysed=True,
        )
        stored = await self.archive.store_analysis(done)
        self.cache.discard_story(record.story_id)
        return done if stored else None

    async def run(self, *, batch: int = 16, parallel: int = 2, idle_poll: float = 0.1, wait: float = 30.0) -> None:
        """Analyze the archive's pending stories, forever, yielding to readers: a story starts only while no
        client analysis is running or queued, and at most ``parallel`` are in flight (two keep
        both cores busy: spaCy's process and this one). Wakes up on :meth:`stored` (an import in
        this process) or every ``wait`` seconds (an import by another process). A story that
        fails is logged and skipped until restart."""
        failed: set[str] = set()
        inflight: set[asyncio.Task[None]] = set()

        async def one(record: StoryRecord) -> None:
            try:
                await self.analyze_stored(record)
            except Exception:  # noqa: BLE001 - one bad story must not stop the backlog
                log.exception("analyzing stored story %s failed; skipped until restart", record.story_id)
                failed.add(record.story_id)

        try:
            while True:
                records = [r for r in await self.archive.pending(limit=batch + len(failed)) if r.story_id not in failed]
                if not records:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                    continue
                for record in records[:batch]:
                    await self.workers.readers_gone(idle_poll)
                    if len(inflight) >= parallel:
                        _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    inflight.add(asyncio.create_task(one(record)))
                if inflight:  # the next batch is read once these are stored
                    await asyncio.wait(inflight)
                    inflight.clear()
        finally:
            for task in inflight:
                task.cancel()
