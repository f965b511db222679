"""Moving a whole archive to another, of any backend (``backstory migrate-archive``): every story
as it is (id, dates, analysis, owner) and every alias, the API tokens (as hashes, with their ids)
and who added what, then a comparison of the two, story by story. Tokens come first and keep their
ids: a private story's owner and a claim name a token by id, so in the target they must name the
same member (a fresh token there would otherwise take an id, and with it someone's private stories)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import msgspec

from ..story import OPERATOR, StoryRecord
from .storage import AfterCommit, Writer
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
    tokens: int = 0
    claims: int = 0


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
    """Copy the tokens, then every story and alias of ``source`` into ``target`` (oldest first),
    then who added what. Stories the target holds already as they are are skipped, so a migration
    stopped midway resumes where it was."""
    copied = Copied(tokens=await _copy_tokens(source, target))
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
    after = ("", "")
    while page := await source.storage.read(lambda r, after=after: r.claims_page(after, 1000)):
        await target.storage.write(lambda w, page=page: ([w.claim(*claim) for claim in page], None))
        copied.claims += len(page)
        after = page[-1][:2]
    return copied


async def _copy_tokens(source: StoryArchive, target: StoryArchive) -> int:
    """Copy the source's tokens (ids, hashes, revocations); ValueError, before anything is copied,
    when the target has a token the source has not (its id could name another member there)."""
    tokens = await source.storage.read(lambda r: r.token_hashes())
    theirs = {token.id: digest for token, digest in tokens}

    def job(w: Writer) -> tuple[int, AfterCommit]:
        have = {token.id: digest for token, digest in w.token_hashes()}
        if any(theirs.get(token_id) != digest for token_id, digest in have.items()):  # (a resumed copy has the same)
            raise ValueError("the target archive has API tokens of its own: private stories and who added what "
                             "name tokens by id, so migrate into an archive without tokens")
        new = [(token, digest) for token, digest in tokens if token.id not in have]
        for token, digest in new:
            w.put_token(token, digest)
        return len(new), None

    return await target.storage.write(job)


async def _fingerprints(archive: StoryArchive) -> dict[str, str]:
    return {record.story_id: fingerprint(record) async for record in archive.export(OPERATOR)}


async def compare(source: StoryArchive, target: StoryArchive) -> Comparison:
    """The two archives' stories compared one by one (by checksum), and their counts."""
    mine, theirs = await _fingerprints(source), await _fingerprints(target)
    return Comparison(len(mine), len(theirs), sorted(sid for sid, digest in mine.items() if theirs.get(sid) != digest))
