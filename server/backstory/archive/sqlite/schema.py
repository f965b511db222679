"""The SQLite archive's schema: ordered migrations, applied at start, the version in ``user_version``."""

from __future__ import annotations

import logging
import sqlite3

from ..storage import SchemaTooNew, too_new

log = logging.getLogger(__name__)

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
    # 5: named API tokens (see backstory/tokens.py): only a hash of each secret is kept; a name is
    # unique among the tokens not revoked, so a revoked name can be given again, to a new token.
    """
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        last_used TEXT,
        expires TEXT,
        revoked TEXT
    );
    CREATE UNIQUE INDEX tokens_name ON tokens (name) WHERE revoked IS NULL;
    """,
    # 6: who added each story ("token:<id>", "cli", "api-token"): one row a claimant.
    """
    CREATE TABLE claims (
        story_id TEXT NOT NULL REFERENCES stories (story_id) ON DELETE CASCADE,
        who TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (story_id, who)
    ) WITHOUT ROWID;
    CREATE INDEX claims_who ON claims (who);
    """,
    # the reader's tags of a story, from the export it was imported from: a JSON list of names.
    """
    ALTER TABLE stories ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    """,
    # imports sent over HTTP (POST /api/v1/imports) and their progress, kept here so that any
    # server of the archive can answer for one; ``updated`` is the running server's heartbeat.
    """
    CREATE TABLE imports (
        import_id TEXT PRIMARY KEY,
        format TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
        added_by TEXT,
        size INTEGER NOT NULL,
        read_bytes INTEGER NOT NULL DEFAULT 0,
        imported INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        failures TEXT NOT NULL DEFAULT '[]',
        feeds_found INTEGER NOT NULL DEFAULT 0,
        feeds TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        started TEXT NOT NULL,
        updated TEXT NOT NULL,
        finished TEXT
    ) WITHOUT ROWID;
    CREATE INDEX imports_started ON imports (started);
    """,
    # private stories (see archive/stories.py): a story's owner ('' for a team story) is part of
    # its identity, so a URL is filed once among the team's URLs and once among each member's
    # private ones: the aliases are keyed by (owner, URL), which SQLite can only do on a new table.
    # A token may store its stories as private unless a request says otherwise.
    """
    ALTER TABLE stories ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    CREATE INDEX stories_owner ON stories (owner) WHERE owner <> '';
    CREATE TABLE aliases_owned (
        owner TEXT NOT NULL DEFAULT '',
        canonical_url TEXT NOT NULL,
        story_id TEXT NOT NULL REFERENCES stories (story_id) ON DELETE CASCADE,
        PRIMARY KEY (owner, canonical_url)
    ) WITHOUT ROWID;
    INSERT INTO aliases_owned (owner, canonical_url, story_id) SELECT '', canonical_url, story_id FROM aliases;
    DROP TABLE aliases;
    ALTER TABLE aliases_owned RENAME TO aliases;
    CREATE INDEX aliases_story ON aliases (story_id);
    ALTER TABLE tokens ADD COLUMN visibility TEXT NOT NULL DEFAULT 'team' CHECK (visibility IN ('team', 'private'));
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
TOKENS_SINCE = 5  # the version that added the tokens table


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file's schema to SCHEMA_VERSION, one transaction per step. Returns the version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(too_new(version, SCHEMA_VERSION))
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
