"""The SQLite storage: one file, WAL, FTS5, versioned schema (see :mod:`backstory.archive.threaded`).

SQLite's own write lock (``BEGIN IMMEDIATE``) serialises the writers of every process; triggers
keep the ``changes`` table, the change feed other processes follow (see ``archive/feed.py``).
What the rows mean is decided above, in ``archive/stories.py``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ...config import SQLITE_URL
from ..storage import ArchiveUnavailable, tokens_ever, too_new
from ..stories import StoryArchive
from ..threaded import CHANGES_KEPT, ThreadedStorage
from .rows import Rows
from .schema import SCHEMA_VERSION, TOKENS_SINCE, SchemaTooNew, migrate

__all__ = ["CHANGES_KEPT", "SCHEMA_VERSION", "SQLiteStorage", "SchemaTooNew", "archive_at", "check", "create"]


class SQLiteStorage(ThreadedStorage):
    """The SQLite :class:`backstory.archive.storage.Storage`."""

    def __init__(self, path: str | Path, readers: int = 4) -> None:
        super().__init__(readers)
        self.path = Path(path).expanduser()

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def connect(self, readonly: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        if readonly:
            conn.execute("PRAGMA query_only = 1")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def rows(self, conn: sqlite3.Connection) -> Rows:
        return Rows(conn)

    def migrate(self, conn: sqlite3.Connection) -> None:
        migrate(conn)

    def begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def closing(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA optimize")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass


def archive_at(path: str | Path, *, related_index: bool = True) -> StoryArchive:
    """The (not yet opened) story archive in the SQLite file at ``path``."""
    return StoryArchive(SQLiteStorage(path), related_index=related_index)


def check(url: str) -> int:
    """Nothing to reach (the file is created on first start); a file whose schema is newer than
    this code stops a command at once. Returns how many API tokens were ever created."""
    path = Path(url.removeprefix(SQLITE_URL)).expanduser()
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ArchiveUnavailable(too_new(version, SCHEMA_VERSION))
            return tokens_ever(Rows(conn)) if version >= TOKENS_SINCE else 0
    except sqlite3.Error:
        return 0  # not readable as SQLite: the start says so, with SQLite's own words


def create(url: str, *, related_index: bool = True) -> StoryArchive:
    """The archive at a ``sqlite:///PATH`` URL, not opened: the registry's entry point."""
    return archive_at(Path(url.removeprefix(SQLITE_URL)), related_index=related_index)
