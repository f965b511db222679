"""The PostgreSQL rows: what PostgreSQL does its own way under the shared SQL calls (:mod:`backstory.archive.sql`)."""

from __future__ import annotations

import functools
import re

import numpy as np

from ... import schemas
from ..sql import SUMMARY_FIELDS, SqlRows, summary, visible
from ...story import Viewer
from .schema import SEARCHED_CHARS

_WORD = re.compile(r"\w+", re.UNICODE)
_SUMMARY = ", ".join(SUMMARY_FIELDS)
# ts_rank's weights of the label D (unused), C (site name), B (text) and A (title): the title
# counts most, as in the SQLite archive's bm25 weights.
_RANK_WEIGHTS = "{0.0, 0.125, 0.25, 1.0}"
_SNIPPET = "StartSel='', StopSel='', MaxWords=24, MinWords=8, MaxFragments=1, FragmentDelimiter=' … '"


@functools.lru_cache(maxsize=256)
def _placeholders(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")


class Rows(SqlRows):
    GREATEST = "greatest"
    JSON_OUT = "{}::text"

    def sql(self, statement: str) -> str:
        return _placeholders(statement)

    def embedding_in(self, embedding: list[float]) -> np.ndarray:
        return np.asarray(embedding, dtype=np.float32)

    def embedding_out(self, stored) -> np.ndarray:
        return np.asarray(stored.to_numpy() if hasattr(stored, "to_numpy") else stored, dtype=np.float32)

    def put_token(self, token, digest: str) -> None:
        super().put_token(token, digest)
        # An id given explicitly leaves the sequence behind: the next token created must not reuse one.
        self.execute("SELECT setval(pg_get_serial_sequence('tokens', 'id'), (SELECT max(id) FROM tokens))")

    def feed_head(self) -> int:
        return self._one("SELECT coalesce(max(seq), 0) FROM changes")[0]

    def text_query(self, q: str) -> str | None:
        words = _WORD.findall(q)
        if not words:
            return None
        # Each word a quoted lexeme (nothing in it is read as an operator); the last may still be typed.
        return " & ".join([*(f"'{w}'" for w in words[:-1]), f"'{words[-1]}':*"])

    def search_text(self, match: str, limit: int, offset: int, viewer: Viewer) -> tuple[list[schemas.StorySummary], int]:
        query = "to_tsquery('english', ?)"
        seen, args = visible(viewer)
        total = self._one(f"SELECT count(*) FROM stories WHERE search @@ {query} AND {seen}", match, *args)[0]
        rows = self.execute(
            f"SELECT {_SUMMARY}, ts_headline('english', left(text, {SEARCHED_CHARS}), q, ?) "
            f"FROM stories, {query} AS q WHERE search @@ q AND {seen} "
            f"ORDER BY ts_rank('{_RANK_WEIGHTS}', search, q) DESC, id DESC LIMIT ? OFFSET ?",
            (_SNIPPET, match, *args, limit, offset),
        ).fetchall()
        n = len(SUMMARY_FIELDS)
        return [summary(r[:n], r[n]) for r in rows], total
