"""The storage calls in SQL, for the SQL backends (SQLite, PostgreSQL).

Both keep the same tables — ``stories`` (a column per :class:`backstory.story.StoryRecord` field,
of the same name, plus what the related index needs), ``aliases``, ``meta``, the ``changes``
feed, ``tokens``, ``claims`` and the news-feed subscriptions (``archive/subscriptions.py``) — so the calls of :mod:`backstory.archive.storage` are written once here, with ``?`` for
parameters; a backend's subclass supplies what differs: its full-text search, its feed head,
how it stores an embedding and JSON, and its placeholder.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgspec
import numpy as np

from .. import schemas
from ..story import OPERATOR, StoryRecord, Viewer
from .storage import Card, Identity, ImportRow, IndexRow, TokenRow, UrlOwner
from .subscriptions import SubscriptionRows

_json = msgspec.json.Encoder()
_decode_keyphrases = msgspec.json.Decoder(list[schemas.Keyphrase]).decode
_decode_entities = msgspec.json.Decoder(list[schemas.Entity]).decode
_decode_tags = msgspec.json.Decoder(list[str]).decode
FIELDS = StoryRecord.__struct_fields__
SUMMARY_FIELDS = ("story_id", "url", "canonical_url", "title", "site_name", "published", "first_seen", "last_seen",
                  "owner")
_JSON_FIELDS = ("keyphrases", "entities", "tags")
_TOKEN_COLUMNS = "id, name, scope, created, last_used, expires, revoked, visibility"  # a TokenRow's
_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM tokens"
_IMPORT = f"SELECT {', '.join(ImportRow._fields)} FROM imports"
_CHUNK = 500  # ids per IN (...) list: within every backend's bound-parameter limit
# Point an alias URL at a story, among its owner's URLs (the team's, or one member's private
# ones). An alias follows the page's latest analysis, but a story's own canonical URL is never
# taken from it.
_POINT_ALIAS = (
    "INSERT INTO aliases (owner, canonical_url, story_id) SELECT owner, ?, story_id FROM stories WHERE story_id = ? "
    "ON CONFLICT (owner, canonical_url) DO UPDATE "
    "SET story_id = excluded.story_id WHERE NOT EXISTS ("
    "SELECT 1 FROM stories s WHERE s.story_id = aliases.story_id AND s.canonical_url = aliases.canonical_url)"
)


def summary(row: tuple, snippet: str | None = None) -> schemas.StorySummary:
    fields = dict(zip(SUMMARY_FIELDS, row))
    visibility = "private" if fields.pop("owner") else "team"
    return schemas.StorySummary(**fields, snippet=snippet, visibility=visibility)


def visible(viewer: Viewer, column: str = "owner") -> tuple[str, tuple]:
    """The SQL condition (and its arguments) of the stories ``viewer`` sees (see
    :data:`backstory.archive.storage.Viewer`)."""
    if viewer == OPERATOR:
        return "1 = 1", ()
    if viewer is None:
        return f"{column} = ''", ()
    return f"({column} = '' OR {column} = ?)", (viewer,)


class SqlRows(SubscriptionRows):
    """The storage calls on one DB-API connection (see :mod:`backstory.archive.storage`)."""

    GREATEST = "max"  # the SQL function of the larger of two values
    JSON_OUT = "{}"  # how a JSON column is selected as text
    EXTRA_COLUMNS: tuple[str, ...] = ()  # columns of the backend's own, filled by extra_values
    PENDING = "NOT analysed"  # the condition of a pending story, as the backend's partial index has it

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._columns = ", ".join(self.JSON_OUT.format(f) if f in _JSON_FIELDS else f for f in FIELDS)
        self._row_columns = (*FIELDS, "simhash_ok", *self.EXTRA_COLUMNS, "features")

    # ---- what a backend supplies ------------------------------------------------------------
    def sql(self, statement: str) -> str:
        """The statement in the backend's placeholder style."""
        return statement

    def embedding_in(self, embedding: list[float]) -> object:
        raise NotImplementedError

    def embedding_out(self, stored: Any) -> np.ndarray:
        raise NotImplementedError

    def extra_values(self, record: StoryRecord) -> tuple:
        return ()

    def text_query(self, q: str) -> str | None:
        """The backend's full-text query for what a reader typed; None when it has no word."""
        raise NotImplementedError

    def search_text(self, match: str, limit: int, offset: int, viewer: Viewer) -> tuple[list[schemas.StorySummary], int]:
        """Stories ``viewer`` sees matching a :meth:`text_query`, best first, with snippets; (page, total)."""
        raise NotImplementedError

    def feed_head(self) -> int:
        raise NotImplementedError

    # ---- plumbing ---------------------------------------------------------------------------
    def execute(self, statement: str, args: tuple | list = ()) -> Any:
        return self.conn.execute(self.sql(statement), args)

    def _one(self, statement: str, *args: object) -> tuple | None:
        return self.execute(statement, args).fetchone()

    def _in(self, statement: str, ids: list[str]) -> Iterator[tuple]:
        """Rows of ``statement`` (with ``{ids}`` for an ``IN`` list) for every id, a chunk at a time."""
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            yield from self.execute(statement.format(ids=", ".join("?" * len(chunk))), chunk)

    def _record(self, row: tuple) -> StoryRecord:
        fields = dict(zip(FIELDS, row))
        fields["keyphrases"] = _decode_keyphrases(fields["keyphrases"])
        fields["entities"] = _decode_entities(fields["entities"])
        fields["tags"] = _decode_tags(fields["tags"])
        if fields["embedding"] is not None:
            fields["embedding"] = self.embedding_out(fields["embedding"]).tolist()
        fields["analysed"] = bool(fields["analysed"])
        return StoryRecord(**fields)

    def _value(self, name: str, value: Any) -> object:
        if name in _JSON_FIELDS:
            return _json.encode(value).decode()
        if name == "embedding":
            return self.embedding_in(value) if value is not None else None
        return value

    def _embedding(self, stored: Any) -> np.ndarray | None:
        return self.embedding_out(stored) if stored is not None else None

    # ---- reads ------------------------------------------------------------------------------
    def get(self, story_id: str, viewer: Viewer = OPERATOR) -> StoryRecord | None:
        seen, args = visible(viewer)
        row = self._one(f"SELECT {self._columns} FROM stories WHERE story_id = ? AND {seen}", story_id, *args)
        return self._record(row) if row else None

    def owner_of(self, url: str, owner: str = "") -> UrlOwner | None:
        row = self._one(
            "SELECT s.story_id, s.canonical_url = a.canonical_url, s.text FROM aliases a "
            "JOIN stories s ON s.story_id = a.story_id WHERE a.owner = ? AND a.canonical_url = ?", owner, url,
        )
        return UrlOwner(row[0], bool(row[1]), row[2]) if row else None

    def text(self, story_id: str) -> str | None:
        row = self._one("SELECT text FROM stories WHERE story_id = ?", story_id)
        return row[0] if row else None

    def features(self, story_ids: list[str]) -> dict[str, bytes]:
        return {sid: bytes(f) for sid, f in self._in("SELECT story_id, features FROM stories WHERE story_id IN ({ids})",
                                                      story_ids)}

    def cards(self, story_ids: list[str]) -> dict[str, Card]:
        rows = self._in(
            "SELECT story_id, canonical_url, title, site_name, published, first_seen FROM stories WHERE story_id IN ({ids})", story_ids
        )
        return {r[0]: Card(*r[1:]) for r in rows}

    def search(self, q: str | None, limit: int, offset: int, viewer: Viewer) -> tuple[list[schemas.StorySummary], int]:
        match = self.text_query(q) if q else None
        if match is not None:
            return self.search_text(match, limit, offset, viewer)
        if q:
            return [], 0
        seen, args = visible(viewer)
        total = self._one(f"SELECT count(*) FROM stories WHERE {seen}", *args)[0]
        rows = self.execute(
            f"SELECT {', '.join(SUMMARY_FIELDS)} FROM stories WHERE {seen} ORDER BY last_seen DESC, id DESC "
            "LIMIT ? OFFSET ?", (*args, limit, offset),
        ).fetchall()
        return [summary(r) for r in rows], total

    def count(self, pending_only: bool = False) -> int:
        return self._one("SELECT count(*) FROM stories" + (f" WHERE {self.PENDING}" if pending_only else ""))[0]

    def pending(self, limit: int) -> list[StoryRecord]:
        rows = self.execute(f"SELECT {self._columns} FROM stories WHERE {self.PENDING} ORDER BY id LIMIT ?", (limit,))
        return [self._record(r) for r in rows]

    def export_page(self, after: int, viewer: Viewer = OPERATOR) -> tuple[list[StoryRecord], int]:
        seen, args = visible(viewer)
        rows = self.execute(f"SELECT id, {self._columns} FROM stories WHERE id > ? AND {seen} ORDER BY id LIMIT 500",
                            (after, *args)).fetchall()
        return [self._record(r[1:]) for r in rows], (rows[-1][0] if rows else after)

    def index_rows(self, with_content: bool) -> Iterator[IndexRow]:
        extra = (f"title, text, {self.JSON_OUT.format('entities')}, {self.JSON_OUT.format('keyphrases')}"
                 if with_content else "NULL, NULL, NULL, NULL")
        cur = self.execute(f"SELECT story_id, features, embedding, simhash, simhash_ok, owner, {extra} FROM stories "
                           "ORDER BY id")
        for sid, feats, emb, sh, ok, owner, title, text, ents, kps in cur:
            content = (title, text, _decode_entities(ents), _decode_keyphrases(kps)) if with_content else None
            yield IndexRow(sid, bytes(feats), self._embedding(emb), sh, bool(ok), content, owner)

    def index_row(self, story_ids: list[str]) -> dict[str, IndexRow | None]:
        out: dict[str, IndexRow | None] = dict.fromkeys(story_ids)
        rows = self._in("SELECT story_id, features, embedding, simhash, simhash_ok, owner FROM stories "
                        "WHERE story_id IN ({ids})", story_ids)
        for sid, feats, emb, sh, ok, owner in rows:
            out[sid] = IndexRow(sid, bytes(feats), self._embedding(emb), sh, bool(ok), owner=owner)
        return out

    def aliases_page(self, after: tuple[str, str], limit: int) -> list[tuple[str, str]]:
        # (URL, id) order: one URL may be filed under a team story and under members' private ones.
        rows = self.execute("SELECT canonical_url, story_id FROM aliases WHERE canonical_url > ? "
                            "OR (canonical_url = ? AND story_id > ?) ORDER BY canonical_url, story_id LIMIT ?",
                            (after[0], after[0], after[1], limit))
        return [(r[0], r[1]) for r in rows]

    def changed_after(self, seq: int, limit: int, owner: str = "") -> list[tuple[str, int]]:
        rows = self.execute(
            "SELECT s.story_id, s.simhash FROM changes c JOIN stories s ON s.story_id = c.story_id "
            "WHERE c.seq > ? AND c.kind = 'upsert' AND s.simhash_ok AND s.owner = ? ORDER BY c.seq DESC LIMIT ?",
            (seq, owner, limit),
        )
        return [(r[0], r[1]) for r in rows]

    def features_version(self) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = 'features_version'")
        return row[0] if row else None

    def claims(self, story_id: str) -> list[str]:
        return [r[0] for r in self.execute("SELECT who FROM claims WHERE story_id = ? ORDER BY at, who", (story_id,))]

    def token(self, digest: str) -> TokenRow | None:
        row = self._one(f"{_TOKEN} WHERE hash = ?", digest)
        return TokenRow(*row) if row else None

    def tokens(self, with_revoked: bool = False) -> list[TokenRow]:
        where = "" if with_revoked else " WHERE revoked IS NULL"
        return [TokenRow(*row) for row in self.execute(f"{_TOKEN}{where} ORDER BY id")]

    def token_count(self) -> int:
        return self._one("SELECT count(*) FROM tokens")[0]

    def token_hashes(self) -> list[tuple[TokenRow, str]]:
        return [(TokenRow(*row[:-1]), row[-1]) for row in self.execute(f"SELECT {_TOKEN_COLUMNS}, hash FROM tokens ORDER BY id")]

    def claims_page(self, after: tuple[str, str], limit: int) -> list[tuple[str, str, str]]:
        rows = self.execute("SELECT story_id, who, at FROM claims WHERE story_id > ? OR (story_id = ? AND who > ?) "
                            "ORDER BY story_id, who LIMIT ?", (after[0], after[0], after[1], limit))
        return [(r[0], r[1], r[2]) for r in rows]

    def import_row(self, import_id: str) -> ImportRow | None:
        row = self._one(f"{_IMPORT} WHERE import_id = ?", import_id)
        return ImportRow(*row) if row else None

    def import_rows(self, added_by: str | None, limit: int) -> list[ImportRow]:
        mine = "" if added_by is None else " WHERE added_by = ?"
        args = (limit,) if added_by is None else (added_by, limit)
        return [ImportRow(*row) for row in self.execute(f"{_IMPORT}{mine} ORDER BY started DESC, import_id LIMIT ?", args)]

    # ---- writes (on the writer's connection only) -------------------------------------------
    def put_import(self, row: ImportRow) -> None:
        later = ", ".join(f"{name} = excluded.{name}" for name in ImportRow._fields[2:])
        self.execute(f"INSERT INTO imports ({', '.join(ImportRow._fields)}) VALUES ({', '.join('?' * len(row))}) "
                     f"ON CONFLICT (import_id) DO UPDATE SET {later}", row)

    def prune_imports(self, started_before: str) -> None:
        self.execute("DELETE FROM imports WHERE started < ?", (started_before,))

    def add_token(self, name: str, scope: str, digest: str, created: str, expires: str | None,
                  visibility: str = "team") -> None:
        self.execute("INSERT INTO tokens (name, scope, hash, created, expires, visibility) VALUES (?, ?, ?, ?, ?, ?)",
                     (name, scope, digest, created, expires, visibility))

    def claim(self, story_id: str, who: str, at: str) -> None:
        self.execute("INSERT INTO claims (story_id, who, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (story_id, who, at))

    def put_token(self, token: TokenRow, digest: str) -> None:
        self.execute(f"INSERT INTO tokens ({_TOKEN_COLUMNS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*token, digest))

    def unclaim(self, story_id: str, who: str) -> None:
        self.execute("DELETE FROM claims WHERE story_id = ? AND who = ?", (story_id, who))

    def revoke_token(self, name: str, at: str) -> bool:
        return self.execute("UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (at, name)).rowcount > 0

    def token_used(self, token_id: int, at: str) -> None:
        self.execute("UPDATE tokens SET last_used = ? WHERE id = ?", (at, token_id))

    def put(self, record: StoryRecord, features: bytes, simhash_ok: bool, new: bool) -> None:
        values = (*(self._value(name, getattr(record, name)) for name in FIELDS), simhash_ok,
                  *self.extra_values(record), features)
        if new:
            self.execute(f"INSERT INTO stories ({', '.join(self._row_columns)}) VALUES ({', '.join('?' * len(values))})",
                         values)
        else:
            sets = ", ".join(f"{name} = ?" for name in self._row_columns)
            self.execute(f"UPDATE stories SET {sets} WHERE story_id = ?", (*values, record.story_id))

    def identity(self, story_id: str) -> Identity | None:
        row = self._one("SELECT canonical_url, first_seen, last_seen, analysed, owner FROM stories WHERE story_id = ?",
                        story_id)
        return Identity(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None

    def seen(self, story_id: str, at: str) -> None:
        self.execute(f"UPDATE stories SET last_seen = {self.GREATEST}(last_seen, ?) WHERE story_id = ?", (at, story_id))

    def point_alias(self, url: str, story_id: str) -> None:
        self.execute(_POINT_ALIAS, (url, story_id))

    def delete(self, story_id: str) -> bool:
        return self.execute("DELETE FROM stories WHERE story_id = ?", (story_id,)).rowcount > 0

    def complete(self, record: StoryRecord, features: bytes) -> bool:
        cur = self.execute(
            "UPDATE stories SET keyphrases = ?, entities = ?, embedding = ?, features = ?, analysed = TRUE "
            f"WHERE story_id = ? AND {self.PENDING}",
            (self._value("keyphrases", record.keyphrases), self._value("entities", record.entities),
             self._value("embedding", record.embedding), features, record.story_id),
        )
        return cur.rowcount > 0

    def store_features(self, features: list[tuple[bytes, str]], version: str) -> None:
        for chunk_start in range(0, len(features), _CHUNK):
            self.conn.cursor().executemany(self.sql("UPDATE stories SET features = ? WHERE story_id = ?"),
                                           features[chunk_start : chunk_start + _CHUNK])
        self.execute(
            "INSERT INTO meta (key, value) VALUES ('features_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (version,)
        )
