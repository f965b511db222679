"""The SQLite rows: what SQLite does its own way under the shared SQL calls (:mod:`backstory.archive.sql`)."""

from __future__ import annotations

import re

import numpy as np

from ... import schemas
from ...duplicates import simhash_bands
from ...story import StoryRecord, Viewer
from ..sql import SUMMARY_FIELDS, SqlRows, summary, visible

_FTS_WORD = re.compile(r"\w+", re.UNICODE)
FEED_HEAD = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)"


class Rows(SqlRows):
    EXTRA_COLUMNS = ("sh0", "sh1", "sh2", "sh3")  # SimHash bands: columns of schema 1, still NOT NULL
    PENDING = "analysed = 0"

    def embedding_in(self, embedding: list[float]) -> bytes:
        return np.asarray(embedding, dtype="<f4").tobytes()

    def embedding_out(self, stored: bytes) -> np.ndarray:
        return np.frombuffer(stored, dtype="<f4")

    def extra_values(self, record: StoryRecord) -> tuple:
        return simhash_bands(record.simhash)

    def feed_head(self) -> int:
        return self._one(FEED_HEAD)[0]

    def text_query(self, q: str) -> str | None:
        words = _FTS_WORD.findall(q)
        if not words:
            return None
        quoted = [f'"{w}"' for w in words]
        quoted[-1] += "*"  # the last word may still be being typed
        return " ".join(quoted)

    def search_text(self, match: str, limit: int, offset: int, viewer: Viewer) -> tuple[list[schemas.StorySummary], int]:
        seen, args = visible(viewer, "s.owner")
        matching = f"FROM stories_fts JOIN stories s ON s.id = stories_fts.rowid WHERE stories_fts MATCH ? AND {seen}"
        total = self._one(f"SELECT count(*) {matching}", match, *args)[0]
        cols = ", ".join(f"s.{name}" for name in SUMMARY_FIELDS)
        rows = self.execute(
            f"SELECT {cols}, snippet(stories_fts, 1, '', '', '…', 24) {matching} "
            "ORDER BY bm25(stories_fts, 4.0, 1.0, 0.5), s.id DESC LIMIT ? OFFSET ?",
            (match, *args, limit, offset),
        ).fetchall()
        n = len(SUMMARY_FIELDS)
        return [summary(r[:n], r[n]) for r in rows], total
