"""Liveness and readiness."""

from __future__ import annotations

from litestar import get
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response

from ..schemas import PROBLEM_JSON, Problem
from .deps import Services
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
    async def readyz(services: Services) -> Response[dict]:
        """Readiness: models loaded and archive open (503 until then)."""
        ready, body = await services.readiness()
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", operation_id="metrics", tags=["health"], media_type="text/plain; version=0.0.4",
         responses=HOST_ERROR)
    async def metrics(services: Services) -> str:
        """Prometheus metrics: stories, pending analyses, analyses and errors, the job queue."""
        return await services.metrics()

    return [healthz, readyz, metrics]
