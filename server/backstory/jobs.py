"""Deferred work as jobs in the archive's own PostgreSQL, through procrastinate.

A story a bulk import stores unanalyzed becomes one ``analyze_story`` job (one per story: a job
already waiting for it is not queued again). Any process with the database URL takes them: a
``backstory worker`` on any machine, and each server in its idle time. A job is idempotent — it
completes a story only while the story is still pending, in one statement — so a worker killed
midway loses nothing: its job is retried once the worker's heartbeat has stopped for
``BACKSTORY_WORKER_STALLED_AFTER`` seconds (by the periodic ``retry_stalled_jobs`` and by every
worker when it starts), and finds the story either still pending or complete.

Subscribed news feeds are polled the same way: a periodic ``defer_feed_polls`` (each minute)
takes the feeds the archive says are due and defers one ``poll_feed`` job each, with a queueing
lock per feed (one waiting poll a feed), in the ``feeds`` queue every worker takes by default.

On SQLite there is no queue: the server's backlog finds pending stories in the archive itself,
and its feed poller the due feeds (``backstory/feeds/poller.py``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, AsyncIterator, NamedTuple, Protocol

import procrastinate
import psycopg
from procrastinate.exceptions import AlreadyEnqueued

from .archive.postgres.schema import RESULTS_CHANNEL
from .config import Settings, archive_url

log = logging.getLogger(__name__)

ANALYSIS_QUEUE = "analysis"
FEEDS_QUEUE = "feeds"
DEFAULT_QUEUES = [ANALYSIS_QUEUE, FEEDS_QUEUE]
REMOTE_NEEDS_POSTGRESQL = ("BACKSTORY_ANALYSIS=remote hands analyses to workers through a PostgreSQL archive's "
                           "job queue: set the archive to postgresql://… (with SQLite, analysis is local)")
_DEPTH = (
    "SELECT count(*), extract(epoch FROM now() - min(e.at)) FROM procrastinate_jobs j "
    "LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred' "
    "WHERE j.status = 'todo' AND j.queue_name = %(queue)s"
)
_FAILED = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed' AND queue_name = %(queue)s"
PAGE_PRIORITY = 10  # a reader's page before the backlog's stories
_STORE_ANSWER = "INSERT INTO analysis_results (job_id, body) VALUES (%(job_id)s, %(body)s)"
_ANSWERED = f"SELECT pg_notify('{RESULTS_CHANNEL}', %(job_id)s)"
_TAKE_ANSWER = "DELETE FROM analysis_results WHERE job_id = %(job_id)s RETURNING body"
_DROP_ANSWER = "DELETE FROM analysis_results WHERE job_id = %(job_id)s"
# Pending stories no job waits for or works on (their importer stopped between the two writes).
_ORPHANS = (
    "SELECT story_id FROM stories s WHERE NOT analysed AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j "
    "WHERE j.queueing_lock = s.story_id AND j.status IN ('todo', 'doing'))"
)


class Handler(Protocol):
    """What the jobs need of the process that runs them (``backstory.pipeline.Pipeline``)."""

    async def complete(self, story_id: str) -> bool:
        """Analyze the story if it is still pending; False when there was nothing to do."""

    async def answer(self, page: dict) -> bytes:
        """A page's analysis (or the error it ended in), encoded for the server that asked."""

    async def due_feeds(self) -> list[str]:
        """The subscribed feeds due for a poll, each leased to the caller for a while."""

    async def poll_feed(self, url: str) -> None:
        """Poll one subscribed feed (its outcome, or error, is kept in the archive)."""


class QueueStats(NamedTuple):
    waiting: int  # jobs not started yet
    oldest_s: float  # how long the oldest of them has waited (0 when none)
    failed: int  # jobs that failed every attempt


def job_queue(settings: Settings) -> JobQueue | None:
    """The job queue of the archive the settings name: PostgreSQL's own, none for SQLite."""
    url = archive_url(settings.archive)
    return JobQueue(url, settings.worker_stalled_after) if url.startswith("postgresql://") else None


class JobQueue:
    """The analysis jobs of one PostgreSQL archive."""

    def __init__(self, url: str, stalled_after: float = 30.0) -> None:
        self.url = url
        self.stalled_after = stalled_after
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
        self.analyses = 0  # jobs this process completed
        self.errors = 0  # jobs this process saw fail

        @self.app.task(name="analyze_story", queue=ANALYSIS_QUEUE, pass_context=True,
                       retry=procrastinate.RetryStrategy(max_attempts=3, wait=5))
        async def analyze_story(context: procrastinate.JobContext, story_id: str) -> None:
            handler: Handler = context.additional_context["handler"]
            try:
                if await handler.complete(story_id):
                    self.analyses += 1
            except Exception:
                self.errors += 1
                raise

        # Looked for twice per stall period (cron's sixth field is seconds), by whichever worker runs.
        every = max(1, min(30, int(stalled_after // 2)))

        @self.app.periodic(cron=f"* * * * * */{every}", periodic_id="retry-stalled")
        @self.app.task(name="retry_stalled_jobs", queue=ANALYSIS_QUEUE, queueing_lock="retry_stalled_jobs")
        async def retry_stalled_jobs(timestamp: int) -> None:
            await self.retry_stalled()

        # A reader's analysis a server handed over: never retried (its reader has had an answer,
        # an error, by then); jumps the backlog's queue.
        @self.app.task(name="analyze_page", queue=ANALYSIS_QUEUE, pass_context=True)
        async def analyze_page(context: procrastinate.JobContext, page: dict) -> None:
            handler: Handler = context.additional_context["handler"]
            body = await handler.answer(page)
            await self.app.connector.execute_query_async(_STORE_ANSWER, job_id=context.job.id, body=body)
            await self.app.connector.execute_query_async(_ANSWERED, job_id=str(context.job.id))

        @self.app.periodic(cron="* * * * *", periodic_id="poll-feeds")
        @self.app.task(name="defer_feed_polls", queue=FEEDS_QUEUE, queueing_lock="defer_feed_polls",
                       pass_context=True)
        async def defer_feed_polls(context: procrastinate.JobContext, timestamp: int) -> None:
            await self.defer_due_polls(context.additional_context["handler"])

        # Not retried: a failed poll is the feed's state (kept, backed off), polled again when due.
        @self.app.task(name="poll_feed", queue=FEEDS_QUEUE, pass_context=True)
        async def poll_feed(context: procrastinate.JobContext, url: str) -> None:
            handler: Handler = context.additional_context["handler"]
            await handler.poll_feed(url)

        self._analyze_story = analyze_story
        self._analyze_page = analyze_page
        self._poll_feed = poll_feed

    async def __aenter__(self) -> "JobQueue":
        await self.app.open_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.app.close_async()

    async def defer_analysis(self, story_id: str) -> bool:
        """Queue the analysis of a pending story; False when one is waiting for it already."""
        try:
            await self._analyze_story.configure(queueing_lock=story_id).defer_async(story_id=story_id)
        except AlreadyEnqueued:
            return False
        return True

    async def defer_poll(self, url: str) -> bool:
        """Queue a poll of a subscribed feed; False when one is waiting for it already."""
        try:
            await self._poll_feed.configure(queueing_lock=f"feed:{url}").defer_async(url=url)
        except AlreadyEnqueued:
            return False
        return True

    async def defer_due_polls(self, handler: Handler) -> int:
        """Queue a poll of every feed the archive says is due (each leased meanwhile); how many
        were queued (a feed with a poll waiting already is not queued again)."""
        return sum([await self.defer_poll(url) for url in await handler.due_feeds()])

    async def retry_stalled(self) -> int:
        """Put back the jobs of workers whose heartbeat stopped (killed, frozen, cut off)."""
        stalled = await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
        for job in stalled:
            log.warning("job %s (%s) stalled with its worker; retrying it", job.id, job.task_name)
            await self.app.job_manager.retry_job(job)
        return len(stalled)

    async def adopt_orphans(self) -> int:
        """Queue the pending stories that have no job."""
        rows = await self.app.connector.execute_query_all_async(_ORPHANS)
        return sum([await self.defer_analysis(row["story_id"]) for row in rows])

    async def stats(self) -> QueueStats:
        connector = self.app.connector
        waiting, oldest = (await connector.execute_query_all_async(_DEPTH, queue=ANALYSIS_QUEUE))[0].values()
        failed = (await connector.execute_query_one_async(_FAILED, queue=ANALYSIS_QUEUE))["count"]
        return QueueStats(int(waiting), round(float(oldest or 0.0), 3), int(failed))

    async def defer_page(self, page: dict) -> int:
        """Hand a reader's page to the workers; the job's id, which its answer will carry."""
        return await self._analyze_page.configure(priority=PAGE_PRIORITY).defer_async(page=page)

    async def take_answer(self, job_id: int) -> bytes | None:
        """The stored answer of a page's job (removed as it is read); None while there is none."""
        rows = await self.app.connector.execute_query_all_async(_TAKE_ANSWER, job_id=job_id)
        return bytes(rows[0]["body"]) if rows else None

    async def give_up(self, job_id: int) -> None:
        """Cancel a page's job nobody waits for any more, if no worker has started it."""
        await self.app.job_manager.cancel_job_by_id_async(job_id)
        await self.app.connector.execute_query_async(_DROP_ANSWER, job_id=job_id)

    async def answers(self) -> AsyncIterator[int]:
        """The ids of page jobs as their answers are stored (LISTEN), for as long as it is iterated."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {RESULTS_CHANNEL}")
            async for notify in conn.notifies():
                yield int(notify.payload)

    async def work(self, handler: Handler, *, concurrency: int, queues: list[str] | None = None,
                   signals: bool = False) -> None:
        """Take jobs until cancelled (or, with ``signals``, until SIGINT/SIGTERM)."""
        await self.retry_stalled()  # a worker that starts after a crash picks up what it left
        await self.adopt_orphans()
        heartbeat = max(0.5, self.stalled_after / 3)
        options: dict[str, Any] = dict(
            queues=queues or DEFAULT_QUEUES, concurrency=concurrency, additional_context={"handler": handler},
            install_signal_handlers=signals, update_heartbeat_interval=heartbeat,
            stalled_worker_timeout=self.stalled_after, delete_jobs="successful", name=f"backstory-{time.time():.0f}",
        )
        await self.app.run_worker_async(**options)
