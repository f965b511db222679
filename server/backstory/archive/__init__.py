"""The story archive: storage, dedup, full-text search and related stories.

``base`` is the contract every backend implements; this module is the registry that picks the
backend from the archive setting's URL scheme (see :func:`backstory.config.archive_url`).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from ..config import Settings, archive_url
from .base import Archive


class Backend(NamedTuple):
    name: str
    module: str | None
    """Module (relative to this package) with ``async def open_url(url) -> Archive``, imported
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
    scheme = archive_url(settings.archive).partition("://")[0]
    found = BACKENDS.get(scheme)
    if found is None:
        raise ArchiveUnavailable(f"there is no {scheme}:// archive; set the archive to sqlite:///PATH or a file path")
    if found.module is None:
        raise ArchiveUnavailable(f"the {found.name} archive is not available in this version yet; "
                                 "use a SQLite archive (--archive PATH)")
    return found


async def open_archive(settings: Settings) -> Archive:
    """The archive the settings name, opened (created or migrated, related index loaded)."""
    module = importlib.import_module(backend(settings).module, __name__)
    return await module.open_url(archive_url(settings.archive))


__all__ = ["BACKENDS", "Archive", "ArchiveUnavailable", "Backend", "backend", "open_archive"]
