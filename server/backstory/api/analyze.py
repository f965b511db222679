"""POST/GET /api/v1/analyze: a page (or text) in, the sidebar payload out: whole, or streamed as
JSON lines when the client accepts ``application/x-ndjson`` (see :mod:`backstory.stream`)."""

from __future__ import annotations

import logging
from typing import Annotated, AsyncIterator

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Stream

from .. import errors
from ..schemas import AnalyzeRequest, HttpUrl, Sidebar
from ..stream import NDJSON, ErrorEvent, Event, encode
from ..tokens import Caller
from .deps import Services, authorize, require_token
from .openapi import problems, rules_of

log = logging.getLogger(__name__)

# 413/415: the body (POST) or the fetched page; 422: a host with no valid name, an address the
# fetcher may not reach, no article; 502/504: fetching; 503: models loading or out of time.
ANALYZE_ERRORS = problems(413, 415, 422, 502, 503, 504)
STREAM_HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # a reverse proxy (nginx) passes each line on as it comes
}


def wants_stream(request: Request) -> bool:
    """Whether the client's Accept header names the JSON-lines type (with a quality above 0)."""
    for item in request.headers.get("accept", "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() == NDJSON:
            return not any(p.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
    return False


class LinesStream(Stream):
    """The streamed answer. Litestar gives a handler's Response the media type of the handler's
    annotation (application/json for a Sidebar) over the Response's own: this one keeps its own."""

    def to_asgi_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().to_asgi_response(*args, **{**kwargs, "media_type": NDJSON})


async def answer(request: Request, services: Services, data: AnalyzeRequest, caller: Caller) -> Sidebar | Stream:
    if not wants_stream(request):
        return await services.analyze(data, caller)
    events = services.stream(data, caller)
    first = await anext(events)  # a failure before it is an ordinary problem+json answer
    return LinesStream(_lines(first, events), media_type=NDJSON, headers=STREAM_HEADERS)


async def _lines(first: Event, events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    yield encode(first) + b"\n"
    try:
        async for event in events:
            yield encode(event) + b"\n"
    except errors.BackstoryError as exc:  # the status line has gone: the error is the last line
        yield encode(ErrorEvent(status=exc.status, title=exc.title, detail=exc.detail)) + b"\n"
    except Exception:  # noqa: BLE001 - logged; the client reads why the stream ended
        log.exception("a streamed analysis failed")
        yield encode(ErrorEvent(status=500, title="Server error", detail="the server failed")) + b"\n"


class AnalyzeController(Controller):
    path = "/api/v1/analyze"
    guards = [require_token]
    tags = ["analyze"]

    @post(operation_id="analyze", status_code=200, responses=ANALYZE_ERRORS)
    async def analyze(self, request: Request, services: Services, data: AnalyzeRequest) -> Sidebar:
        """Analyze a page: send its HTML (or plain text); without either the server fetches the URL.
        With ``Accept: application/x-ndjson`` the answer is streamed, one JSON line per part."""
        caller = authorize(request, "write" if data.archive else "read")
        return await answer(request, services, data, caller)  # a Stream: Litestar sends a Response as it is

    @get(operation_id="analyzeUrl", responses=ANALYZE_ERRORS)
    async def analyze_url(
        self,
        request: Request,
        services: Services,
        url: Annotated[str, Parameter(**rules_of(HttpUrl))],
        archive: Annotated[bool, Parameter(description="Keep the story in the archive.")] = True,
    ) -> Sidebar:
        """Fetch a URL and analyze it (curl-friendly); streamed with ``Accept: application/x-ndjson``."""
        caller = authorize(request, "write" if archive else "read")
        return await answer(request, services, AnalyzeRequest(url=url, archive=archive), caller)
