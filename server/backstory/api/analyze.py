"""POST/GET /api/v1/analyze: a page (or text) in, the sidebar payload out."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from ..schemas import AnalyzeRequest, HttpUrl, Problem, Sidebar
from .deps import app_state, require_token

ERRORS = {
    400: Problem, 401: Problem, 413: Problem, 415: Problem, 422: Problem, 502: Problem, 504: Problem
}


class AnalyzeController(Controller):
    path = "/api/v1/analyze"
    guards = [require_token]
    tags = ["analyze"]

    @post(operation_id="analyze", status_code=200)
    async def analyze(self, request: Request, data: AnalyzeRequest) -> Sidebar:
        """Analyse a page: send its HTML (or plain text); without either the server fetches the URL."""
        pipeline = await app_state(request).pipeline_ready()
        return await pipeline.analyze(data)

    @get(operation_id="analyzeUrl")
    async def analyze_url(
        self,
        request: Request,
        url: Annotated[HttpUrl, Parameter(description="The page to fetch and analyse.")],
        archive: Annotated[bool, Parameter(description="Keep the story in the archive.")] = True,
    ) -> Sidebar:
        """Fetch a URL and analyse it (curl-friendly)."""
        pipeline = await app_state(request).pipeline_ready()
        return await pipeline.analyze(AnalyzeRequest(url=url, archive=archive))
