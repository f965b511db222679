"""The story archive: the backend-neutral half of every archive (see :class:`backstory.archive.base.Archive`).

It owns what makes an archive Backstory's and not just storage: which stored story a page is
(the duplicate and merge rules), the related-story index and its features, and the
``generation`` that tells the response cache when a related list may have changed. Under it a
:class:`backstory.archive.storage.Storage` keeps the rows; other processes' writes reach the
index through the storage's change feed (see ``archive/feed.py``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Callable, TypeVar

import msgspec
from cachetools import LRUCache

from .. import schemas
from ..schemas import Relation
from ..duplicates import (
    SIMHASH_CANDIDATE_DISTANCE,
    content_hash,
    hamming,
    is_copy,
    simhash,
    simhash_usable,
)
from ..memory import release_free_memory
from ..story import OPERATOR, StoryRecord, Viewer, derive, sees, story_id_for, utc_now
from ..urls import normalize_url
from .feed import Change, IndexEntry, apply_entries
from .features import FEATURES_VERSION, Features, compute_features, decode_features, encode_features
from .related import Hit, RelatedIndex
from .relation import relation_of
from .storage import AfterCommit, Card, IndexRow, Reader, Storage, Writer
from .subscriptions import Subscriptions

T = TypeVar("T")
_NEAR_CHECKED = 20  # near-duplicate candidates whose texts are compared, nearest first
_RECENT_CHECKED = 200  # latest feed changes looked at for copies the index does not show yet
_EMPTY = encode_features(compute_features(None, "", [], []))


def _features(record: StoryRecord) -> Features:
    return compute_features(record.title, record.text, record.entities, record.keyphrases)


class FeatureMemo:
    """The related-search features of the last few records seen: a story analysed for a reader is
    stored and then looked up at once, and both need its features (tokenising a whole page), so
    they are computed once. A hit needs the same text (content hash), title, entities and
    keyphrases (the very lists: records are immutable and share them). Features are a function of
    that content alone (no id, no owner): a hit gives a caller nothing but what its own record
    would have given, so the memo is shared by every viewer, private stories' records included."""

    def __init__(self, size: int = 64) -> None:
        self._items: LRUCache[str, tuple] = LRUCache(size)
        self._lock = threading.Lock()

    def of(self, record: StoryRecord) -> Features:
        key = record.content_hash or content_hash(record.text)
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] == record.title and hit[1] is record.entities and hit[2] is record.keyphrases:
            return hit[3]
        features = _features(record)
        with self._lock:
            self._items[key] = (record.title, record.entities, record.keyphrases, features)
        return features


def _entry(row: IndexRow | None) -> IndexEntry | None:
    if row is None:
        return None
    return IndexEntry(decode_features(row.features), row.embedding, row.simhash, row.simhash_ok, row.owner)


class StoryArchive(Subscriptions):
    """An archive on any :class:`Storage` (see :class:`backstory.archive.base.Archive`), with its
    news-feed subscriptions (:class:`backstory.archive.subscriptions.Subscriptions`)."""

    def __init__(self, storage: Storage, *, related_index: bool = True) -> None:
        self.storage = storage
        # Without it (a worker, which only completes stories in place) nothing is loaded or kept:
        # related lookups are refused, and copies are found among the feed's latest changes only.
        self.keeps_index = related_index
        self.index = RelatedIndex()
        self.index_seq = 0  # the change-feed position the index shows everything up to (see archive/feed.py)
        self._features = FeatureMemo()
        self._generation = 0
        self._started = False
        self._start_lock = asyncio.Lock()

    @property
    def generation(self) -> int:
        """Changes after every write (see :class:`backstory.archive.base.Archive`)."""
        return self._generation

    async def start(self) -> None:
        """Open the storage and load the related index from it."""
        async with self._start_lock:
            if self._started:
                return
            await self.storage.start()
            refreshed = await self.storage.read(lambda r: self._fill(r, self.index)) if self.keeps_index else None
            release_free_memory()  # the load's short-lived objects
            if refreshed is not None:
                await self.storage.write(lambda w: (w.store_features(refreshed, str(FEATURES_VERSION)), None))
            self._started = True

    async def close(self) -> None:
        await self.storage.close()

    async def __aenter__(self) -> "StoryArchive":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _fill(self, reader: Reader, index: RelatedIndex) -> list[tuple[bytes, str]] | None:
        """Load every stored story into ``index`` (and set ``index_seq``). When the stored
        features are from another FEATURES_VERSION they are recomputed here and returned, to store."""
        self.index_seq = reader.feed_head()  # before the stories: a change meanwhile is read again
        stale = reader.features_version() != str(FEATURES_VERSION)
        refreshed = []
        with index.bulk():
            # Texts are read only to recompute features: reading every text just to drop it
            # leaves a large freed-but-resident heap behind.
            for row in reader.index_rows(with_content=stale):
                if stale:
                    features = compute_features(*row.content)
                    refreshed.append((encode_features(features), row.story_id))
                else:
                    features = decode_features(row.features)
                index.add(row.story_id, features, row.embedding, row.simhash, row.simhash_ok, row.owner)
        return refreshed if stale else None

    def _indexing(self, update: Callable[[], None]) -> AfterCommit:
        """``update`` of the related index, as a write's after-commit step, when the index is kept."""
        return update if self.keeps_index else None

    async def _write(self, fn: Callable[[Writer], tuple[T, AfterCommit]]) -> T:
        if not self._started:
            await self.start()

        def job(writer: Writer) -> tuple[T, AfterCommit]:
            result, after = fn(writer)

            def committed() -> None:
                if after is not None:
                    after()
                # Counted once the index shows the write and before its caller hears of it: a
                # related list computed under an older number may miss it, never the reverse.
                self._generation += 1

            return result, committed

        return await self.storage.write(job)

    async def _read(self, fn: Callable[[Reader], T]) -> T:
        if not self._started:
            await self.start()
        return await self.storage.read(fn)

    # ---- which stored story a page is -------------------------------------------------------
    def _find_story(self, reader: Reader, canonical_url: str, sh: int, ok: bool, text: str,
                    owner: str = "") -> tuple[str | None, bool]:
        """The stored story a page with this (normalised) canonical URL and text is, and whether
        the page is that story's own (its canonical URL): the story with this canonical URL;
        else the story that has it as an alias while the texts are still copies; else a copy by
        text. Copies are told by the one rule, :func:`backstory.duplicates.is_copy`, among the
        stories whose SimHash is within SIMHASH_CANDIDATE_DISTANCE (nearest first).

        Only stories of the same ``owner`` are looked at ("": the team's; a member's private
        stories are a space of their own): a team page never merges into a private story (it
        would vanish from everyone else's view), and a private page never into a team story (it
        would be published, and its reader's claim shown to all)."""
        filed = reader.owner_of(canonical_url, owner)
        if filed is not None:
            if filed.own:
                return filed.story_id, True
            if is_copy(text, filed.text):
                return filed.story_id, False
            # The page at this alias says something else now: it is no copy of that story any more.
        if not ok:
            return None, False
        near = [story_id for story_id, _distance in self.index.near_simhash(sh, SIMHASH_CANDIDATE_DISTANCE, owner)]
        # Stories other processes wrote that the index may not show yet (the feed is followed
        # every fraction of a second): the same story sent to two servers at once is one story.
        near += [story_id for story_id, other in reader.changed_after(self.index_seq, _RECENT_CHECKED, owner)
                 if hamming(sh, other) <= SIMHASH_CANDIDATE_DISTANCE and story_id not in near]
        for story_id in near[:_NEAR_CHECKED]:
            other = reader.text(story_id)
            if other is not None and is_copy(text, other):
                return story_id, False
        return None, False

    def _store(self, w: Writer, rec: StoryRecord, features: Features, keep_identity: bool
               ) -> tuple[StoryRecord, AfterCommit]:
        ok = simhash_usable(rec.text)
        existing, own = self._find_story(w, rec.canonical_url, rec.simhash, ok, rec.text, rec.owner)
        if existing is None and (taken := w.identity(rec.story_id)) is not None:  # (only through imports)
            if taken.owner != rec.owner:  # another owner's id: never merged across owners, filed under its own
                rec = msgspec.structs.replace(rec, story_id=story_id_for(rec.canonical_url, rec.owner))
                if (taken := w.identity(rec.story_id)) is not None and taken.owner != rec.owner:
                    raise ValueError(f"story {rec.story_id} belongs to another owner (a hand-made import)")
            existing = rec.story_id if taken is not None else None  # an id taken by another canonical URL
        if keep_identity:
            # An import (of an export) merges into the stored story, taking the imported fields: the
            # archive's own records, so that an export imported again changes nothing.
            own = existing is not None
        incoming, page_url = rec.canonical_url, normalize_url(rec.url)
        if existing is not None and not own:
            # A copy (by text) of a stored story is one more source of it, never a rewrite of it:
            # otherwise any page could replace another site's story with its own title and URL.
            w.seen(existing, utc_now())
            for alias in (incoming, page_url):
                w.point_alias(alias, existing)
            return w.get(existing), None
        if existing is not None:
            old = w.identity(existing)
            if not rec.analysed and old.analysed:
                # An unanalysed copy never replaces an analysed story: it only adds its URLs.
                for alias in (incoming, page_url):
                    w.point_alias(alias, existing)
                return w.get(existing), None
            rec = msgspec.structs.replace(
                rec, story_id=existing, canonical_url=old.canonical_url,
                first_seen=min(old.first_seen, rec.first_seen) if keep_identity else old.first_seen,
                last_seen=max(old.last_seen, rec.last_seen) if keep_identity else max(old.last_seen, utc_now()),
            )
        w.put(rec, encode_features(features), ok, new=existing is None)
        for alias in (rec.canonical_url, page_url, incoming):
            w.point_alias(alias, rec.story_id)
        stored = rec
        return stored, self._indexing(lambda: self.index.add(stored.story_id, features, stored.embedding, stored.simhash,
                                                             ok, stored.owner))

    def _store_claimed(self, w: Writer, rec: StoryRecord, features: Features, keep_identity: bool,
                       added_by: str | None) -> tuple[StoryRecord, AfterCommit]:
        stored, after = self._store(w, rec, features, keep_identity)
        # Whoever adds a story, or a copy of one, has added that story; a private story is its
        # owner's alone, whoever stores it (an import of an export restores it as it was).
        claimant = stored.owner or added_by
        if claimant is not None:
            w.claim(stored.story_id, claimant, utc_now())
        return stored, after

    # ---- writes -----------------------------------------------------------------------------
    async def upsert(self, record: StoryRecord, added_by: str | None = None) -> StoryRecord:
        """Store a story (see :class:`backstory.archive.base.Archive`), claimed by ``added_by``."""
        record = derive(record)
        # The features are computed in the storage's writer thread, not on the event loop, and
        # kept for the related search that follows (see FeatureMemo).
        return await self._write(
            lambda w: self._store_claimed(w, record, self._features.of(record), False, added_by))

    async def import_record(self, record: StoryRecord, added_by: str | None = None) -> StoryRecord:
        record = derive(record)
        return await self._write(lambda w: self._store_claimed(w, record, _features(record), True, added_by))

    async def claim(self, story_id: str, who: str) -> bool:
        """Record that ``who`` added a stored story; False when there is no such story."""
        def job(w: Writer) -> tuple[bool, AfterCommit]:
            if w.identity(story_id) is None:
                return False, None
            w.claim(story_id, who, utc_now())
            return True, None

        return await self.storage.write(job)  # no story changes: the generation stays

    async def added_by(self, story_id: str) -> list[str]:
        """Who added the story ("token:<id>", "cli", ...)."""
        return await self._read(lambda r: r.claims(story_id))

    async def delete_claimed(self, story_id: str, who: str) -> str:
        """``who``'s delete: the story goes when ``who`` is its only claimant; with others, only
        ``who``'s claim goes. Returns "deleted", "unclaimed", "forbidden" (not ``who``'s) or
        "missing"."""
        def job(w: Writer) -> tuple[str, AfterCommit]:
            found = w.identity(story_id)
            if found is None or not sees(who, found.owner):  # another's private story: not there, for who
                return "missing", None
            claims = w.claims(story_id)
            if who not in claims:
                return "forbidden", None
            if claims != [who]:
                w.unclaim(story_id, who)
                return "unclaimed", None
            w.delete(story_id)
            return "deleted", self._indexing(lambda: self.index.remove(story_id))

        return await self._write(job)

    async def delete(self, story_id: str, viewer: Viewer = OPERATOR) -> bool:
        """Delete a story ``viewer`` sees (an admin's delete: never another member's private story)."""
        def job(w: Writer) -> tuple[bool, AfterCommit]:
            found = w.identity(story_id)
            gone = found is not None and sees(viewer, found.owner) and w.delete(story_id)
            return gone, self._indexing(lambda: self.index.remove(story_id)) if gone else None

        return await self._write(job)

    async def store_analysis(self, record: StoryRecord) -> bool:
        """Fill in a pending story's entities, keyphrases and embedding. False (and nothing
        written) when the story is gone or was analysed meanwhile: a delete is never undone."""
        features = _features(record)

        def job(w: Writer) -> tuple[bool, AfterCommit]:
            if not w.complete(record, encode_features(features)):
                return False, None
            ok = simhash_usable(record.text)
            return True, self._indexing(lambda: self.index.add(record.story_id, features, record.embedding, record.simhash,
                                                               ok, record.owner))

        return await self._write(job)

    # ---- reads ------------------------------------------------------------------------------
    async def find_duplicate(self, canonical_url: str, simhash: int, text: str, owner: str = "") -> str | None:
        url = normalize_url(canonical_url)
        return await self._read(lambda r: self._find_story(r, url, simhash, simhash_usable(text), text, owner)[0])

    async def story_at(self, url: str, owner: str = "") -> str | None:
        normalized = normalize_url(url)
        return await self._read(lambda r: filed.story_id if (filed := r.owner_of(normalized, owner)) is not None else None)

    async def get(self, story_id: str, viewer: Viewer = None) -> StoryRecord | None:
        return await self._read(lambda r: r.get(story_id, viewer))

    async def count(self) -> int:
        return await self._read(lambda r: r.count())

    async def count_pending(self) -> int:
        return await self._read(lambda r: r.count(pending_only=True))

    async def pending(self, limit: int = 8) -> list[StoryRecord]:
        return await self._read(lambda r: r.pending(limit))

    async def search(self, q: str | None, limit: int = 20, offset: int = 0,
                     viewer: Viewer = None) -> tuple[list[schemas.StorySummary], int]:
        limit, offset = max(0, int(limit)), max(0, int(offset))
        return await self._read(lambda r: r.search(q, limit, offset, viewer))

    async def related(self, record: StoryRecord, limit: int = 10, viewer: Viewer = None,
                      relation: Relation | None = None) -> list[schemas.RelatedStory]:
        """The ``limit`` best related stories, each with its relation to ``record``; ``relation``
        filters that list (a view of it: the panel's sections never disagree with it)."""
        found = await self.related_hits(record, limit, viewer)
        out = [
            schemas.RelatedStory(
                story_id=h.story_id, url=card.canonical_url, title=card.title, site_name=card.site_name,
                published=card.published, score=h.score, shared_entities=h.shared_entities,
                shared_keyphrases=h.shared_keyphrases, first_seen=card.first_seen,
                relation=relation_of(h, record.published, card.published),
            )
            for h, card in found
        ]
        return out if relation is None else [r for r in out if r.relation == relation]

    async def related_hits(self, record: StoryRecord, limit: int = 10, viewer: Viewer = None) -> list[tuple[Hit, Card]]:
        """The index's hits for ``record`` (with their relation signals) and their stories' cards."""
        if not self.keeps_index:
            raise RuntimeError("this archive was opened without its related index")

        def job(r: Reader) -> list[tuple[Hit, Card]]:
            index = self.index  # one index for the whole lookup: a reload may swap it meanwhile
            # The story it is, by the one duplicate rule, among the stories of each owner the viewer
            # sees: a member's private copy of a team story is no news of it, nor the reverse.
            owners = {record.owner}
            if viewer not in (None, OPERATOR) and viewer in index.owner_code:  # the viewer has private stories
                owners |= {"", viewer}
            exclude = []
            if record.story_id in index.slot_of:
                exclude.append(record.story_id)
                owners.discard(record.owner)
            ok = simhash_usable(record.text) if record.text else False
            sh = (record.simhash or simhash(record.text)) if ok else None
            if record.canonical_url and owners:
                url = normalize_url(record.canonical_url)
                exclude += [found for owner in owners
                            if (found := self._find_story(r, url, sh or 0, ok, record.text, owner)[0]) is not None]

            def features_of(ids: list[str]) -> list[Features]:
                stored = r.features(ids)
                return [decode_features(stored.get(i, _EMPTY)) for i in ids]

            hits = index.query(
                self._features.of(record), record.embedding, limit=limit, features_of=features_of,
                viewer=viewer, exclude_ids=exclude, simhash=sh,
            )
            cards = r.cards([h.story_id for h in hits]) if hits else {}
            return [(h, card) for h in hits
                    if (card := cards.get(h.story_id)) is not None]  # deleted between the index lookup and now

        return await self._read(job)

    async def export(self, viewer: Viewer = None) -> AsyncIterator[StoryRecord]:
        """Every record ``viewer`` sees (:data:`~backstory.story.OPERATOR`: every one), losslessly, oldest first."""
        position = 0
        while True:
            records, position = await self._read(lambda r, after=position: r.export_page(after, viewer))
            if not records:
                return
            for record in records:
                yield record

    async def aliases(self) -> AsyncIterator[tuple[str, str]]:
        """Every URL filed under a story, with the story's id (its own canonical URL among them)."""
        after = ("", "")
        while True:
            page = await self._read(lambda r, after=after: r.aliases_page(after, 1000))
            if not page:
                return
            for alias in page:
                yield alias
            after = page[-1]

    async def add_alias(self, url: str, story_id: str) -> bool:
        """File a (normalised) URL under a stored story; False when there is no such story."""
        def job(w: Writer) -> tuple[bool, AfterCommit]:
            if w.identity(story_id) is None:
                return False, None
            w.point_alias(url, story_id)
            return True, None

        return await self._write(job)

    # ---- the change feed (see archive/feed.py) ----------------------------------------------
    async def changes_since(self, seq: int) -> tuple[int, list[Change]]:
        return await self.storage.changes_since(seq)

    async def wait_for_changes(self, timeout: float) -> None:
        await self.storage.wait_for_changes(timeout)

    async def follow(self, story_ids: list[str]) -> None:
        def job(w: Writer) -> tuple[None, AfterCommit]:
            entries = {sid: _entry(row) for sid, row in w.index_row(story_ids).items()}
            return None, self._indexing(lambda: apply_entries(self.index, entries))

        # Through the writer: own writes are applied in commit order, so a stale read never
        # lands after a newer write of the same story.
        await self._write(job)

    async def reload_index(self) -> int:
        def job(w: Writer) -> tuple[int, AfterCommit]:
            index = RelatedIndex()
            before = self.index_seq
            refreshed = self._fill(w, index)  # the write lock is held: nothing else moves meanwhile
            if refreshed is not None:
                w.store_features(refreshed, str(FEATURES_VERSION))
            head, self.index_seq = self.index_seq, before

            def swap() -> None:
                self.index = index
                self.index_seq = head

            return head, swap

        head = await self._write(job)
        release_free_memory()
        return head
