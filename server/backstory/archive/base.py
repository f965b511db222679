"""The archive contract: the :class:`Archive` protocol every backend answers.

Every backend (SQLite now, PostgreSQL + pgvector later) stores :class:`backstory.story.StoryRecord`s,
keeps one row per story (same canonical URL or near-identical text, see :mod:`backstory.duplicates`),
and answers ``related`` through the shared in-memory :class:`backstory.archive.related.RelatedIndex`.
This module imports no backend: the registry in ``backstory.archive`` picks one.

Private stories: a story's ``owner`` ("" for a team story) is part of its identity, and every read
is for a ``viewer`` (see :data:`backstory.story.Viewer`), passed down explicitly from the API's
caller: None sees the team's stories, a member its own private ones too, OPERATOR everything.
"""

from __future__ import annotations

from typing import AsyncIterator, Protocol, runtime_checkable

from .. import schemas
from ..story import OPERATOR, StoryRecord, Viewer
from ..subscription import FeedRow, FeedStats, PollOutcome


@runtime_checkable
class Archive(Protocol):
    """What the app needs from an archive backend. All methods are coroutines and never block the loop."""

    @property
    def generation(self) -> int:
        """A number that changes after every write this archive object makes, and after it
        applies another process's writes from the change feed (see ``archive/feed.py``). While it
        stays the same, :meth:`related` for the same record gives the same answer (the pipeline
        reuses it)."""

    async def upsert(self, record: StoryRecord, added_by: str | None = None) -> StoryRecord:
        """Store a story. The same canonical URL is the same page: the story is updated (id and
        first_seen kept, last_seen refreshed). A near-identical text elsewhere is ONE story too,
        but the stored one is left as it was (last_seen refreshed): the copy's URLs become its
        aliases. Returns the stored record."""

    async def find_duplicate(self, canonical_url: str, simhash: int, text: str, owner: str = "") -> str | None:
        """Id of the story :meth:`upsert` would store this page (of this owner) as, if any: by
        canonical URL (or alias), else by near-identical text (the one rule of
        :mod:`backstory.duplicates`), among the stories of the same owner only."""

    async def story_at(self, url: str, owner: str = "") -> str | None:
        """Id of the story of this owner filed under this URL (its canonical URL or an alias), if any."""

    async def get(self, story_id: str, viewer: Viewer = None) -> StoryRecord | None:
        """The story, if ``viewer`` sees it."""

    async def claim(self, story_id: str, who: str) -> bool:
        """Record that ``who`` ("token:<id>", "cli", ...) added a stored story."""

    async def added_by(self, story_id: str) -> list[str]: ...

    async def delete_claimed(self, story_id: str, who: str) -> str:
        """``who``'s delete: "deleted", "unclaimed" (others keep it), "forbidden" or "missing"."""

    async def delete(self, story_id: str, viewer: Viewer = OPERATOR) -> bool:
        """Delete a story ``viewer`` sees; False when there is none."""

    async def search(self, q: str | None, limit: int, offset: int,
                     viewer: Viewer = None) -> tuple[list[schemas.StorySummary], int]:
        """Full-text search (with snippets) when q is given, else newest first, among the stories
        ``viewer`` sees. Returns (page, total)."""

    async def related(self, record: StoryRecord, limit: int = 10, viewer: Viewer = None,
                      relation: schemas.Relation | None = None) -> list[schemas.RelatedStory]:
        """Stories related to ``record`` (archived or not) that ``viewer`` sees, best first, itself
        and its duplicates excluded; reasons are the shared entities and keyphrases, and each has
        its relation (same event or background); ``relation`` keeps those of one relation only."""

    def export(self, viewer: Viewer = None) -> AsyncIterator[StoryRecord]:
        """Every stored record ``viewer`` sees, losslessly (oldest first)."""

    async def import_record(self, record: StoryRecord) -> StoryRecord:
        """Store a record as it is (keeps story_id and first_seen); merges with a stored duplicate."""

    async def count(self) -> int: ...

    async def pending(self, limit: int = 8) -> list[StoryRecord]:
        """Stories stored but not analysed yet (``analysed`` False), oldest first."""
        ...

    async def count_pending(self) -> int: ...

    async def store_analysis(self, record: StoryRecord) -> bool:
        """Complete a pending story in place; False when it is gone or already analysed."""
        ...

    # ---- news-feed subscriptions (see archive/subscriptions.py and backstory/feeds/) ----------
    async def feeds(self) -> list[FeedRow]:
        """Every subscription, oldest first."""

    async def feed(self, url: str) -> FeedRow | None: ...

    async def feed_stats(self) -> FeedStats: ...

    async def unseen_entries(self, url: str, keys: list[str]) -> list[str]:
        """The entry keys not taken from the feed yet."""

    async def next_feed_due(self) -> str | None: ...

    async def add_feed(self, url: str, *, title: str | None, added_by: str | None, at: str, interval_s: float,
                       due: str | None = None) -> bool:
        """Subscribe to a feed, first due at ``due`` (default: at once); False when it is subscribed already."""

    async def remove_feed(self, url: str) -> bool:
        """Unsubscribe (its stories stay); False when it was not subscribed."""

    async def take_due_feeds(self, now: str, until: str, limit: int = 16) -> list[str]:
        """The feeds due by ``now``, each leased to the caller until ``until``."""

    async def feed_polled(self, url: str, outcome: PollOutcome, seen: list[str] = ()) -> None:
        """Record a poll's outcome and the entries it took, in one transaction."""

    async def close(self) -> None: ...

