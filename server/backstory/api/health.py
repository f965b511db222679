"""Liveness and readiness."""

from __future__ import annotations

from litestar import Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response

from ..schemas import PROBLEM_JSON, Problem
from .deps import app_state
from .openapi import REASONS

# Open to everyone, but the Host check (api/guard.py) still answers a foreign Host with 400.
HOST_ERROR = {400: ResponseSpec(Problem, media_type=PROBLEM_JSON, description=REASONS[400], generate_examples=False)}


def health_routes() -> list:
    @get("/healthz", operation_id="healthz", include_in_schema=True, tags=["health"], responses=HOST_ERROR)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @get("/readyz", operation_id="readyz", tags=["health"], responses={
        **HOST_ERROR,
        503: ResponseSpec(dict, description="Loading (or failed): the same body, status 'loading' or 'failed'.",
                          generate_examples=False),
    })
    async def readyz(request: Request) -> Response[dict]:
        """Readiness: models loaded and archive open (503 until then)."""
        state = app_state(request)
        ready = state.pipeline is not None and state.archive is not None
        body: dict = {"status": "ready" if ready else "loading", "archive": state.archive is not None,
                      "models": state.pipeline is not None}
        if state.load_error is not None:
            body["status"], body["error"] = "failed", str(state.load_error)
        if state.ready_after is not None:
            body["ready_after_s"] = round(state.ready_after, 2)
        if state.archive is not None:
            body["pending_analysis"] = await state.archive.count_pending()  # stories a bulk import left
        return Response(body, status_code=200 if ready else 503)

    return [healthz, readyz]
