"""The story archive: storage, dedup, full-text search and related stories.

``base`` is the contract every backend implements; this module is the registry that picks the
backend from the archive setting's URL scheme (see :func:`backstory.config.archive_url`).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from ..config import Settings, archive_url
from .base import Archive
from .storage import ArchiveUnavailable
from .stories import StoryArchive


class Backend(NamedTuple):
    name: str
    module: str
    """Module (relative to this package) with ``def create(url) -> StoryArchive`` (not opened yet)
    and ``def check(url) -> None`` (raises ArchiveUnavailable when the archive cannot be reached),
    imported only when used: the CLI checks the setting before forking the spaCy processes, and a
    backend loads numpy and more."""


# A backend registers with one line: the URL scheme it serves -> Backend.
BACKENDS: dict[str, Backend] = {
    "sqlite": Backend("SQLite", ".sqlite"),
    "postgresql": Backend("PostgreSQL", ".postgres"),  # "postgres://" is read as this
}


def backend(settings: Settings) -> Backend:
    """The backend the archive setting names; :class:`ArchiveUnavailable` (with a message for
    people) when there is none in this version. Checks without opening anything."""
    return _backend_of(archive_url(settings.archive))


def _backend_of(url: str) -> Backend:
    scheme = url.partition("://")[0]
    found = BACKENDS.get(scheme)
    if found is None:
        raise ArchiveUnavailable(f"there is no {scheme}:// archive; set the archive to sqlite:///PATH or a file path")
    return found


def check_archive(settings: Settings) -> int:
    """Raise :class:`ArchiveUnavailable` (with the reason, no password) when the archive the
    settings name cannot be reached or was written by a newer Backstory; opens nothing that
    lasts and starts no thread. Returns how many API tokens were ever stored in it."""
    url = archive_url(settings.archive)
    return importlib.import_module(_backend_of(url).module, __name__).check(url)


def create_archive(url: str, *, related_index: bool = True) -> StoryArchive:
    """The archive at an archive URL (as :func:`backstory.config.archive_url` spells it), not
    opened; without ``related_index`` it answers no related or near-duplicate lookups."""
    return importlib.import_module(_backend_of(url).module, __name__).create(url, related_index=related_index)


async def open_archive(settings: Settings, *, related_index: bool = True) -> StoryArchive:
    """The archive the settings name, opened (created or migrated, related index loaded)."""
    archive = create_archive(archive_url(settings.archive), related_index=related_index)
    await archive.start()
    return archive


__all__ = ["BACKENDS", "Archive", "ArchiveUnavailable", "Backend", "StoryArchive", "backend", "check_archive",
           "create_archive", "open_archive"]
