"""The SQLite archive's rows: the storage calls (:mod:`backstory.archive.storage`) on one
connection, and how a :class:`backstory.story.StoryRecord` maps to a row of ``stories``."""

from __future__ import annotations

import re
import sqlite3
from typing import Iterator

import msgspec
import numpy as np

from ... import schemas
from ...duplicates import simhash_bands
from ...story import StoryRecord
from ..storage import Card, Identity, IndexRow, UrlOwner

_json = msgspec.json.Encoder()
_DECODERS = {
    "keyphrases": msgspec.json.Decoder(list[schemas.Keyphrase]).decode,
    "entities": msgspec.json.Decoder(list[schemas.Entity]).decode,
    "embedding": lambda blob: np.frombuffer(blob, dtype="<f4").tolist(),
    "analysed": bool,
}
# The stories table has a column for every StoryRecord field, of the same name.
_FIELDS = StoryRecord.__struct_fields__
_COLUMNS = ", ".join(_FIELDS)
_ROW_COLUMNS = (*_FIELDS, "simhash_ok", "sh0", "sh1", "sh2", "sh3", "features")
_SUMMARY_FIELDS = ("story_id", "url", "canonical_url", "title", "site_name", "published", "first_seen", "last_seen")
_SUMMARY = ", ".join(_SUMMARY_FIELDS)
# Point an alias URL at a story. An alias follows the page's latest analysis, but a story's own
# canonical URL is never taken from it.
_POINT_ALIAS = (
    "INSERT INTO aliases (canonical_url, story_id) VALUES (?, ?) ON CONFLICT (canonical_url) DO UPDATE "
    "SET story_id = excluded.story_id WHERE NOT EXISTS ("
    "SELECT 1 FROM stories s WHERE s.story_id = aliases.story_id AND s.canonical_url = aliases.canonical_url)"
)
_FTS_WORD = re.compile(r"\w+", re.UNICODE)
FEED_HEAD = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)"


def _row_to_record(row: tuple) -> StoryRecord:
    fields = {name: _DECODERS[name](value) if name in _DECODERS and value is not None else value
              for name, value in zip(_FIELDS, row)}
    return StoryRecord(**fields)


def _column(name: str, value: object) -> object:
    if name in ("keyphrases", "entities"):
        return _json.encode(value).decode()
    if name == "embedding":
        return np.asarray(value, dtype="<f4").tobytes() if value is not None else None
    return int(value) if name == "analysed" else value


def _embedding(blob: bytes | None) -> np.ndarray | None:
    return np.frombuffer(blob, dtype="<f4") if blob is not None else None


def _summary(row: tuple, snippet: str | None = None) -> schemas.StorySummary:
    return schemas.StorySummary(**dict(zip(_SUMMARY_FIELDS, row)), snippet=snippet)


def _fts_query(q: str) -> str | None:
    words = _FTS_WORD.findall(q)
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"  # the last word may still be being typed
    return " ".join(quoted)


def _chunks(ids: list[str]) -> Iterator[tuple[list[str], str]]:
    """``ids`` in chunks within SQLite's bound-parameter limit, each with its placeholders."""
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield chunk, ", ".join("?" * len(chunk))


class Rows:
    """The storage calls (see :mod:`backstory.archive.storage`) on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _one(self, sql: str, *args: object) -> tuple | None:
        return self.conn.execute(sql, args).fetchone()

    # ---- reads ------------------------------------------------------------------------------
    def get(self, story_id: str) -> StoryRecord | None:
        row = self._one(f"SELECT {_COLUMNS} FROM stories WHERE story_id = ?", story_id)
        return _row_to_record(row) if row else None

    def owner_of(self, url: str) -> UrlOwner | None:
        row = self._one(
            "SELECT s.story_id, s.canonical_url = a.canonical_url, s.text FROM aliases a "
            "JOIN stories s ON s.story_id = a.story_id WHERE a.canonical_url = ?", url,
        )
        return UrlOwner(row[0], bool(row[1]), row[2]) if row else None

    def text(self, story_id: str) -> str | None:
        row = self._one("SELECT text FROM stories WHERE story_id = ?", story_id)
        return row[0] if row else None

    def features(self, story_ids: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for chunk, marks in _chunks(story_ids):
            out.update(self.conn.execute(f"SELECT story_id, features FROM stories WHERE story_id IN ({marks})", chunk))
        return out

    def cards(self, story_ids: list[str]) -> dict[str, Card]:
        out: dict[str, Card] = {}
        for chunk, marks in _chunks(story_ids):
            rows = self.conn.execute(
                f"SELECT story_id, canonical_url, title, site_name, published FROM stories WHERE story_id IN ({marks})",
                chunk,
            )
            out.update((r[0], Card(*r[1:])) for r in rows)
        return out

    def search(self, q: str | None, limit: int, offset: int) -> tuple[list[schemas.StorySummary], int]:
        conn = self.conn
        match = _fts_query(q) if q else None
        if q and match is None:
            return [], 0
        if match is None:
            total = conn.execute("SELECT count(*) FROM stories").fetchone()[0]
            rows = conn.execute(
                f"SELECT {_SUMMARY} FROM stories ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
            return [_summary(r) for r in rows], total
        total = conn.execute("SELECT count(*) FROM stories_fts WHERE stories_fts MATCH ?", (match,)).fetchone()[0]
        cols = ", ".join(f"s.{name}" for name in _SUMMARY_FIELDS)
        rows = conn.execute(
            f"SELECT {cols}, snippet(stories_fts, 1, '', '', '…', 24) FROM stories_fts "
            "JOIN stories s ON s.id = stories_fts.rowid WHERE stories_fts MATCH ? "
            "ORDER BY bm25(stories_fts, 4.0, 1.0, 0.5), s.id DESC LIMIT ? OFFSET ?",
            (match, limit, offset),
        ).fetchall()
        return [_summary(r[:8], r[8]) for r in rows], total

    def count(self, pending_only: bool = False) -> int:
        return self._one("SELECT count(*) FROM stories" + (" WHERE analysed = 0" if pending_only else ""))[0]

    def pending(self, limit: int) -> list[StoryRecord]:
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM stories WHERE analysed = 0 ORDER BY id LIMIT ?", (limit,))
        return [_row_to_record(r) for r in rows]

    def export_page(self, after: int) -> tuple[list[StoryRecord], int]:
        rows = self.conn.execute(f"SELECT id, {_COLUMNS} FROM stories WHERE id > ? ORDER BY id LIMIT 500", (after,)).fetchall()
        return [_row_to_record(r[1:]) for r in rows], (rows[-1][0] if rows else after)

    def index_rows(self, with_content: bool) -> Iterator[IndexRow]:
        extra = "title, text, entities, keyphrases" if with_content else "NULL, NULL, NULL, NULL"
        cur = self.conn.execute(f"SELECT story_id, features, embedding, simhash, simhash_ok, {extra} FROM stories ORDER BY id")
        for sid, feats, emb, sh, ok, title, text, ents, kps in cur:
            content = (title, text, _DECODERS["entities"](ents), _DECODERS["keyphrases"](kps)) if with_content else None
            yield IndexRow(sid, feats, _embedding(emb), sh, bool(ok), content)

    def index_row(self, story_ids: list[str]) -> dict[str, IndexRow | None]:
        out: dict[str, IndexRow | None] = dict.fromkeys(story_ids)
        for chunk, marks in _chunks(story_ids):
            rows = self.conn.execute(
                f"SELECT story_id, features, embedding, simhash, simhash_ok FROM stories WHERE story_id IN ({marks})", chunk
            )
            for sid, feats, emb, sh, ok in rows:
                out[sid] = IndexRow(sid, feats, _embedding(emb), sh, bool(ok))
        return out

    def features_version(self) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = 'features_version'")
        return row[0] if row else None

    def feed_head(self) -> int:
        return self._one(FEED_HEAD)[0]

    # ---- writes (on the writer's connection only) -------------------------------------------
    def put(self, record: StoryRecord, features: bytes, simhash_ok: bool, new: bool) -> None:
        values = (*(_column(name, getattr(record, name)) for name in _FIELDS), int(simhash_ok),
                  *simhash_bands(record.simhash), features)
        if new:
            self.conn.execute(f"INSERT INTO stories ({', '.join(_ROW_COLUMNS)}) VALUES ({', '.join('?' * len(values))})",
                              values)
        else:
            sets = ", ".join(f"{name} = ?" for name in _ROW_COLUMNS)
            self.conn.execute(f"UPDATE stories SET {sets} WHERE story_id = ?", (*values, record.story_id))

    def identity(self, story_id: str) -> Identity | None:
        row = self._one("SELECT canonical_url, first_seen, last_seen, analysed FROM stories WHERE story_id = ?", story_id)
        return Identity(row[0], row[1], row[2], bool(row[3])) if row else None

    def seen(self, story_id: str, at: str) -> None:
        self.conn.execute("UPDATE stories SET last_seen = max(last_seen, ?) WHERE story_id = ?", (at, story_id))

    def point_alias(self, url: str, story_id: str) -> None:
        self.conn.execute(_POINT_ALIAS, (url, story_id))

    def delete(self, story_id: str) -> bool:
        return self.conn.execute("DELETE FROM stories WHERE story_id = ?", (story_id,)).rowcount > 0

    def complete(self, record: StoryRecord, features: bytes) -> bool:
        cur = self.conn.execute(
            "UPDATE stories SET keyphrases = ?, entities = ?, embedding = ?, features = ?, analysed = 1 "
            "WHERE story_id = ? AND analysed = 0",
            (_column("keyphrases", record.keyphrases), _column("entities", record.entities),
             _column("embedding", record.embedding), features, record.story_id),
        )
        return cur.rowcount > 0

    def store_features(self, features: list[tuple[bytes, str]], version: str) -> None:
        self.conn.executemany("UPDATE stories SET features = ? WHERE story_id = ?", features)
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('features_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (version,)
        )
