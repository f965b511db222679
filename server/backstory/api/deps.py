"""What the controllers are given: the app's services, typed and injected (Litestar's
``dependencies``), and the optional bearer-token guard."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, AsyncIterator

import msgspec
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Dependency

from .. import errors
from ..archive.base import Archive
from ..config import Settings
from ..imports.runs import Importer
from ..jobs import JobQueue
from ..pipeline import Pipeline
from ..schemas import AnalyzeRequest, Sidebar
from ..story import Viewer
from ..stream import Emit, Event, relay
from ..tokens import Caller, TokenStore


class Services:
    """What the lifespan builds, kept in ``app.state.backstory``: the archive (open before the
    first request), the pipeline (once the models have loaded in the background) and the backlog."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.archive: Archive | None = None
        self.backlog: asyncio.Task[None] | None = None  # analyzes stories a bulk import stored
        self.feed_polling: asyncio.Task[None] | None = None  # polls due feeds (SQLite; workers' jobs on PostgreSQL)
        self.pipeline: Pipeline | None = None
        self.jobs: JobQueue | None = None  # the archive's job queue (PostgreSQL only)
        self.tokens: TokenStore | None = None  # the archive's API tokens
        self.importer: Importer | None = None  # runs the imports sent to this server
        self.ready = asyncio.Event()
        self.load_error: BaseException | None = None
        self.started = time.monotonic()
        self.ready_after: float | None = None
        self.streams: set[asyncio.Future] = set()  # streamed analyses running (see backstory.stream.relay)

    async def pipeline_ready(self, timeout: float = 120.0) -> Pipeline:
        """The pipeline, once the models have loaded (503 while they load or when they failed)."""
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except asyncio.TimeoutError:
                raise errors.Unavailable("models are still loading; try again in a few seconds") from None
        if self.pipeline is None:
            raise errors.Unavailable(f"models failed to load: {self.load_error}")
        return self.pipeline

    async def analyze(self, request: AnalyzeRequest, caller: Caller, emit: Emit | None = None) -> Sidebar:
        """:meth:`Pipeline.analyze` for the caller (its stories stored as the request's visibility
        says, else as its token's default), once the models have loaded."""
        owner = caller.owner(request.visibility)  # before any work: a refused private request costs nothing
        pipeline = await self.pipeline_ready()
        sidebar = await pipeline.analyze(request, added_by=caller.who, owner=owner, emit=emit)
        if caller.who is None or not sidebar.archived:
            return sidebar
        return msgspec.structs.replace(sidebar, added_by=await self.added_by(sidebar.story_id))

    def stream(self, request: AnalyzeRequest, caller: Caller) -> AsyncIterator[Event]:
        """:meth:`analyze` as the lines of the streamed answer (see :mod:`backstory.stream`)."""
        return relay(lambda emit: self.analyze(request, caller, emit), self.streams)

    async def added_by(self, story_id: str) -> list[str]:
        """The names of those who added a story."""
        return await self.token_store().names(await self.opened_archive().added_by(story_id))

    def token_store(self) -> TokenStore:
        if self.tokens is None:  # the lifespan sets it when it opens the archive
            raise errors.Unavailable("the archive is not open yet")
        return self.tokens

    def opened_importer(self) -> Importer:
        if self.importer is None:  # the lifespan sets it when it opens the archive
            raise errors.Unavailable("the archive is not open yet")
        return self.importer

    def opened_archive(self) -> Archive:
        if self.archive is None:  # the lifespan opens it before the app takes requests
            raise errors.Unavailable("the archive is not open yet")
        return self.archive

    async def forget(self, story_id: str, caller: Caller) -> bool:
        """The caller's delete; False when there was no such story. An admin (or anyone, on a
        server without tokens) deletes it; a member who added it withdraws their claim, and the
        story goes with its last claimant; Forbidden for anyone else."""
        archive = self.opened_archive()
        if caller.who is None or caller.may("admin"):
            gone = await archive.delete(story_id, viewer=caller.who)  # never another member's private story
        else:
            outcome = await archive.delete_claimed(story_id, caller.who)
            if outcome == "forbidden":
                raise errors.Forbidden(f"the token {caller.name!r} did not add story {story_id}; only an admin may delete it")
            gone = outcome != "missing"
        if self.pipeline is not None:
            self.pipeline.forgotten(story_id)
        return gone

    async def poll_soon(self, url: str) -> None:
        """A feed was subscribed: poll it now, as a job (PostgreSQL) or in this server's poller."""
        if self.jobs is not None:
            await self.jobs.defer_poll(url)
        elif self.pipeline is not None:
            self.pipeline.feeds.wake.set()
        # else: the poller starts with the models and polls every due feed first

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        """Whether the models are loaded and the archive is open, and the body ``/readyz`` answers."""
        ready = self.pipeline is not None and self.archive is not None
        body: dict[str, object] = {"status": "ready" if ready else "loading", "archive": self.archive is not None,
                                   "models": self.pipeline is not None}
        if self.load_error is not None:
            body["status"], body["error"] = "failed", str(self.load_error)
        if self.ready_after is not None:
            body["ready_after_s"] = round(self.ready_after, 2)
        if self.archive is not None:
            body["pending_analysis"] = await self.archive.count_pending()  # stories a bulk import left
            feeds = await self.archive.feed_stats()
            body["feeds"] = {"count": feeds.count, "failing": feeds.failing, "last_poll": feeds.last_poll}
        if self.jobs is not None:
            body["queue"] = (await self.jobs.stats())._asdict()
        return ready, body

    async def metrics(self) -> str:
        """The figures an operator watches, in Prometheus' text format."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, value: float) -> None:
            lines.extend((f"# HELP backstory_{name} {help_}", f"# TYPE backstory_{name} {kind}",
                          f"backstory_{name} {value:.15g}"))

        archive = self.opened_archive()
        metric("stories", "gauge", "Stories in the archive.", await archive.count())
        metric("pending_analysis", "gauge", "Stories stored but not analyzed yet.", await archive.count_pending())
        feeds = await archive.feed_stats()
        metric("feeds", "gauge", "Subscribed news feeds.", feeds.count)
        metric("feeds_failing", "gauge", "Subscribed feeds whose last poll failed.", feeds.failing)
        if feeds.last_poll is not None:
            metric("feeds_last_poll_timestamp_seconds", "gauge", "When a feed was last polled (Unix time).",
                   datetime.fromisoformat(feeds.last_poll.replace("Z", "+00:00")).timestamp())
        if self.pipeline is not None:
            metric("feed_polls_total", "counter", "Feed polls this process made.", self.pipeline.feeds.polls)
            metric("analyses_total", "counter", "Texts this process ran through the language stages.",
                   self.pipeline.analyzer.analyzed)
            metric("analysis_errors_total", "counter", "Analyses for a client that ended in a server error.",
                   self.pipeline.failures)
        if self.jobs is not None:
            stats = await self.jobs.stats()
            metric("jobs_waiting", "gauge", "Analysis jobs not started yet.", stats.waiting)
            metric("jobs_oldest_waiting_seconds", "gauge", "How long the oldest waiting job has waited.", stats.oldest_s)
            metric("jobs_failed", "gauge", "Analysis jobs that failed every attempt.", stats.failed)
            metric("jobs_completed_total", "counter", "Analysis jobs this process completed.", self.jobs.analyses)
            metric("job_errors_total", "counter", "Analysis job attempts that failed in this process.", self.jobs.errors)
        return "\n".join(lines) + "\n"


def services_of(connection: ASGIConnection) -> Services:
    return connection.app.state.backstory


def provide_services(state: State) -> Services:
    return state.backstory


def provide_archive(services: Services) -> Archive:
    return services.opened_archive()


# The app's dependencies; the archive is the stories controller's own (GET /analyze has a query
# parameter named "archive").
DEPENDENCIES = {"services": Provide(provide_services, sync_to_thread=False)}
ARCHIVE = {"archive": Provide(provide_archive, sync_to_thread=False)}
# How a handler asks for the archive: the server's own object, so not checked against the
# protocol on every request (a runtime protocol check costs more than the rest of the injection).
ArchiveParam = Annotated[Archive, Dependency(skip_validation=True)]


async def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Once any API token exists (stored, or BACKSTORY_API_TOKEN), every /api request must send
    one ('Authorization: Bearer <token>') whose scope covers the handler's (its ``opt["scope"]``,
    ``read`` by default); the caller is kept in the request's state."""
    caller = await services_of(connection).token_store().caller(connection.headers.get("authorization", ""))
    connection.state.caller = caller
    authorize(connection, handler.opt.get("scope", "read"))


def viewer_of(connection: ASGIConnection) -> Viewer:
    """Whose eyes the request's archive reads are for (see :data:`backstory.story.Viewer`)."""
    return connection.state.caller.who


def authorize(connection: ASGIConnection, scope: str) -> Caller:
    """The request's caller, if its token's scope covers ``scope``; Forbidden otherwise."""
    caller: Caller = connection.state.caller
    if not caller.may(scope):
        raise errors.Forbidden(f"the token {caller.name!r} has the {caller.scope} scope; this needs {scope}")
    return caller
