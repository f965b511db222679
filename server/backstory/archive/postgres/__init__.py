"""The PostgreSQL storage (pgvector): one database shared by every server and worker of a team.

Writes from every process take one advisory lock for their transaction, so a duplicate check
and the write after it see no one else's write in between (the same story sent to two servers
at once is one story) and the change feed's positions are in commit order. Triggers keep the
``changes`` table and notify ``backstory_changes``; other processes follow it (``archive/feed.py``).
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pgvector.psycopg import register_vector

from ...config import masked_url
from ..storage import ArchiveUnavailable, tokens_ever, too_new
from ..stories import StoryArchive
from ..threaded import ThreadedStorage
from .rows import Rows
from .schema import CHANGES_CHANNEL, SCHEMA_VERSION, TOKENS_SINCE, migrate

__all__ = ["SCHEMA_VERSION", "PostgresStorage", "create"]

log = logging.getLogger(__name__)

WRITE_LOCK = 0x6273_7772  # pg_advisory_xact_lock key every story write holds


class PostgresStorage(ThreadedStorage):
    """The PostgreSQL :class:`backstory.archive.storage.Storage`."""

    def __init__(self, url: str, readers: int = 4) -> None:
        super().__init__(readers)
        self.url = url
        self._listener: psycopg.AsyncConnection | None = None

    async def wait_for_changes(self, timeout: float) -> None:
        """Return at the feed's next notification (any process's write), or after ``timeout``."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                await self._listener.execute(f"LISTEN {CHANGES_CHANNEL}")
            async for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:  # the database went away: poll meanwhile, reconnect next time
            log.warning("listening for the archive's changes failed; polling meanwhile", exc_info=True)
            if self._listener is not None:
                await self._listener.close()
            self._listener = None
            await asyncio.sleep(timeout)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await super().close()

    def connect(self, readonly: bool) -> psycopg.Connection:
        conn = psycopg.connect(self.url, autocommit=True, application_name="backstory")
        if readonly:
            conn.read_only = True
            register_vector(conn)  # the writer has created the extension by now
        return conn

    def rows(self, conn: psycopg.Connection) -> Rows:
        return Rows(conn)

    def migrate(self, conn: psycopg.Connection) -> None:
        migrate(conn)
        register_vector(conn)

    def begin(self, conn: psycopg.Connection) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def in_transaction(self, conn: psycopg.Connection) -> bool:
        return conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def _without_password(text: str, url: str) -> str:
    password = conninfo_to_dict(url).get("password")
    return text.replace(password, "***") if password else text


def check(url: str) -> int:
    """Connect once: an unreachable database, or one whose schema is newer than this code, stops
    a command at once, with the reason. Returns how many API tokens were ever created."""
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            found = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0] and conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(found[0]) if found else 0
            if version > SCHEMA_VERSION:
                raise ArchiveUnavailable(too_new(version, SCHEMA_VERSION))
            return tokens_ever(Rows(conn)) if version >= TOKENS_SINCE else 0
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchiveUnavailable(f"cannot reach the PostgreSQL archive at {masked_url(url)}: "
                                 f"{_without_password(reason, url)}") from None


def create(url: str, *, related_index: bool = True) -> StoryArchive:
    """The archive at a ``postgresql://`` URL, not opened: the registry's entry point."""
    return StoryArchive(PostgresStorage(url), related_index=related_index)
