"""Analyses done by workers (``BACKSTORY_ANALYSIS=remote``): a thin API server hands a reader's page
to the job queue, a worker extracts and analyzes it, and the server stores and relates the record
the worker sends back, as it would its own (its related index and duplicate check stay the one
truth). The answer travels through the database: a row, and a notification that wakes the server."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import msgspec

from .. import errors
from ..jobs import JobQueue
from ..story import StoryRecord
from .analyzer import Analysis
from .page import Analyzed, Page

log = logging.getLogger(__name__)

_POLL = 0.5  # seconds between looks for an answer whose notification was missed


class Failure(msgspec.Struct, kw_only=True, frozen=True):
    status: int
    title: str
    detail: str


class Answer(msgspec.Struct, kw_only=True, frozen=True):
    """What a worker sends back for a page: its record and stage timings, or the error it ended in."""

    record: StoryRecord | None = None
    timings: dict[str, float] = {}
    failure: Failure | None = None


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Answer).decode


async def answer(analyze_page: Callable[[Page], Awaitable[Analyzed]], page: dict) -> bytes:
    """A worker's side: analyze the page as the server would have (no archive, no related)."""
    try:
        analysis, record, extracted = await analyze_page(msgspec.convert(page, Page))
        return _encode(Answer(record=record, timings={**extracted, **analysis.timings}))
    except errors.BackstoryError as exc:
        return _encode(Answer(failure=Failure(status=exc.status, title=exc.title, detail=exc.detail)))
    except Exception:  # noqa: BLE001 - the reader gets a 503, the worker goes on
        log.exception("analyzing a page for a server failed")
        return _encode(Answer(failure=Failure(status=503, title="Service unavailable",
                                              detail="the worker that analyzed this page failed; try again")))


class RemoteAnalyst:
    """A server's side: each analysis a job, its answer awaited (see the module's docstring)."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs
        self._waiting: dict[int, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="backstory-answers")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            try:
                async for job_id in self.jobs.answers():
                    if (event := self._waiting.get(job_id)) is not None:
                        event.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the answers are still polled for meanwhile
                log.warning("listening for the workers' answers failed; polling meanwhile", exc_info=True)
                await asyncio.sleep(_POLL)

    async def analyze(self, page: Page, deadline: float) -> Analyzed:
        job_id = await self.jobs.defer_page(msgspec.to_builtins(page))
        event = self._waiting[job_id] = asyncio.Event()
        try:
            body = await asyncio.wait_for(self._answer(job_id, event), deadline)
        except asyncio.TimeoutError:
            await self.jobs.give_up(job_id)
            raise errors.Unavailable(
                f"no worker analyzed the page within {deadline:g} s (BACKSTORY_ANALYSIS=remote: are workers "
                "running?); nothing was stored; try again"
            ) from None
        finally:
            self._waiting.pop(job_id, None)
        result = _decode(body)
        if result.failure is not None:
            raise errors.Relayed(result.failure.status, result.failure.title, result.failure.detail)
        assert result.record is not None
        timings = dict(result.timings)
        extracted = {"extract": timings.pop("extract", 0.0)}
        record = result.record
        analysis = Analysis(keyphrases=record.keyphrases, entities=record.entities, embedding=record.embedding,
                            timings=timings)
        return analysis, record, extracted

    async def _answer(self, job_id: int, event: asyncio.Event) -> bytes:
        while True:
            body = await self.jobs.take_answer(job_id)
            if body is not None:
                return body
            try:
                await asyncio.wait_for(event.wait(), _POLL)
            except asyncio.TimeoutError:
                pass
            event.clear()
