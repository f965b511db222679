"""Following the archive's change feed: what another process writes reaches this one's index.

Each backend keeps a feed of story changes (``changes_since``); a running server polls it and
puts the stories other processes added, changed or deleted into its related index (which
duplicate detection shares), changing ``generation`` so no cached related list outlives them.
Backend-neutral: it needs only the :class:`Followed` methods. SQLite is polled; PostgreSQL
notifies every change (LISTEN/NOTIFY), so its followers wake at once and poll only as a fallback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple, Protocol

import numpy as np

from .features import Features
from .related import RelatedIndex

log = logging.getLogger(__name__)


class ChangesPruned(Exception):
    """The feed no longer holds the changes after the position asked for: reload the index."""


class Change(NamedTuple):
    story_id: str
    kind: str  # "upsert" or "delete"


class IndexEntry(NamedTuple):
    """What the related index holds of one story, as stored."""

    features: Features
    embedding: np.ndarray | None
    simhash: int
    simhash_ok: bool
    owner: str = ""


def apply_entries(index: RelatedIndex, entries: dict[str, IndexEntry | None]) -> None:
    """Put the stories' stored state in the index: replaced, or removed when gone (None)."""
    for story_id, entry in entries.items():
        if entry is None:
            index.remove(story_id)
        else:
            index.add(story_id, entry.features, entry.embedding, entry.simhash, entry.simhash_ok, entry.owner)


class Followed(Protocol):
    """What the follower needs from an archive."""

    @property
    def index_seq(self) -> int:
        """The feed position the related index was (re)loaded at."""

    async def changes_since(self, seq: int) -> tuple[int, list[Change]]:
        """Changes after ``seq`` made by other writers, oldest first, and the position they reach
        (a page at a time: call again until no changes come). :class:`ChangesPruned` when the
        feed was cut past ``seq``."""

    async def follow(self, story_ids: list[str]) -> None:
        """Read these stories' stored index entries into the index, in order with this archive's
        own writes (a read never overtakes a newer write), changing ``generation``."""

    async def reload_index(self) -> int:
        """Rebuild the index from storage; returns the feed position it reflects."""


class Follower:
    """A background task polling an archive's change feed (see the module's docstring)."""

    def __init__(self, archive: Followed, interval: float) -> None:
        self.archive = archive
        self.interval = interval
        self.seq = archive.index_seq
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="backstory-feed-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:  # a locked or briefly unreadable file must not end the following
                log.exception("following the archive's change feed failed; trying again")
            await self.archive.wait_for_changes(self.interval)  # a notification, or the poll interval

    async def catch_up(self) -> int:
        """Apply every change the feed holds past this follower's position; returns how many
        stories were re-read (a full reload counts as one)."""
        applied = 0
        while True:
            try:
                seq, changes = await self.archive.changes_since(self.seq)
            except ChangesPruned:
                log.warning("the archive's change feed moved past this server's position; reloading the index")
                self.seq = await self.archive.reload_index()
                applied += 1
                continue
            if changes:
                # A story changed several times is read once, in its latest state.
                story_ids = list(dict.fromkeys(c.story_id for c in changes))
                await self.archive.follow(story_ids)
                applied += len(story_ids)
            if seq == self.seq:
                return applied
            self.seq = seq
            self.archive.index_seq = max(self.archive.index_seq, seq)  # its index shows them all now
