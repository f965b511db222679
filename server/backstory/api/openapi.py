"""The OpenAPI document tells the truth: what Litestar cannot infer from the handlers.

Each operation lists its error answers (problem+json, with their real statuses) through
:func:`problems`; :func:`finish_document` adds the rest once the document is built: the bearer
scheme, which operations it guards, and the request-body rules msgspec enforces but Litestar's
generator leaves out (unknown fields refused, html and text not both), and the streamed answer
of the analyze operations (``application/x-ndjson``: its lines' types, see :mod:`backstory.stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from ..config import Settings
from ..schemas import PROBLEM_JSON, Problem
from ..stream import NDJSON, Event

STREAMED_OPERATIONS = ("analyze", "analyzeUrl")
STREAM_DESCRIPTION = (
    "With `Accept: application/x-ndjson`: the sidebar streamed as JSON lines, one per part as it is "
    "ready, each a flat object whose `event` names its part and whose other fields are that part of "
    "the Sidebar, so the lines merge into one: `facts` first, then `keyphrases`, `entities` and "
    "`related` in the order they are ready, and `done` last (its `story_id` is final: it differs "
    "from the first when the story joined a stored duplicate). A failure after the first line ends "
    "the stream with an `error` line (the problem+json fields); one before it is an ordinary "
    "problem+json answer."
)

SECURITY_SCHEME = "bearerAuth"

# Why each status is answered; an operation documents the ones it can give.
REASONS = {
    400: "Invalid request: a parameter or the body breaks its documented rule (or the Host header "
         "names another server).",
    401: "Missing, wrong, expired or revoked bearer token (once the server has any token).",
    403: "The token's scope does not allow this, or the request came from a browser origin that is not allowed.",
    404: "No such story (or import, or feed subscription) in the archive.",
    413: "Too large: the body, the fetched page or the article's text is over its limit.",
    415: "Unsupported content: the body is not application/json (an export: not one of its types), "
         "or the fetched page is not HTML.",
    422: "Understood but refused: the URL's host is not a valid name or is an address the fetcher "
         "may not reach, the page has no readable article, or an export's format cannot be told.",
    429: "Too many requests: more imports at once than this server runs (see Retry-After).",
    502: "The page could not be fetched (the site failed, answered an error, or does not resolve).",
    503: "Not ready or over its time budget: the models are loading, or the analysis ran out of time.",
    504: "Fetching the page took too long.",
}
# What every /api/ operation can answer before its handler runs (Host and Origin checks, the token).
API_ERRORS = (400, 401, 403)


def rules_of(annotated: Any) -> dict[str, Any]:
    """A wire type's constraints as ``Parameter`` keywords: Litestar validates and documents a
    path or query parameter by its Parameter, not by the Meta of the type it annotates."""
    meta = annotated.__metadata__[0]
    names = ("min_length", "max_length", "pattern", "description")
    return {name: getattr(meta, name) for name in names if getattr(meta, name) is not None}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The ``responses`` of a handler: each status answered as application/problem+json."""
    return {
        status: ResponseSpec(
            data_container=Problem, media_type=PROBLEM_JSON, description=REASONS[status], generate_examples=False
        )
        for status in sorted({*API_ERRORS, *statuses})
    }


def file_body(media_types: tuple[str, ...], description: str) -> type[Operation]:
    """The ``operation_class`` of a handler that takes a file as its body, read as a stream (so
    Litestar sees no ``data`` parameter to document): any bytes, of any of ``media_types``; under
    a JSON type, any JSON (a binary string there would say the body is one JSON string)."""

    @dataclass
    class FileBodyOperation(Operation):
        def __post_init__(self) -> None:
            binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, min_length=1)
            self.request_body = RequestBody(
                content={media_type: OpenAPIMediaType(schema=Schema() if media_type.endswith("json") else binary)
                         for media_type in media_types},
                description=description, required=True,
            )

    return FileBodyOperation


def finish_document(document: OpenAPI, settings: Settings) -> None:
    """Complete the generated document in place, before it is first served (see the module's docstring)."""
    components = document.components
    components.security_schemes = {
        **(components.security_schemes or {}),
        SECURITY_SCHEME: SecurityScheme(
            type="http", scheme="bearer",
            description="The server's BACKSTORY_API_TOKEN. Without one configured, the API is open.",
        ),
    }
    # Optional ({}) when the server has no token: the document describes this server.
    security = [{SECURITY_SCHEME: []}] if settings.api_token else [{SECURITY_SCHEME: []}, {}]
    bodies: set[str] = set()
    for path, item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            if path.startswith("/api/"):
                operation.security = security
            body = operation.request_body
            for media in (body.content.values() if body is not None and not isinstance(body, Reference) else ()):
                if isinstance(media.schema, Reference):
                    bodies.add(media.schema.ref.rsplit("/", 1)[-1])
    schemas = components.schemas or {}
    _document_stream(document, schemas)
    for name in bodies:
        schemas[name].additional_properties = False  # the wire Structs forbid unknown fields
    if "AnalyzeRequest" in schemas:
        # html or text, never both (refused by pipeline.service._checked_url); null counts as absent
        both = Schema(type=OpenAPIType.OBJECT, required=["html", "text"],
                      properties={"html": Schema(type=OpenAPIType.STRING), "text": Schema(type=OpenAPIType.STRING)})
        schemas["AnalyzeRequest"].schema_not = both
        # A request that is analyzed and stored: testers (and schemathesis) start from a real story.
        schemas["AnalyzeRequest"].examples = [{
            "url": "https://news.example/2026/11/17/open-models",
            "title": "OpenAI to publish open models",
            "text": "Sam Altman said in San Francisco on Tuesday that OpenAI would publish open "
                    "models. Researchers at Stanford University welcomed the news.",
        }]


def _document_stream(document: OpenAPI, schemas: dict[str, Any]) -> None:
    """The analyze operations' 200 answers also come as JSON lines: each line one of the events
    (msgspec writes their schemas; the types they share with Sidebar keep Litestar's)."""
    (line,), events = msgspec.json.schema_components([Event], ref_template="#/components/schemas/{name}")
    for name, schema in events.items():
        schemas.setdefault(name, schema)  # a raw JSON Schema: the document is served as a dict
    for item in (document.paths or {}).values():
        for operation in (item.get, item.post):
            if operation is None or operation.operation_id not in STREAMED_OPERATIONS:
                continue
            ok = operation.responses["200"]
            ok.content = {**(ok.content or {}), NDJSON: OpenAPIMediaType(schema=line)}
            ok.description = f"{(ok.description or 'The sidebar').rstrip('.')}. {STREAM_DESCRIPTION}"
