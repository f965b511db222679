"""The response cache: finished analyses by request, so a repeat click is instant."""

from __future__ import annotations

import hashlib
import threading

from cachetools import Cache, LRUCache

from ..schemas import RelatedStory
from ..story import StoryRecord, Viewer

_peek = Cache.__getitem__  # an entry's value, leaving the LRU order as it is


class ResponseCache:
    """Two small LRUs, safe to share between threads: the story records of finished analyses by
    request (URL + content + the owner it is stored for, see :meth:`key`), and each story's
    related list for one viewer with the archive ``generation`` it was computed at, reused while
    the archive has not changed (the lookup is most of a cache hit's time). Both are keyed by
    whose they are: a member's private analysis (its story id, its archived flag) and a related
    list showing a member's private stories are never another caller's cache hit."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._records: LRUCache[str, StoryRecord] = LRUCache(maxsize=size)
        self._related: LRUCache[tuple[str, str, Viewer], tuple[int, list[RelatedStory]]] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    @staticmethod
    def key(url: str, html: str | None, text: str | None, title: str | None, owner: str = "") -> str:
        """A request's key; ``owner`` is whose story it is stored as ("" for a team story)."""
        h = hashlib.blake2b(digest_size=16)
        for part in (url, "\x00h" if html is not None else "\x00t", html or text or "", "\x00", title or "",
                     "\x00", owner):
            h.update(part.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def get(self, key: str) -> StoryRecord | None:
        with self._lock:
            return self._records.get(key)

    def put(self, key: str, record: StoryRecord) -> None:
        with self._lock:
            self._records[key] = record

    def related(self, record: StoryRecord, generation: int, viewer: Viewer) -> list[RelatedStory] | None:
        """The related list cached for ``record`` and ``viewer``, if it was computed at this ``generation``."""
        with self._lock:
            hit = self._related.get((record.story_id, record.content_hash, viewer))
            return hit[1] if hit is not None and hit[0] == generation else None

    def put_related(self, record: StoryRecord, generation: int, viewer: Viewer, related: list[RelatedStory]) -> None:
        with self._lock:
            self._related[(record.story_id, record.content_hash, viewer)] = (generation, related)

    def discard_story(self, story_id: str) -> None:
        with self._lock:
            for key in [k for k in self._records if _peek(self._records, k).story_id == story_id]:
                del self._records[key]
            for related_key in [k for k in self._related if k[0] == story_id]:
                del self._related[related_key]
