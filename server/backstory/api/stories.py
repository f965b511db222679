"""/api/v1/stories: search, read, relate and delete archived stories."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, delete, get
from litestar.params import Parameter

from .. import errors
from ..archive.base import Archive
from ..schemas import MAX_QUERY_CHARS, RelatedList, Relation, Sidebar, StoryId, StoryList
from ..story import StoryRecord, Viewer, to_sidebar
from .deps import ARCHIVE, ArchiveParam, Services, require_token, viewer_of
from .openapi import problems, rules_of

# Litestar validates a path parameter by its Parameter (see rules_of).
StoryIdParam = Annotated[str, Parameter(**rules_of(StoryId))]


class StoriesController(Controller):
    path = "/api/v1/stories"
    guards = [require_token]
    dependencies = ARCHIVE
    tags = ["stories"]

    @get(operation_id="listStories", responses=problems())
    async def list_stories(
        self,
        request: Request,
        archive: ArchiveParam,
        q: Annotated[str | None, Parameter(description="Full-text query; newest first without it.", max_length=MAX_QUERY_CHARS)] = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
    ) -> StoryList:
        """Search the archive (full text), or list it newest first: the team's stories and the
        caller's own private ones."""
        stories, total = await archive.search(q.strip() if q and q.strip() else None, limit, offset,
                                              viewer=viewer_of(request))
        return StoryList(stories=stories, total=total, limit=limit, offset=offset)

    @get("/{story_id:str}", operation_id="getStory", responses=problems(404))
    async def get_story(self, request: Request, services: Services, archive: ArchiveParam,
                        story_id: StoryIdParam) -> Sidebar:
        """The stored sidebar payload of one story, with its related stories as of now (another
        member's private story is 404, as if it were not there)."""
        viewer = viewer_of(request)
        record = await _record(archive, story_id, viewer)
        related = await archive.related(record, limit=10, viewer=viewer)
        return to_sidebar(record, related, archived=True, added_by=await services.added_by(story_id))

    @get("/{story_id:str}/related", operation_id="relatedStories", responses=problems(404))
    async def related(
        self, request: Request, archive: ArchiveParam, story_id: StoryIdParam,
        limit: Annotated[int, Parameter(ge=1, le=50)] = 10,
        relation: Annotated[Relation | None, Parameter(
            description="Only the stories of this relation among the `limit` best (same_event: the same "
                        "event reported elsewhere; background: earlier or other stories on its people and topics).",
        )] = None,
    ) -> RelatedList:
        """The stories related to an archived story, best first, each with its reasons and its
        relation to it."""
        viewer = viewer_of(request)
        record = await _record(archive, story_id, viewer)
        return RelatedList(related=await archive.related(record, limit=limit, viewer=viewer, relation=relation))

    @delete("/{story_id:str}", operation_id="deleteStory", status_code=204, responses=problems(404), opt={"scope": "write"})
    async def delete_story(self, request: Request, services: Services, story_id: StoryIdParam) -> None:
        """Remove a story from the archive (a member's own; any, for an admin)."""
        if not await services.forget(story_id, request.state.caller):
            raise errors.NotFound(f"no story {story_id} in the archive")


async def _record(archive: Archive, story_id: str, viewer: Viewer) -> StoryRecord:
    record = await archive.get(story_id, viewer)
    if record is None:
        raise errors.NotFound(f"no story {story_id} in the archive")
    return record
