"""The SQLite archive: one file, WAL, FTS5, versioned schema, one writer thread, pooled readers.

Every write (upsert, import, delete) is queued to a single writer thread that owns the only
read-write connection; queued writes are committed together (one transaction, a savepoint each,
so one bad record fails alone). Reads run in a small thread pool, each thread with its own
read-only connection. The event loop only awaits futures. The related-story index lives in
memory, is loaded from the ``features`` column at start-up and is updated after each commit;
other processes' writes reach it through the ``changes`` table (see ``archive/feed.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import re
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import AsyncIterator, Callable

import msgspec
import numpy as np

from .. import schemas
from ..config import SQLITE_URL
from ..memory import release_free_memory
from ..threads import name_os_thread
from ..duplicates import (
    DUPLICATE_JACCARD,
    SIMHASH_CANDIDATE_DISTANCE,
    SIMHASH_MAX_DISTANCE,
    content_hash,
    shingle_jaccard,
    simhash,
    simhash_bands,
    simhash_usable,
)
from ..story import StoryRecord, derive, utc_now
from ..urls import normalize_url
from .feed import Change, ChangesPruned, IndexEntry, apply_entries
from .related import FEATURES_VERSION, RelatedIndex, compute_features, decode_features, encode_features

log = logging.getLogger(__name__)

_json = msgspec.json.Encoder()
_kp_decoder = msgspec.json.Decoder(list[schemas.Keyphrase])
_ent_decoder = msgspec.json.Decoder(list[schemas.Entity])

# Ordered schema migrations: step i brings user_version from i to i + 1. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        story_id TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        canonical_url TEXT NOT NULL,
        title TEXT, byline TEXT, site_name TEXT, published TEXT, language TEXT,
        text TEXT NOT NULL,
        word_count INTEGER NOT NULL,
        keyphrases TEXT NOT NULL,
        entities TEXT NOT NULL,
        embedding BLOB,
        simhash INTEGER NOT NULL,
        simhash_ok INTEGER NOT NULL,
        sh0 INTEGER NOT NULL, sh1 INTEGER NOT NULL, sh2 INTEGER NOT NULL, sh3 INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        features BLOB NOT NULL
    );
    CREATE INDEX stories_recent ON stories (last_seen DESC, id DESC);
    CREATE INDEX stories_sh0 ON stories (sh0) WHERE simhash_ok;
    CREATE INDEX stories_sh1 ON stories (sh1) WHERE simhash_ok;
    CREATE INDEX stories_sh2 ON stories (sh2) WHERE simhash_ok;
    CREATE INDEX stories_sh3 ON stories (sh3) WHERE simhash_ok;
    CREATE TABLE aliases (
        canonical_url TEXT PRIMARY KEY,
        story_id TEXT NOT NULL REFERENCES stories (story_id) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX aliases_story ON aliases (story_id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE VIRTUAL TABLE stories_fts USING fts5 (
        title, text, site_name, content='stories', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER stories_ai AFTER INSERT ON stories BEGIN
        INSERT INTO stories_fts (rowid, title, text, site_name) VALUES (new.id, new.title, new.text, new.site_name);
    END;
    CREATE TRIGGER stories_ad AFTER DELETE ON stories BEGIN
        INSERT INTO stories_fts (stories_fts, rowid, title, text, site_name)
        VALUES ('delete', old.id, old.title, old.text, old.site_name);
    END;
    CREATE TRIGGER stories_au AFTER UPDATE OF title, text, site_name ON stories BEGIN
        INSERT INTO stories_fts (stories_fts, rowid, title, text, site_name)
        VALUES ('delete', old.id, old.title, old.text, old.site_name);
        INSERT INTO stories_fts (rowid, title, text, site_name) VALUES (new.id, new.title, new.text, new.site_name);
    END;
    """,
    # 2: near-duplicate candidates come from the in-memory index; the band indexes only cost writes.
    """
    DROP INDEX stories_sh0;
    DROP INDEX stories_sh1;
    DROP INDEX stories_sh2;
    DROP INDEX stories_sh3;
    """,
    # 3: bulk imports store stories at once and leave their analysis to the server's background.
    """
    ALTER TABLE stories ADD COLUMN analysed INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX stories_pending ON stories (id) WHERE analysed = 0;
    """,
    # 4: the change feed other processes follow (see archive/feed.py). Triggers write it, in the
    # transaction of the change itself, for any statement that changes what the related index
    # holds, whichever code (or a hand-run repair) issues it; a copy refreshing last_seen is no change.
    """
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        story_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('upsert', 'delete')),
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    );
    CREATE TRIGGER stories_feed_ai AFTER INSERT ON stories BEGIN
        INSERT INTO changes (story_id, kind) VALUES (new.story_id, 'upsert');
    END;
    CREATE TRIGGER stories_feed_au AFTER UPDATE OF story_id, features, embedding, simhash, simhash_ok ON stories BEGIN
        INSERT INTO changes (story_id, kind) VALUES (new.story_id, 'upsert');
    END;
    CREATE TRIGGER stories_feed_ad AFTER DELETE ON stories BEGIN
        INSERT INTO changes (story_id, kind) VALUES (old.story_id, 'delete');
    END;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "story_id, url, canonical_url, title, byline, site_name, published, language, text, word_count, "
    "keyphrases, entities, embedding, simhash, content_hash, first_seen, last_seen, analysed"
)
_SUMMARY = "story_id, url, canonical_url, title, site_name, published, first_seen, last_seen"
# Point an alias URL at a story. An alias follows the page's latest analysis, but a story's own
# canonical URL is never taken from it.
_POINT_ALIAS = (
    "INSERT INTO aliases (canonical_url, story_id) VALUES (?, ?) ON CONFLICT (canonical_url) DO UPDATE "
    "SET story_id = excluded.story_id WHERE NOT EXISTS ("
    "SELECT 1 FROM stories s WHERE s.story_id = aliases.story_id AND s.canonical_url = aliases.canonical_url)"
)
_FTS_WORD = re.compile(r"\w+", re.UNICODE)
_BATCH = 128
# The change feed keeps this many latest changes; a follower further behind reloads its index.
CHANGES_KEPT = 10_000
_FEED_PAGE = 1_000  # changes handed to a follower per call
_FEED_HEAD = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)"
_PRUNED_THROUGH = "SELECT coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'changes_pruned_through'), 0)"


class SchemaTooNew(RuntimeError):
    pass


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file's schema to SCHEMA_VERSION, one transaction per step. Returns the version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"archive schema version {version} is newer than this Backstory ({SCHEMA_VERSION})")
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(MIGRATIONS[step]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("archive schema migrated to version %d", step + 1)
    return SCHEMA_VERSION


def _split_sql(script: str) -> list[str]:
    out, buf = [], []
    for line in script.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined) and (
            not joined.upper().startswith("CREATE TRIGGER") or joined.upper().endswith("END;")
        ):
            out.append(joined)
            buf = []
    if "".join(buf).strip():
        out.append("\n".join(buf))
    return out


def _row_to_record(row: tuple) -> StoryRecord:
    emb = row[12]
    return StoryRecord(
        story_id=row[0], url=row[1], canonical_url=row[2], title=row[3], byline=row[4], site_name=row[5],
        published=row[6], language=row[7], text=row[8], word_count=row[9],
        keyphrases=_kp_decoder.decode(row[10]), entities=_ent_decoder.decode(row[11]),
        embedding=np.frombuffer(emb, dtype="<f4").tolist() if emb is not None else None,
        simhash=row[13], content_hash=row[14], first_seen=row[15], last_seen=row[16], analysed=bool(row[17]),
    )


def _summary(row: tuple, snippet: str | None = None) -> schemas.StorySummary:
    return schemas.StorySummary(
        story_id=row[0], url=row[1], canonical_url=row[2], title=row[3], site_name=row[4], published=row[5],
        first_seen=row[6], last_seen=row[7], snippet=snippet,
    )


def _fts_query(q: str) -> str | None:
    words = _FTS_WORD.findall(q)
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"  # the last word may still be being typed
    return " ".join(quoted)


def _fill_index(conn: sqlite3.Connection, index: RelatedIndex) -> list[tuple[bytes, str]] | None:
    """Add every stored story to the index. When the stored features are from another
    FEATURES_VERSION (recomputed here), returns every story's (features, story_id), to store."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'features_version'").fetchone()
    stale = row is None or row[0] != str(FEATURES_VERSION)
    # Texts are read only when the stored features must be recomputed: reading every story's
    # text just to drop it leaves a large freed-but-resident heap behind.
    extra = "title, text, entities, keyphrases" if stale else "NULL, NULL, NULL, NULL"
    cur = conn.execute(f"SELECT story_id, features, embedding, simhash, simhash_ok, {extra} FROM stories ORDER BY id")
    refreshed = []
    with index.bulk():
        for sid, feats, emb, sh, ok, title, text, ents, kps in cur:
            if stale:
                f = compute_features(title, text, _ent_decoder.decode(ents), _kp_decoder.decode(kps))
                refreshed.append((encode_features(f), sid))
            else:
                f = decode_features(feats)
            vec = np.frombuffer(emb, dtype="<f4") if emb is not None else None
            index.add(sid, f, vec, sh, bool(ok))
    return refreshed if stale else None


def _store_features(conn: sqlite3.Connection, refreshed: list[tuple[bytes, str]]) -> None:
    conn.executemany("UPDATE stories SET features = ? WHERE story_id = ?", refreshed)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('features_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(FEATURES_VERSION),)
    )


def _index_entries(conn: sqlite3.Connection, story_ids: list[str]) -> dict[str, IndexEntry | None]:
    """The stored index entries of these stories; None for a story no longer stored."""
    entries: dict[str, IndexEntry | None] = dict.fromkeys(story_ids)
    for start in range(0, len(story_ids), 500):  # within SQLite's bound-parameter limit
        chunk = story_ids[start : start + 500]
        rows = conn.execute(
            f"SELECT story_id, features, embedding, simhash, simhash_ok FROM stories "
            f"WHERE story_id IN ({', '.join('?' * len(chunk))})", chunk,
        )
        for sid, feats, emb, sh, ok in rows:
            vec = np.frombuffer(emb, dtype="<f4") if emb is not None else None
            entries[sid] = IndexEntry(decode_features(feats), vec, sh, bool(ok))
    return entries


class _Writer(threading.Thread):
    """The one thread that writes. Jobs are ``fn(conn) -> (result, after_commit | None)``."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="backstory-archive-writer", daemon=True)
        self.path = path
        self.jobs: queue.Queue = queue.Queue()
        self.conn: sqlite3.Connection | None = None
        self.ready = concurrent.futures.Future()
        self.generation = 0  # committed batches, counted after their index updates ran
        # Feed positions of this writer's own changes, as (after, through) ranges: its index has
        # them already, so its follower skips them. Only ranges still in the feed are kept.
        self.own: list[tuple[int, int]] = []
        self.own_lock = threading.Lock()
        self._pruned_through = 0

    def submit(self, fn: Callable) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((fn, fut))
        return fut

    def run(self) -> None:
        name_os_thread()
        try:
            self.conn = _connect(self.path, readonly=False)
            migrate(self.conn)
        except BaseException as exc:  # noqa: BLE001 - reported to the opener
            self.ready.set_exception(exc)
            return
        self.ready.set_result(None)
        conn = self.conn
        while True:
            first = self.jobs.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < _BATCH:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(conn, batch)
            if stop:
                break
        try:
            conn.execute("PRAGMA optimize")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        conn.close()

    def _mark_own(self, head: int, through: int) -> list[tuple[int, int]]:
        """Record (head, through] as this writer's; returns the ranges before, to restore."""
        with self.own_lock:
            before = self.own
            own = [r for r in before if r[1] > through - CHANGES_KEPT]
            if own and own[-1][1] == head:  # consecutive batches: one range
                head = own.pop()[0]
            self.own = [*own, (head, through)]
        return before

    def is_own(self, seq: int) -> bool:
        with self.own_lock:
            return any(after < seq <= through for after, through in self.own)

    def _prune_feed(self, conn: sqlite3.Connection, through: int) -> None:
        """Cut the feed to its latest CHANGES_KEPT changes, once it holds twice as many (one
        delete per CHANGES_KEPT changes, not one per batch)."""
        if through - self._pruned_through < 2 * CHANGES_KEPT:
            return
        cut = max(through - CHANGES_KEPT, conn.execute(_PRUNED_THROUGH).fetchone()[0])
        conn.execute("DELETE FROM changes WHERE seq <= ?", (cut,))
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('changes_pruned_through', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(cut),)
        )
        self._pruned_through = cut

    def _run_batch(self, conn: sqlite3.Connection, batch: list) -> None:
        done = []
        own_before = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(_FEED_HEAD).fetchone()[0]
            for fn, fut in batch:
                if not fut.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    result = fn(conn)
                    conn.execute("RELEASE job")
                    done.append((fut, result, None))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    done.append((fut, None, exc))
            # The write lock is held since BEGIN IMMEDIATE: every change after head is this batch's.
            through = conn.execute(_FEED_HEAD).fetchone()[0]
            if through > head:
                self._prune_feed(conn, through)
                own_before = self._mark_own(head, through)  # before the commit: a follower may read at once
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the commit failed: every job fails
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if own_before is not None:  # rolled back: those positions will be another writer's
                with self.own_lock:
                    self.own = own_before
            for fut, _r, _e in done:
                fut.set_exception(exc)
            for _fn, fut in batch[len(done):]:
                if not fut.done():
                    fut.set_exception(exc)
            return
        results = []
        for fut, result, exc in done:
            if exc is not None:
                results.append((fut, None, exc))
                continue
            value, after = result
            try:
                if after is not None:
                    after()
            except BaseException as after_exc:  # noqa: BLE001
                log.exception("archive index update failed")
                results.append((fut, None, after_exc))
                continue
            results.append((fut, value, None))
        # Counted once the index shows the whole batch and before any caller hears of it: a
        # related list computed under an older number may miss this batch, never the reverse.
        self.generation += 1
        for fut, value, exc in results:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)


class _FeatureMemo:
    """The related-search features of the last few records seen. A story analysed for a reader
    is stored and then looked up at once, and both need its features (~3 ms of tokenising a
    page): they are computed once. A hit needs the same text (content hash), title, entities and
    keyphrases (the very lists: records are immutable and share them)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, record: StoryRecord):
        key = record.content_hash or content_hash(record.text or "")
        with self._lock:
            hit = self._items.get(key)
        if (
            hit is not None
            and hit[0] == record.title
            and hit[1] is record.entities
            and hit[2] is record.keyphrases
        ):
            return hit[3]
        features = compute_features(record.title, record.text, record.entities, record.keyphrases)
        with self._lock:
            self._items[key] = (record.title, record.entities, record.keyphrases, features)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return features


class SQLiteArchive:
    """The default archive backend (see :class:`backstory.archive.base.Archive`)."""

    def __init__(self, path: str | Path, readers: int = 4) -> None:
        self.path = Path(path).expanduser()
        self.index = RelatedIndex()
        self.index_seq = 0  # the change-feed position the index was loaded at (see archive/feed.py)
        self._features = _FeatureMemo()
        self._readers = readers
        self._writer: _Writer | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False

    @property
    def generation(self) -> int:
        """Changes after every committed write (see :class:`backstory.archive.base.Archive`)."""
        return self._writer.generation if self._writer is not None else 0

    # ---- plumbing -----------------------------------------------------------------------
    async def start(self) -> None:
        """Create/migrate the file and load the related index (done lazily by the first call)."""
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise RuntimeError("archive is closed")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = _Writer(self.path)
            writer.start()
            await asyncio.wrap_future(writer.ready)
            self._writer = writer
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._readers, thread_name_prefix="backstory-archive-read", initializer=name_os_thread
            )
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, lambda: self._load_index(self._reader()))
            self._started = True

    async def __aenter__(self) -> "SQLiteArchive":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path, readonly=True)
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    async def _read(self, fn: Callable, *args):
        if not self._started:
            await self.start()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._reader(), *args))

    async def _write(self, fn: Callable):
        if not self._started:
            await self.start()
        return await asyncio.wrap_future(self._writer.submit(fn))

    def _load_index(self, conn: sqlite3.Connection) -> None:
        # Read before the stories: a change committed meanwhile is read again by the follower.
        self.index_seq = conn.execute(_FEED_HEAD).fetchone()[0]
        refreshed = _fill_index(conn, self.index)
        release_free_memory()  # the load's short-lived objects
        if refreshed is not None:
            self._writer.submit(lambda wconn: (_store_features(wconn, refreshed), None)).result()

    # ---- the change feed (see archive/feed.py) ------------------------------------------
    async def changes_since(self, seq: int) -> tuple[int, list[Change]]:
        def job(conn: sqlite3.Connection):
            rows = conn.execute(
                "SELECT seq, story_id, kind FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, _FEED_PAGE)
            ).fetchall()
            # Read after the rows: a cut that removed some of them had committed before they were read.
            if seq < conn.execute(_PRUNED_THROUGH).fetchone()[0]:
                raise ChangesPruned(f"the change feed no longer holds the changes after {seq}")
            if not rows:
                return seq, []
            return rows[-1][0], [Change(r[1], r[2]) for r in rows if not self._writer.is_own(r[0])]

        return await self._read(job)

    async def follow(self, story_ids: list[str]) -> None:
        def job(conn: sqlite3.Connection):
            entries = _index_entries(conn, story_ids)
            return None, lambda: apply_entries(self.index, entries)

        # On the writer thread: own writes are applied in commit order, so a stale read never
        # lands after a newer write of the same story.
        await self._write(job)

    async def reload_index(self) -> int:
        def job(conn: sqlite3.Connection):
            index = RelatedIndex()
            refreshed = _fill_index(conn, index)
            if refreshed is not None:
                _store_features(conn, refreshed)
            head = conn.execute(_FEED_HEAD).fetchone()[0]  # the write lock is held: nothing else moves

            def swap() -> None:
                self.index = index
                self.index_seq = head

            return head, swap

        head = await self._write(job)
        release_free_memory()
        return head

    # ---- writes -------------------------------------------------------------------------
    async def upsert(self, record: StoryRecord) -> StoryRecord:
        record = derive(record)
        # The features are computed in the writer thread, not on the event loop, and kept for
        # the related search that follows (see _FeatureMemo).
        return await self._write(
            lambda conn: self._store(conn, record, encode_features(self._features.of(record)), keep_identity=False)
        )

    async def import_record(self, record: StoryRecord) -> StoryRecord:
        record = derive(record)
        features = encode_features(compute_features(record.title, record.text, record.entities, record.keyphrases))
        return await self._write(lambda conn: self._store(conn, record, features, keep_identity=True))

    def _find_story(
        self, conn: sqlite3.Connection, canonical_url: str, sh: int, ok: bool, text: str | None = None
    ) -> tuple[str | None, bool]:
        """The stored story a page with this canonical URL (and text) is, and whether the page is
        that story's own (its canonical URL): the story with this canonical URL; else the story
        that has it as an alias while the texts are near-identical still (any, when the text is
        not known); else one with near-identical text: SimHash within SIMHASH_MAX_DISTANCE bits,
        or, when the text is known, within SIMHASH_CANDIDATE_DISTANCE bits and DUPLICATE_JACCARD
        shingle overlap."""
        canonical_url = normalize_url(canonical_url)
        row = conn.execute(
            "SELECT s.story_id, s.canonical_url, s.text FROM aliases a JOIN stories s ON s.story_id = a.story_id "
            "WHERE a.canonical_url = ?", (canonical_url,),
        ).fetchone()
        if row:
            if row[1] == canonical_url:
                return row[0], True
            if text is None or shingle_jaccard(text, row[2]) >= DUPLICATE_JACCARD:
                return row[0], False
            # The page at this alias says something else now: it is no copy of that story any more.
        if not ok:
            return None, False
        near = self.index.near_simhash(sh, SIMHASH_CANDIDATE_DISTANCE if text is not None else SIMHASH_MAX_DISTANCE)
        if text is None:
            return (near[0][0] if near else None), False
        for sid, _d in near[:20]:
            other = conn.execute("SELECT text FROM stories WHERE story_id = ?", (sid,)).fetchone()
            if other and shingle_jaccard(text, other[0]) >= DUPLICATE_JACCARD:
                return sid, False
        return None, False

    def _store(self, conn: sqlite3.Connection, rec: StoryRecord, features: bytes, keep_identity: bool):
        ok = simhash_usable(rec.text)
        existing, own = self._find_story(conn, rec.canonical_url, rec.simhash, ok, rec.text)
        if existing is None:
            row = conn.execute("SELECT story_id FROM stories WHERE story_id = ?", (rec.story_id,)).fetchone()
            existing = row[0] if row else None  # an id taken by another canonical URL (only through imports)
        if keep_identity:
            # An import (of an export) merges into the stored story, taking the imported fields: the
            # archive's own records, so that an export imported again changes nothing.
            own = existing is not None
        incoming = rec.canonical_url
        if existing is not None and not own:
            # A copy (by text) of a stored story is one more source of it, never a rewrite of it:
            # otherwise any page could replace another site's story with its own title and URL.
            conn.execute("UPDATE stories SET last_seen = max(last_seen, ?) WHERE story_id = ?", (utc_now(), existing))
            for alias in (incoming, normalize_url(rec.url)):
                conn.execute(_POINT_ALIAS, (alias, existing))
            row = conn.execute(f"SELECT {_COLUMNS} FROM stories WHERE story_id = ?", (existing,)).fetchone()
            return _row_to_record(row), None
        if existing is not None and not rec.analysed:
            row = conn.execute(f"SELECT {_COLUMNS} FROM stories WHERE story_id = ?", (existing,)).fetchone()
            if row[17]:  # an unanalysed copy never replaces an analysed story: it only adds its URLs
                for alias in (incoming, normalize_url(rec.url)):
                    conn.execute(_POINT_ALIAS, (alias, existing))
                return _row_to_record(row), None
        if existing is not None:
            old = conn.execute("SELECT canonical_url, first_seen, last_seen FROM stories WHERE story_id = ?", (existing,)).fetchone()
            first_seen = min(old[1], rec.first_seen) if keep_identity else old[1]
            last_seen = max(old[2], rec.last_seen) if keep_identity else max(old[2], utc_now())
            rec = msgspec.structs.replace(rec, story_id=existing, canonical_url=old[0], first_seen=first_seen, last_seen=last_seen)
        values = self._values(rec, ok, features)
        if existing is None:
            conn.execute(
                f"INSERT INTO stories ({_COLUMNS}, simhash_ok, sh0, sh1, sh2, sh3, features) "
                f"VALUES ({', '.join('?' * len(values))})",
                values,
            )
        else:
            sets = ", ".join(f"{c.strip()} = ?" for c in (_COLUMNS + ", simhash_ok, sh0, sh1, sh2, sh3, features").split(","))
            conn.execute(f"UPDATE stories SET {sets} WHERE story_id = ?", (*values, rec.story_id))
        for alias in (rec.canonical_url, normalize_url(rec.url), incoming):
            conn.execute(_POINT_ALIAS, (alias, rec.story_id))

        emb = rec.embedding
        decoded = decode_features(features)
        stored = rec

        def after() -> None:
            self.index.add(stored.story_id, decoded, emb, stored.simhash, ok)

        return stored, after

    @staticmethod
    def _values(rec: StoryRecord, ok: bool, features: bytes) -> tuple:
        emb = np.asarray(rec.embedding, dtype="<f4").tobytes() if rec.embedding is not None else None
        return (
            rec.story_id, rec.url, rec.canonical_url, rec.title, rec.byline, rec.site_name, rec.published,
            rec.language, rec.text, rec.word_count, _json.encode(rec.keyphrases).decode(),
            _json.encode(rec.entities).decode(), emb, rec.simhash, rec.content_hash, rec.first_seen, rec.last_seen,
            int(rec.analysed), int(ok), *simhash_bands(rec.simhash), features,
        )

    async def delete(self, story_id: str) -> bool:
        def job(conn: sqlite3.Connection):
            gone = conn.execute("DELETE FROM stories WHERE story_id = ?", (story_id,)).rowcount > 0
            return gone, (lambda: self.index.remove(story_id)) if gone else None

        return await self._write(job)

    # ---- reads --------------------------------------------------------------------------
    async def find_duplicate(self, canonical_url: str, simhash: int, text: str | None = None) -> str | None:
        ok = simhash_usable(text) if text is not None else True
        return await self._read(lambda conn: self._find_story(conn, canonical_url, simhash, ok, text)[0])

    async def has_canonical_url(self, url: str) -> bool:
        return await self._read(
            lambda conn: conn.execute("SELECT 1 FROM aliases WHERE canonical_url = ?", (normalize_url(url),)).fetchone()
            is not None
        )

    async def get(self, story_id: str) -> StoryRecord | None:
        def job(conn: sqlite3.Connection):
            row = conn.execute(f"SELECT {_COLUMNS} FROM stories WHERE story_id = ?", (story_id,)).fetchone()
            return _row_to_record(row) if row else None

        return await self._read(job)

    async def count(self) -> int:
        return await self._read(lambda conn: conn.execute("SELECT count(*) FROM stories").fetchone()[0])

    async def pending(self, limit: int = 8) -> list[StoryRecord]:
        def job(conn: sqlite3.Connection):
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM stories WHERE analysed = 0 ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            return [_row_to_record(r) for r in rows]

        return await self._read(job)

    async def store_analysis(self, record: StoryRecord) -> bool:
        """Fill in a pending story's entities, keyphrases and embedding. False (and nothing
        written) when the story is gone or was analysed meanwhile: a delete is never undone."""
        features = encode_features(compute_features(record.title, record.text, record.entities, record.keyphrases))
        emb = np.asarray(record.embedding, dtype="<f4").tobytes() if record.embedding is not None else None

        def job(conn: sqlite3.Connection):
            cur = conn.execute(
                "UPDATE stories SET keyphrases = ?, entities = ?, embedding = ?, features = ?, analysed = 1 "
                "WHERE story_id = ? AND analysed = 0",
                (_json.encode(record.keyphrases).decode(), _json.encode(record.entities).decode(), emb, features,
                 record.story_id),
            )
            if not cur.rowcount:
                return False, None
            ok = simhash_usable(record.text)
            decoded = decode_features(features)
            return True, lambda: self.index.add(record.story_id, decoded, record.embedding, record.simhash, ok)

        return await self._write(job)

    async def count_pending(self) -> int:
        return await self._read(lambda conn: conn.execute("SELECT count(*) FROM stories WHERE analysed = 0").fetchone()[0])

    async def search(self, q: str | None, limit: int = 20, offset: int = 0) -> tuple[list[schemas.StorySummary], int]:
        limit, offset = max(0, int(limit)), max(0, int(offset))
        match = _fts_query(q) if q else None

        def job(conn: sqlite3.Connection):
            if q and match is None:
                return [], 0
            if match is None:
                total = conn.execute("SELECT count(*) FROM stories").fetchone()[0]
                rows = conn.execute(
                    f"SELECT {_SUMMARY} FROM stories ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?", (limit, offset)
                ).fetchall()
                return [_summary(r) for r in rows], total
            total = conn.execute("SELECT count(*) FROM stories_fts WHERE stories_fts MATCH ?", (match,)).fetchone()[0]
            cols = ", ".join(f"s.{c.strip()}" for c in _SUMMARY.split(","))
            rows = conn.execute(
                f"SELECT {cols}, snippet(stories_fts, 1, '', '', '…', 24) FROM stories_fts "
                "JOIN stories s ON s.id = stories_fts.rowid WHERE stories_fts MATCH ? "
                "ORDER BY bm25(stories_fts, 4.0, 1.0, 0.5), s.id DESC LIMIT ? OFFSET ?",
                (match, limit, offset),
            ).fetchall()
            return [_summary(r[:8], r[8]) for r in rows], total

        return await self._read(job)

    async def related(self, record: StoryRecord, limit: int = 10) -> list[schemas.RelatedStory]:
        def job(conn: sqlite3.Connection):
            index = self.index  # one index for the whole lookup: a reload may swap it meanwhile
            exclude = record.story_id if record.story_id in index.slot_of else None
            if exclude is None and record.canonical_url:
                row = conn.execute(
                    "SELECT story_id FROM aliases WHERE canonical_url = ?", (normalize_url(record.canonical_url),)
                ).fetchone()
                exclude = row[0] if row else None
            features = self._features.of(record)
            sh = record.simhash or (simhash(record.text) if record.text else 0)
            def features_of(ids: list[str]) -> list:
                marks = ", ".join("?" * len(ids))
                rows = dict(conn.execute(f"SELECT story_id, features FROM stories WHERE story_id IN ({marks})", ids))
                empty = encode_features(compute_features(None, "", [], []))
                return [decode_features(rows.get(i, empty)) for i in ids]

            hits = index.query(
                features, record.embedding, exclude_id=exclude,
                simhash=sh if simhash_usable(record.text) else None, limit=limit, features_of=features_of,
            )
            if not hits:
                return []
            marks = ", ".join("?" * len(hits))
            meta = {
                r[0]: r
                for r in conn.execute(
                    f"SELECT story_id, canonical_url, title, site_name, published FROM stories WHERE story_id IN ({marks})",
                    [h.story_id for h in hits],
                )
            }
            return [
                schemas.RelatedStory(
                    story_id=h.story_id, url=meta[h.story_id][1], title=meta[h.story_id][2],
                    site_name=meta[h.story_id][3], published=meta[h.story_id][4], score=h.score,
                    shared_entities=h.shared_entities, shared_keyphrases=h.shared_keyphrases,
                )
                for h in hits
                if h.story_id in meta  # deleted between the index lookup and now
            ]

        return await self._read(job)

    async def export(self) -> AsyncIterator[StoryRecord]:
        last = 0
        while True:
            def page(conn: sqlite3.Connection, after: int):
                return conn.execute(f"SELECT id, {_COLUMNS} FROM stories WHERE id > ? ORDER BY id LIMIT 500", (after,)).fetchall()

            rows = await self._read(page, last)
            if not rows:
                return
            for row in rows:
                yield _row_to_record(row[1:])
            last = rows[-1][0]

    # ---- shutdown -----------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        writer = self._writer
        writer.jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, writer.join)
        pool = self._pool
        pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


async def open_url(url: str) -> SQLiteArchive:
    """The archive at a ``sqlite:///PATH`` URL (as :func:`backstory.config.archive_url` spells
    it), opened: the registry's entry point."""
    archive = SQLiteArchive(Path(url.removeprefix(SQLITE_URL)))
    await archive.start()
    return archive
