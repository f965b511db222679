"""/api/v1/feeds: the news feeds the archive is subscribed to (listed with the read scope,
added and removed with admin: the server then fetches from those sites on its own)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from .. import errors
from ..feeds import subscribe
from ..schemas import FeedList, FeedRequest, FeedSubscription, HttpUrl
from ..subscription import FeedRow
from ..urls import check_url
from .deps import Services, require_token
from .openapi import problems, rules_of

FeedUrlParam = Annotated[str, Parameter(**rules_of(HttpUrl))]


async def _shown(services: Services, feeds: list[FeedRow]) -> list[FeedSubscription]:
    names = await services.token_store().names([f.added_by or "" for f in feeds])
    return [FeedSubscription(url=f.url, title=f.title, added_by=name or None, added=f.added, last_poll=f.last_poll,
                             next_poll=f.next_poll, last_error=f.last_error, failures=f.failures,
                             interval_s=f.interval_s, entries=f.entries)
            for f, name in zip(feeds, names)]


class FeedsController(Controller):
    path = "/api/v1/feeds"
    guards = [require_token]
    tags = ["feeds"]

    @get(operation_id="listFeeds", responses=problems())
    async def list_feeds(self, services: Services) -> FeedList:
        """Every subscribed feed, with its last poll, next poll and last error."""
        return FeedList(feeds=await _shown(services, await services.opened_archive().feeds()))

    @post(operation_id="addFeed", status_code=201, opt={"scope": "admin"},
          responses={**problems(404, 413, 415, 422),
                     200: ResponseSpec(FeedSubscription, description="Subscribed already: the feed as it is.",
                                       generate_examples=False)})
    async def add_feed(self, request: Request, services: Services, data: FeedRequest) -> Response[FeedSubscription]:
        """Subscribe to an RSS, Atom or JSON feed; it is polled at once, then at its interval,
        and its new entries are archived (analysed in the background)."""
        archive = services.opened_archive()
        # With a job queue the poll is queued right here, so the feed is leased to that job: else
        # the periodic job could find it due meanwhile and queue a second poll of it.
        url, new = await subscribe(archive, services.settings, data.url, title=data.title,
                                   added_by=request.state.caller.who, polled_here=services.jobs is not None)
        if new:
            await services.poll_soon(url)
        feed = await archive.feed(url)
        if feed is None:  # removed by someone else this very moment
            raise errors.NotFound(f"the feed {url} was unsubscribed meanwhile")
        return Response((await _shown(services, [feed]))[0], status_code=201 if new else 200)

    @delete(operation_id="removeFeed", status_code=204, opt={"scope": "admin"}, responses=problems(404, 422))
    async def remove_feed(self, services: Services, url: FeedUrlParam) -> None:
        """Unsubscribe from a feed (the stories taken from it stay in the archive)."""
        if not await services.opened_archive().remove_feed(check_url(url)):
            raise errors.NotFound(f"no feed {url} is subscribed")
