"""The PostgreSQL archive's schema: ordered migrations, applied at start under an advisory lock
(two servers starting at once migrate once), the version recorded in ``meta``."""

from __future__ import annotations

import logging
from typing import Callable

import psycopg
from procrastinate.schema import SchemaManager

from ..storage import SchemaTooNew, too_new

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x6273_6D69  # pg_advisory_lock key of a migration
CHANGES_CHANNEL = "backstory_changes"  # notified by every change the feed records (version 1's trigger)
RESULTS_CHANNEL = "backstory_results"  # notified with a job's id when its analysis's answer is stored
# PostgreSQL's text search vector holds at most 1 MB: the search reads a text's first part.
SEARCHED_CHARS = 200_000

def _procrastinate_schema(conn: psycopg.Connection) -> None:
    conn.execute(SchemaManager.get_schema())


# Ordered schema migrations: step i brings the version from i to i + 1, SQL or a function of the
# connection (in the step's transaction). Append, never edit.
MIGRATIONS: list[str | Callable[[psycopg.Connection], None]] = [
    f"""
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE stories (
        id bigserial PRIMARY KEY,
        story_id text NOT NULL UNIQUE,
        url text NOT NULL,
        canonical_url text NOT NULL,
        title text, byline text, site_name text, published text, language text,
        text text NOT NULL,
        word_count integer NOT NULL,
        keyphrases jsonb NOT NULL,
        entities jsonb NOT NULL,
        embedding vector(384),
        simhash bigint NOT NULL,
        simhash_ok boolean NOT NULL,
        content_hash text NOT NULL,
        first_seen text NOT NULL,
        last_seen text NOT NULL,
        analysed boolean NOT NULL DEFAULT true,
        features bytea NOT NULL,
        search tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english', coalesce(title, '')), 'A')
            || setweight(to_tsvector('english', left(text, {SEARCHED_CHARS})), 'B')
            || setweight(to_tsvector('english', coalesce(site_name, '')), 'C')
        ) STORED
    );
    CREATE INDEX stories_recent ON stories (last_seen DESC, id DESC);
    CREATE INDEX stories_pending ON stories (id) WHERE NOT analysed;
    CREATE INDEX stories_search ON stories USING gin (search);
    CREATE INDEX stories_embedding ON stories USING hnsw (embedding vector_cosine_ops);
    CREATE INDEX stories_entities ON stories USING gin (entities jsonb_path_ops);
    CREATE INDEX stories_keyphrases ON stories USING gin (keyphrases jsonb_path_ops);
    CREATE TABLE aliases (
        canonical_url text PRIMARY KEY,
        story_id text NOT NULL REFERENCES stories (story_id) ON DELETE CASCADE
    );
    CREATE INDEX aliases_story ON aliases (story_id);
    CREATE TABLE changes (
        seq bigserial PRIMARY KEY,
        story_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('upsert', 'delete')),
        at timestamptz NOT NULL DEFAULT now()
    );
    -- The change feed other processes follow (see archive/feed.py), written in the transaction
    -- of the change itself; a notification wakes the followers at once.
    CREATE FUNCTION backstory_feed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO changes (story_id, kind) VALUES (OLD.story_id, 'delete');
        ELSE
            INSERT INTO changes (story_id, kind) VALUES (NEW.story_id, 'upsert');
        END IF;
        PERFORM pg_notify('backstory_changes', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER stories_feed_ai AFTER INSERT ON stories FOR EACH ROW EXECUTE FUNCTION backstory_feed();
    CREATE TRIGGER stories_feed_au AFTER UPDATE OF story_id, features, embedding, simhash, simhash_ok ON stories
        FOR EACH ROW EXECUTE FUNCTION backstory_feed();
    CREATE TRIGGER stories_feed_ad AFTER DELETE ON stories FOR EACH ROW EXECUTE FUNCTION backstory_feed();
    """,
    # 2: the job queue (procrastinate's tables and functions), in the same database: deferred work
    # is as durable as the stories, and a worker needs nothing but the database URL.
    _procrastinate_schema,
    # 3: the answers of analyses a server handed to a worker (BACKSTORY_ANALYSIS=remote), each
    # kept until its server has read it; unlogged: an answer lost in a crash is asked for again.
    """
    CREATE UNLOGGED TABLE analysis_results (
        job_id bigint PRIMARY KEY,
        body bytea NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 4: named API tokens, as in the SQLite archive's version 5.
    """
    CREATE TABLE tokens (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        scope text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        hash text NOT NULL UNIQUE,
        created text NOT NULL,
        last_used text,
        expires text,
        revoked text
    );
    CREATE UNIQUE INDEX tokens_name ON tokens (name) WHERE revoked IS NULL;
    """,
    # 5: who added each story, as in the SQLite archive's version 6.
    """
    CREATE TABLE claims (
        story_id text NOT NULL REFERENCES stories (story_id) ON DELETE CASCADE,
        who text NOT NULL,
        at text NOT NULL,
        PRIMARY KEY (story_id, who)
    );
    CREATE INDEX claims_who ON claims (who);
    """,
    # the reader's tags of a story, as in the SQLite archive.
    """
    ALTER TABLE stories ADD COLUMN tags jsonb NOT NULL DEFAULT '[]'::jsonb;
    """,
    # imports sent over HTTP and their progress, as in the SQLite archive.
    """
    CREATE TABLE imports (
        import_id text PRIMARY KEY,
        format text NOT NULL,
        status text NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
        added_by text,
        size bigint NOT NULL,
        read_bytes bigint NOT NULL DEFAULT 0,
        imported integer NOT NULL DEFAULT 0,
        skipped integer NOT NULL DEFAULT 0,
        failed integer NOT NULL DEFAULT 0,
        failures text NOT NULL DEFAULT '[]',
        feeds_found integer NOT NULL DEFAULT 0,
        feeds text NOT NULL DEFAULT '[]',
        error text,
        started text NOT NULL,
        updated text NOT NULL,
        finished text
    );
    CREATE INDEX imports_started ON imports (started);
    """,
    # private stories, as in the SQLite archive: a story's owner ('' for a team
    # story) is part of its identity; aliases are keyed by (owner, URL); a token's default visibility.
    """
    ALTER TABLE stories ADD COLUMN owner text NOT NULL DEFAULT '';
    CREATE INDEX stories_owner ON stories (owner) WHERE owner <> '';
    ALTER TABLE aliases ADD COLUMN owner text NOT NULL DEFAULT '';
    ALTER TABLE aliases DROP CONSTRAINT aliases_pkey;
    ALTER TABLE aliases ADD PRIMARY KEY (owner, canonical_url);
    ALTER TABLE tokens ADD COLUMN visibility text NOT NULL DEFAULT 'team' CHECK (visibility IN ('team', 'private'));
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
TOKENS_SINCE = 4  # the version that added the tokens table


def migrate(conn: psycopg.Connection) -> int:
    """Bring the database's schema to SCHEMA_VERSION, one transaction per step (DDL is
    transactional in PostgreSQL). Returns the version."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(too_new(version, SCHEMA_VERSION))
        for step in range(version, SCHEMA_VERSION):
            with conn.transaction():
                migration = MIGRATIONS[step]
                if callable(migration):
                    migration(conn)
                else:
                    conn.execute(migration)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(step + 1),)
                )
            log.info("archive schema migrated to version %d", step + 1)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return SCHEMA_VERSION
