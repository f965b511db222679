"""POST/GET /api/v1/analyze: a page (or text) in, the sidebar payload out."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from ..schemas import AnalyzeRequest, HttpUrl, Sidebar
from .deps import Services, authorize, require_token
from .openapi import problems, rules_of

# 413/415: the body (POST) or the fetched page; 422: a host with no valid name, an address the
# fetcher may not reach, no article; 502/504: fetching; 503: models loading or out of time.
ANALYZE_ERRORS = problems(413, 415, 422, 502, 503, 504)


class AnalyzeController(Controller):
    path = "/api/v1/analyze"
    guards = [require_token]
    tags = ["analyze"]

    @post(operation_id="analyze", status_code=200, responses=ANALYZE_ERRORS)
    async def analyze(self, request: Request, services: Services, data: AnalyzeRequest) -> Sidebar:
        """Analyze a page: send its HTML (or plain text); without either the server fetches the URL."""
        caller = authorize(request, "write" if data.archive else "read")
        return await services.analyze(data, caller)

    @get(operation_id="analyzeUrl", responses=ANALYZE_ERRORS)
    async def analyze_url(
        self,
        request: Request,
        services: Services,
        url: Annotated[str, Parameter(**rules_of(HttpUrl))],
        archive: Annotated[bool, Parameter(description="Keep the story in the archive.")] = True,
    ) -> Sidebar:
        """Fetch a URL and analyze it (curl-friendly)."""
        caller = authorize(request, "write" if archive else "read")
        return await services.analyze(AnalyzeRequest(url=url, archive=archive), caller)
