"""The story archive: storage, dedup, full-text search and related stories.

``base`` is the contract every backend implements; this module is the registry that picks the
backend from the archive setting's URL scheme (see :func:`backstory.config.archive_url`).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from ..config import Settings, archive_url
from .base import Archive
from .stories import StoryArchive


class Backend(NamedTuple):
    name: str
    module: str | None
    """Module (relative to this package) with ``def create(url) -> StoryArchive`` (not opened yet), imported
    only when opened: the CLI checks the setting before forking the spaCy processes, and a backend
    loads numpy and more. None: known, not built yet."""


# A backend registers with one line: the URL scheme it serves -> Backend.
BACKENDS: dict[str, Backend] = {
    "sqlite": Backend("SQLite", ".sqlite"),
    "postgresql": Backend("PostgreSQL", None),  # issue 16; "postgres://" is read as this
}


class ArchiveUnavailable(ValueError):
    """The archive setting names a backend this version cannot open."""


def backend(settings: Settings) -> Backend:
    """The backend the archive setting names; :class:`ArchiveUnavailable` (with a message for
    people) when there is none in this version. Checks without opening anything."""
    return _backend_of(archive_url(settings.archive))


def _backend_of(url: str) -> Backend:
    scheme = url.partition("://")[0]
    found = BACKENDS.get(scheme)
    if found is None:
        raise ArchiveUnavailable(f"there is no {scheme}:// archive; set the archive to sqlite:///PATH or a file path")
    if found.module is None:
        raise ArchiveUnavailable(f"the {found.name} archive is not available in this version yet; "
                                 "use a SQLite archive (--archive PATH)")
    return found


def create_archive(url: str) -> StoryArchive:
    """The archive at an archive URL (as :func:`backstory.config.archive_url` spells it), not opened."""
    return importlib.import_module(_backend_of(url).module, __name__).create(url)


async def open_archive(settings: Settings) -> StoryArchive:
    """The archive the settings name, opened (created or migrated, related index loaded)."""
    archive = create_archive(archive_url(settings.archive))
    await archive.start()
    return archive


__all__ = ["BACKENDS", "Archive", "ArchiveUnavailable", "Backend", "StoryArchive", "backend", "create_archive",
           "open_archive"]
