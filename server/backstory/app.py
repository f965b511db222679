"""create_app(settings) -> Litestar: routes, lifespan, errors as problem+json, OpenAPI."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from litestar import Litestar, MediaType, Request, Response
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException, ValidationException
from litestar.logging.config import LoggingConfig
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from . import __version__, errors
from .api import API_ROUTES, health_routes
from .api.body import JsonRequest
from .api.deps import DEPENDENCIES, Services
from .api.guard import BrowserGuard, OriginRule
from .api.limits import rate_limits
from .api.openapi import finish_document
from .archive import open_archive
from .archive.feed import Follower
from .config import Settings
from .imports.runs import Importer
from .jobs import REMOTE_NEEDS_POSTGRESQL, job_queue
from .pipeline import Models, Pipeline, RemoteAnalyst
from .schemas import PROBLEM_JSON, Problem, explain
from .tokens import TokenStore

log = logging.getLogger("backstory")

SWAGGER_ASSETS = "/schema/assets"


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response[Problem]:
    return Response(
        Problem(status=status, title=title, detail=detail),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _backstory_error(_: Request, exc: errors.BackstoryError) -> Response[Problem]:
    return problem(exc.status, exc.title, exc.detail, exc.headers or None)


def _http_error(request: Request, exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if status >= 500:
        log.exception("server error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(status, "Server error", "the server failed; the request was not stored")
    detail = exc.detail
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        reasons = "; ".join(
            f"{e.get('key') or 'body'}: {explain(str(e.get('message')))}" for e in extra if isinstance(e, dict)
        )
        detail = f"{exc.detail}: {reasons}" if reasons else exc.detail
    titles = {400: "Invalid request", 401: "Unauthorized", 404: "Not found", 405: "Method not allowed",
              413: "Payload too large", 415: "Unsupported media type", 429: "Too many requests"}
    # exc.headers carries what the status needs, e.g. the Allow list of a 405.
    headers = dict(exc.headers or {})
    if status == 429:  # the rate limiter says when its window resets; clients read Retry-After
        headers["Retry-After"] = headers.get("RateLimit-Reset", "1")
        detail = "too many requests for this token (or address); try again in a few seconds"
    return problem(status, titles.get(status, "Client error"), detail or titles.get(status, "error"), headers)


def _answer_options(request: Request) -> Response | None:
    """OPTIONS lists every method of the path. Litestar's own answer keeps the methods of the
    first handler registered there (OPTIONS /api/v1/analyze said POST but not GET)."""
    if request.method != "OPTIONS":
        return None
    template = request.scope.get("path_template")
    methods = next((route.methods for route in request.app.routes if route.path_format == template), None)
    if methods is None:
        return None
    return Response(None, status_code=204, headers={"Allow": ", ".join(sorted(methods))}, media_type=MediaType.TEXT)


def _unexpected(request: Request, exc: Exception) -> Response[Problem]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Server error", "the server failed; the request was not stored")


def create_app(settings: Settings | None = None, *, models: Models | None = None) -> Litestar:
    """Build the app. ``models`` may be passed in already loaded (tests share one set)."""
    settings = settings or Settings()
    if settings.analysis == "remote" and job_queue(settings) is None:
        raise ValueError(REMOTE_NEEDS_POSTGRESQL)
    from swagger_ui_bundle import swagger_ui_path

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        state = Services(settings)
        app.state.backstory = state
        # The models start loading first (spaCy in its own process, on the other core); the
        # archive and its related index load meanwhile. A server whose analyses workers do loads none.
        remote = settings.analysis == "remote"
        own_models = None if models is not None or remote else asyncio.create_task(
            asyncio.to_thread(Models.load, settings.spacy_processes))
        try:
            state.archive = archive = await open_archive(settings)
        except BaseException:
            if own_models is not None:
                own_models.add_done_callback(lambda t: t.exception() is None and t.result().close())
            raise
        # Stories other processes write (an import, another server) reach the related index.
        follower = Follower(archive, settings.feed_poll_interval)
        follower.start()
        state.tokens = TokenStore(archive.storage, settings.api_token)
        # Imports sent over HTTP store through the pipeline once it is ready (models loading, a
        # minute at most; an import waits for them rather than failing).
        importer = state.importer = Importer(archive.storage, archive, lambda: state.pipeline_ready(timeout=600),
                                             window=settings.workers * 2, settings=settings)
        jobs = state.jobs = job_queue(settings)  # the archive's migrations created its tables
        if jobs is not None:
            await jobs.__aenter__()
        analyst = RemoteAnalyst(jobs) if remote and jobs is not None else None
        if analyst is not None:
            analyst.start()

        async def load() -> None:
            try:
                loaded = None if remote else models if own_models is None else await own_models
                state.pipeline = pipeline = Pipeline(settings, loaded, archive, jobs, analyst)
                if not remote and (jobs is None or settings.server_takes_jobs):
                    state.backlog = asyncio.create_task(pipeline.work())  # on PostgreSQL: feed polls too
                if jobs is None:  # SQLite: no queue; this server polls the feeds the archive says are due
                    state.feed_polling = asyncio.create_task(pipeline.feeds.run())
                state.ready_after = time.monotonic() - state.started
                log.info("models loaded in %.1f s", state.ready_after)
            except Exception as exc:  # reported by /readyz and on every analyze
                log.exception("loading the models failed")
                state.load_error = exc
            finally:
                state.ready.set()

        loader = asyncio.create_task(load())
        try:
            yield
        finally:
            loader.cancel()
            if state.streams:  # analyses whose clients went away mid-stream: stored before the archive closes
                await asyncio.wait(set(state.streams), timeout=settings.analysis_deadline + 5)
            await importer.stop()  # recorded as interrupted while the archive is still open
            await follower.stop()
            for task in (state.backlog, state.feed_polling):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            if analyst is not None:
                await analyst.stop()
            if jobs is not None:
                await jobs.__aexit__()
            if state.pipeline is not None:
                await state.pipeline.feeds.aclose()
                state.pipeline.close()
            if own_models is not None:
                own_models.add_done_callback(lambda t: t.cancelled() or t.exception() is not None or t.result().close())
            await archive.close()

    logging.getLogger("backstory").setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))

    origins = OriginRule(settings.extension_origins, settings.cors_origins)
    cors = CORSConfig(
        allow_origins=sorted(origins.exact),
        allow_origin_regex=origins.cors_regex(),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
    openapi = OpenAPIConfig(
        title="Backstory",
        version=__version__,
        description="The backstory of any news story: clean text, keyphrases, entities and related stories.",
        path="/schema",
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
            )
        ],
    )
    assets = create_static_files_router(
        path=SWAGGER_ASSETS, directories=[str(swagger_ui_path)], include_in_schema=False
    )
    app = Litestar(
        route_handlers=[*API_ROUTES, *health_routes(), assets],
        dependencies=DEPENDENCIES,  # handlers are given the typed Services (api/deps.py), not the raw state
        lifespan=[lifespan],
        exception_handlers={
            errors.BackstoryError: _backstory_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        request_max_body_size=settings.max_body_bytes,
        request_class=JsonRequest,  # bodies decoded strictly: bad UTF-8, deep nesting, repeated keys are 400s
        before_request=_answer_options,
        middleware=[DefineMiddleware(BrowserGuard, settings=settings), *rate_limits(settings)],
        cors_config=cors,
        openapi_config=openapi,
        # Litestar would otherwise configure the root logger; handlers are the program's
        # business (the CLI sets them up; tests and embedding programs keep their own).
        logging_config=LoggingConfig(configure_root_logger=False),
        debug=False,
    )
    finish_document(app.openapi_schema, settings)
    return app
