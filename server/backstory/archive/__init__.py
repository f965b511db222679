"""The story archive: storage, dedup, full-text search and related stories."""

from .base import (
    Archive,
    StoryRecord,
    content_hash,
    normalize_url,
    open_archive,
    simhash,
    story_id_for,
)

__all__ = ["Archive", "StoryRecord", "content_hash", "normalize_url", "open_archive", "simhash", "story_id_for"]
