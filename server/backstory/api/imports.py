"""/api/v1/imports: a reading history sent as an export file, imported in the background."""

from __future__ import annotations

import asyncio
import zipfile
from typing import Annotated, Literal

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import Parameter

from .. import errors
from ..imports import FORMATS, UnknownFormat, detect, opml
from ..schemas import ImportId, ImportList, ImportStatus
from .body import spool_body
from .deps import Services, authorize, require_token
from .guard import IMPORT_MEDIA_TYPES, IMPORTS_PATH
from .openapi import file_body, problems, rules_of

ImportIdParam = Annotated[str, Parameter(**rules_of(ImportId))]
Format = Literal[tuple(FORMATS)]  # type: ignore[valid-type]
BODY = ("The export file itself (not a form): a Pocket zip or CSV, an Omnivore zip, a Wallabag JSON, "
        "a bookmarks HTML file, an OPML list or Backstory's JSON lines. Its format is told from its "
        "content; the type need only be one of these.")


class ImportsController(Controller):
    path = IMPORTS_PATH
    guards = [require_token]
    tags = ["imports"]

    @post(
        operation_id="startImport", status_code=202, opt={"scope": "write"},
        request_max_body_size=None,  # spool_body applies BACKSTORY_MAX_IMPORT_BYTES
        operation_class=file_body(IMPORT_MEDIA_TYPES, BODY),
        response_headers=[ResponseHeader(name="Location", value=f"{IMPORTS_PATH}/{{import_id}}", documentation_only=True,
                                         description="Where the import's progress is reported.", required=True)],
        responses=problems(413, 415, 422, 429),
    )
    async def start_import(
        self, request: Request, services: Services,
        format: Annotated[Format | None, Parameter(
            description="The export's format, when it cannot be told from its content.")] = None,
        visibility: Annotated[Literal["team", "private"] | None, Parameter(
            description="team or private (the caller's own); unset, the token's default.")] = None,
    ) -> Response[ImportStatus]:
        """Import a reading history: its stories are stored (the server analyses them in the
        background), what the archive has is skipped; an OPML list of feeds needs an admin token.
        Answers at once; the import's progress and failures are at the Location given."""
        caller = request.state.caller
        # Every story of the file, exported records included, is filed as this says: never among
        # another member's private stories (see imports.store.store). 400 without tokens.
        private = bool(caller.owner(visibility))
        importer = services.opened_importer()
        async with importer.receiving_one():
            fh, size = await spool_body(request, services.settings.max_import_bytes, "BACKSTORY_MAX_IMPORT_BYTES")
            try:
                if not size:
                    raise errors.NotImportable("the body is empty: send the export file itself as the body")
                if format is None:
                    try:
                        format = await asyncio.to_thread(detect, fh)
                    except (UnknownFormat, zipfile.BadZipFile, OSError, EOFError) as exc:
                        raise errors.NotImportable(str(exc).replace("--format", "?format=")) from None
                if format == opml.NAME:  # a list of feeds: subscribing is an admin's
                    authorize(request, "admin")
            except BaseException:
                fh.close()
                raise
            status = await importer.begin(fh, format, size, caller.who, "private" if private else "team")
        return Response(status, status_code=202, headers={"Location": f"{IMPORTS_PATH}/{status.import_id}"})

    @get(operation_id="listImports", responses=problems())
    async def list_imports(
        self, request: Request, services: Services, limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    ) -> ImportList:
        """The latest imports, newest first: the caller's own (an admin's: everyone's)."""
        return ImportList(imports=await services.opened_importer().log.recent(_owner(request), limit))

    @get("/{import_id:str}", operation_id="getImport", responses=problems(404))
    async def get_import(self, request: Request, services: Services, import_id: ImportIdParam) -> ImportStatus:
        """An import's progress: its counts, its failures with their reasons, the feeds it found."""
        status = await services.opened_importer().log.get(import_id, _owner(request))
        if status is None:
            raise errors.NotFound(f"no import {import_id} (of yours) in the archive")
        return status


def _owner(request: Request) -> str | None:
    """Whose imports the caller may see: their own; anyone's for an admin (or on a server without tokens)."""
    caller = request.state.caller
    return None if caller.may("admin") else caller.who
