"""Moving a whole archive to another, of any backend (``backstory migrate-archive``): every story
as it is (id, dates, analysis) and every alias, then a comparison of the two, story by story."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import msgspec

from ..story import OPERATOR, StoryRecord
from .stories import StoryArchive

_encode = msgspec.json.Encoder().encode


def fingerprint(record: StoryRecord) -> str:
    """A checksum of everything a story holds."""
    return hashlib.sha256(_encode(record)).hexdigest()


@dataclass
class Copied:
    stories: int = 0
    skipped: int = 0  # already in the target as they are (a migration that was stopped and resumed)
    aliases: int = 0


@dataclass
class Comparison:
    source: int
    target: int
    differing: list[str] = field(default_factory=list)  # stories missing from the target or not the same

    @property
    def identical(self) -> bool:
        return self.source == self.target and not self.differing


async def copy_archive(source: StoryArchive, target: StoryArchive,
                       step: Callable[[bool], None] = lambda skipped: None) -> Copied:
    """Copy every story and alias of ``source`` into ``target``, oldest first. Stories the target
    holds already as they are are skipped, so a migration stopped midway resumes where it was."""
    copied = Copied()
    async for record in source.export(OPERATOR):  # members' private stories too, owners kept
        skipped = await target.get(record.story_id, OPERATOR) == record
        if skipped:
            copied.skipped += 1
        else:
            await target.import_record(record)
            copied.stories += 1
        step(skipped)
    async for url, story_id in source.aliases():
        copied.aliases += await target.add_alias(url, story_id)
    return copied


async def _fingerprints(archive: StoryArchive) -> dict[str, str]:
    return {record.story_id: fingerprint(record) async for record in archive.export(OPERATOR)}


async def compare(source: StoryArchive, target: StoryArchive) -> Comparison:
    """The two archives' stories compared one by one (by checksum), and their counts."""
    mine, theirs = await _fingerprints(source), await _fingerprints(target)
    return Comparison(len(mine), len(theirs), sorted(sid for sid, digest in mine.items() if theirs.get(sid) != digest))
